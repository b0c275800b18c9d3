//! The e-mail connector: one plain-text message through the configured SMTP relay (lettre).
//! Owns recipient allowlisting, header safety (CR/LF/NUL refused in every header value; lettre
//! encodes the rest) and carrying the idempotency key as the Message-ID. The body is sent
//! base64-encoded, so no line of it can be read as SMTP or as a header.

use super::{check_len, no_line_breaks, quoted, ConnectorError, Params, Undone};
use lettre::message::header::{ContentTransferEncoding, ContentType, MIME_VERSION_1_0};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// `[connectors.email]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The SMTP relay's host name; empty: e-mail steps are never proposed.
    #[serde(default)]
    pub relay: String,
    /// 0: the TLS mode's usual port (25 none, 587 starttls, 465 tls).
    #[serde(default)]
    pub port: u16,
    /// `starttls` (required), `tls` (implicit TLS) or `none` (only for a relay on this host).
    #[serde(default = "default_tls")]
    pub tls: String,
    /// SMTP user; empty: no authentication.
    #[serde(default)]
    pub username: String,
    /// Environment variable holding the SMTP password.
    #[serde(default)]
    pub password_env: String,
    /// The sender address.
    #[serde(default)]
    pub from: String,
    /// Addresses a step may send to.
    #[serde(default)]
    pub allow_recipients: Vec<String>,
    /// Domains a step may send to (any address `@` one of them).
    #[serde(default)]
    pub allow_domains: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            relay: String::new(),
            port: 0,
            tls: default_tls(),
            username: String::new(),
            password_env: String::new(),
            from: String::new(),
            allow_recipients: Vec::new(),
            allow_domains: Vec::new(),
            timeout_seconds: default_timeout(),
        }
    }
}

fn default_tls() -> String {
    "starttls".into()
}

fn default_timeout() -> u64 {
    30
}

/// RFC 5322's limit on a header line, applied to the subject before encoding.
pub const MAX_SUBJECT_BYTES: usize = 998;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    None,
    StartTls,
    Wrapper,
}

#[derive(Debug, Clone)]
pub(crate) struct Mailer {
    relay: String,
    port: u16,
    tls: Encryption,
    username: Option<String>,
    password_env: Option<String>,
    from: Address,
    allow_recipients: BTreeSet<String>,
    allow_domains: BTreeSet<String>,
    timeout: Duration,
}

/// One message, as it will be handed to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailCall {
    /// `smtp://HOST:PORT (MODE)`, for people.
    pub relay: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// `<KEY@FROM-DOMAIN>`: the idempotency key, so a relay or mailbox can drop a duplicate.
    pub message_id: String,
}

impl fmt::Display for EmailCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mail via {} from {} to {} subject {} message-id {} body {}",
            self.relay,
            quoted(&self.from),
            quoted(&self.to),
            quoted(&self.subject),
            quoted(&self.message_id),
            quoted(&self.body)
        )
    }
}

impl Mailer {
    pub(crate) fn from_config(c: &Config) -> Result<Option<Self>, ConnectorError> {
        let Some(relay) = super::non_empty(&c.relay) else {
            return Ok(None);
        };
        let bad = |why: String| ConnectorError::config("email", why);
        let tls = match c.tls.as_str() {
            "none" => Encryption::None,
            "starttls" => Encryption::StartTls,
            "tls" => Encryption::Wrapper,
            other => return Err(bad(format!("tls {other:?}: one of starttls, tls, none"))),
        };
        if relay.contains(['/', ' ', '@']) {
            return Err(bad(format!(
                "relay {relay:?}: a host name, without scheme or port"
            )));
        }
        let from: Address = super::non_empty(&c.from)
            .ok_or_else(|| bad("from: the sender address is required".into()))?
            .parse()
            .map_err(|e| bad(format!("from {:?}: {e}", c.from)))?;
        let allow_recipients = c
            .allow_recipients
            .iter()
            .map(|a| {
                a.parse::<Address>()
                    .map(|a| a.to_string().to_ascii_lowercase())
                    .map_err(|e| bad(format!("allow_recipients {a:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let port = match (c.port, tls) {
            (0, Encryption::None) => 25,
            (0, Encryption::StartTls) => 587,
            (0, Encryption::Wrapper) => 465,
            (p, _) => p,
        };
        Ok(Some(Mailer {
            relay: relay.to_string(),
            port,
            tls,
            username: super::non_empty(&c.username).map(str::to_string),
            password_env: super::non_empty(&c.password_env).map(str::to_string),
            from,
            allow_recipients,
            allow_domains: c
                .allow_domains
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            timeout: super::timeout_from(c.timeout_seconds),
        }))
    }

    /// Params: `to` (one address on the allowlist or in an allowed domain), `subject` (one
    /// line), `body` (plain text, any lines).
    pub(crate) fn prepare(
        &self,
        p: &mut Params<'_>,
        key: &str,
    ) -> Result<EmailCall, ConnectorError> {
        let to_raw = p.text("to")?;
        no_line_breaks("to", &to_raw)?;
        let to: Address = to_raw.trim().parse().map_err(|e| {
            ConnectorError::bad(
                "to",
                format!("{} is not one e-mail address: {e}", super::shown(&to_raw)),
            )
        })?;
        let lower = to.to_string().to_ascii_lowercase();
        if !self.allow_recipients.contains(&lower)
            && !self
                .allow_domains
                .contains(&to.domain().to_ascii_lowercase())
        {
            return Err(ConnectorError::bad(
                "to",
                format!(
                    "{} is not in [connectors.email] allow_recipients or allow_domains",
                    super::shown(&lower)
                ),
            ));
        }
        let subject = p.text("subject")?;
        no_line_breaks("subject", &subject)?;
        check_len("subject", &subject, MAX_SUBJECT_BYTES)?;
        if subject.contains("=?") {
            // lettre leaves ASCII as it is, and mail readers would decode this as an RFC 2047
            // encoded word: the reader would see other text than the approver did.
            return Err(ConnectorError::bad(
                "subject",
                "contains `=?`, which mail readers decode as an encoded word",
            ));
        }
        let body = p.text("body")?;
        if body.contains('\0') {
            return Err(ConnectorError::bad("body", "contains NUL"));
        }
        check_len("body", &body, super::MAX_VALUE_BYTES)?;
        let mode = match self.tls {
            Encryption::None => "no TLS",
            Encryption::StartTls => "STARTTLS",
            Encryption::Wrapper => "TLS",
        };
        Ok(EmailCall {
            relay: format!("smtp://{}:{} ({mode})", self.relay, self.port),
            from: self.from.to_string(),
            to: to.to_string(),
            subject,
            body,
            message_id: format!("<{key}@{}>", self.from.domain()),
        })
    }

    /// Hand `call` to the relay.
    pub(crate) async fn send(&self, call: &EmailCall) -> Result<String, Undone> {
        let what = format!("mail to {} via {}", call.to, call.relay);
        let msg = message(call).map_err(|e| format!("{what}: {e}"))?;
        let builder = match self.tls {
            Encryption::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.relay)
            }
            Encryption::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.relay)
                    .map_err(|e| format!("{what}: {e}"))?
            }
            Encryption::Wrapper => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.relay)
                .map_err(|e| format!("{what}: {e}"))?,
        };
        let mut builder = builder
            .port(self.port)
            .timeout(Some(self.timeout))
            .hello_name(ClientId::Domain(self.from.domain().to_string()));
        if let Some(user) = &self.username {
            let password = match &self.password_env {
                Some(var) => std::env::var(var).map_err(|_| {
                    format!("{what}: not sent: environment variable {var} (the SMTP password) is not set")
                })?,
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let response = builder.build().send(msg).await.map_err(|e| {
            let detail = format!("{what}: {e}");
            // A 4xx reply means the relay did not take the message; a refused connection
            // sent nothing. A 5xx is a definite no. Anything else (a timeout, a dropped
            // connection) may have come after the relay accepted it.
            if e.is_transient() || super::refused_connection(&e) {
                Undone::from(detail)
            } else if e.is_permanent() || e.is_client() {
                Undone::answered(detail)
            } else {
                Undone::unknown(detail)
            }
        })?;
        Ok(format!(
            "{what}: accepted, {} {}",
            response.code(),
            quoted(&response.message().collect::<Vec<_>>().join(" "))
        ))
    }
}

/// The message exactly as sent: one `From`, one `To`, the subject, the Message-ID carrying the
/// idempotency key, and a base64 plain-text UTF-8 body.
///
/// # Errors
/// An address or header lettre refuses.
pub fn message(call: &EmailCall) -> Result<Message, String> {
    let from: Address = call.from.parse().map_err(|e| format!("from: {e}"))?;
    let to: Address = call.to.parse().map_err(|e| format!("to: {e}"))?;
    let body = Body::new_with_encoding(
        call.body.clone().into_bytes(),
        ContentTransferEncoding::Base64,
    )
    .map_err(|_| "body cannot be encoded".to_string())?;
    Message::builder()
        .from(Mailbox::new(None, from))
        .to(Mailbox::new(None, to))
        .subject(call.subject.clone())
        .message_id(Some(call.message_id.clone()))
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use crate::engine::connector::{params, ConnectorConfig, Connectors};
    use serde_json::json;

    fn connectors() -> Connectors {
        let mut c = ConnectorConfig::default();
        c.email.relay = "127.0.0.1".into();
        c.email.tls = "none".into();
        c.email.from = "vigil@soc.example".into();
        c.email.allow_recipients = vec!["oncall@partner.example".into()];
        c.email.allow_domains = vec!["soc.example".into()];
        Connectors::from_config(&c, "/tmp/bl.txt".into()).expect("config")
    }

    #[test]
    fn recipients_are_allowlisted_and_headers_single_line() {
        let c = connectors();
        let ok = |to: &str| {
            c.describe(
                "email",
                &params(json!({"to": to, "subject": "s", "body": "b"})),
            )
        };
        assert!(ok("analyst@soc.example").is_ok());
        assert!(ok("OnCall@Partner.example").is_ok());
        assert!(ok("someone@evil.example").is_err());
        assert!(ok("analyst@soc.example, boss@evil.example").is_err());
        assert!(ok("analyst@soc.example\r\nBcc: x@evil.example").is_err());
        assert!(ok("Analyst <analyst@soc.example>").is_err());
        let e = c
            .describe(
                "email",
                &params(json!({"to": "a@soc.example", "subject": "x\r\nBcc: y@evil.example", "body": "b"})),
            )
            .expect_err("CRLF in subject");
        assert_eq!(
            e.to_string(),
            "param `subject`: contains CR (would end a header or line)"
        );
        assert_eq!(
            c.describe(
                "email",
                &params(json!({"to": "a@soc.example", "subject": "Blocked 10.0.0.1", "body": "line 1\nline 2"}))
            )
            .expect("describe"),
            "mail via smtp://127.0.0.1:25 (no TLS) from \"vigil@soc.example\" to \"a@soc.example\" \
             subject \"Blocked 10.0.0.1\" message-id \"<<idempotency key>@soc.example>\" body \"line 1\\nline 2\""
        );
    }
}
