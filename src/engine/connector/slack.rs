//! The Slack connector: one incoming-webhook POST of `{"text": ...}` with the text
//! mrkdwn-escaped, so alert text cannot mention `@channel`, forge links or format the message.
//! Owns the escaping; sending is `http::send`. The webhook URL is a secret: shown masked.

use super::http::HttpCall;
use super::{check_len, ConnectorError, Params};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use url::Url;

/// `[connectors.slack]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The incoming-webhook URL; empty: Slack steps are never proposed.
    #[serde(default)]
    pub url: String,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: String::new(),
            timeout_seconds: default_timeout(),
        }
    }
}

fn default_timeout() -> u64 {
    10
}

/// Slack's limit on a message's text.
pub const MAX_TEXT_BYTES: usize = 40_000;

#[derive(Debug, Clone)]
pub(crate) struct Slack {
    url: Url,
    timeout: Duration,
}

impl Slack {
    pub(crate) fn from_config(c: &Config) -> Result<Option<Self>, ConnectorError> {
        let Some(raw) = super::non_empty(&c.url) else {
            return Ok(None);
        };
        Ok(Some(Slack {
            url: super::config_url("slack", "url", raw)?,
            timeout: super::timeout_from(c.timeout_seconds),
        }))
    }

    /// Params: `text` (text, number or boolean), escaped and sent as the message.
    pub(crate) fn prepare(
        &self,
        p: &mut Params<'_>,
        key: &str,
    ) -> Result<HttpCall, ConnectorError> {
        let text = escape_mrkdwn(&p.text("text")?);
        check_len("text", &text, MAX_TEXT_BYTES)?;
        HttpCall::json_post(&self.url, true, self.timeout, json!({"text": text}), key)
    }
}

/// Slack's three control characters in message text, as its documentation requires.
pub fn escape_mrkdwn(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::engine::connector::{ConnectorConfig, Connectors};
    use serde_json::{Map, Value};

    #[test]
    fn text_is_escaped_and_the_url_masked() {
        let mut c = ConnectorConfig::default();
        c.slack.url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET".into();
        let c = Connectors::from_config(&c, "/tmp/bl.txt".into()).expect("config");
        let mut m = Map::new();
        m.insert(
            "text".into(),
            Value::String("<!channel> see <http://evil|here> & run".into()),
        );
        let shown = c.describe("slack", &m).expect("describe");
        assert!(
            shown.starts_with("POST https://hooks.slack.com/******** headers"),
            "{shown}"
        );
        assert!(!shown.contains("SECRET"));
        assert!(shown.ends_with(
            r#"body {"text":"&lt;!channel&gt; see &lt;http://evil|here&gt; &amp; run"}"#
        ));
    }
}
