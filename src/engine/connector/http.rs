//! HTTP calls: the request type shared by the webhook, Slack and HTTP API connectors, the one
//! function that sends it, and the HTTP API connector itself (EDR, IAM, ticketing). Owns URL
//! building (base URL from the config only; alert values only as percent-encoded path segments
//! or query components), header checks and bearer tokens read from the environment at send
//! time. Never follows redirects and never logs or prints a token.

use super::{check_len, no_line_breaks, scalar_text, ConnectorError, Params, Undone};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use url::Url;

/// `[connectors.http]`: shared settings and one `[connectors.http.api.NAME]` table per API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    #[serde(default)]
    pub api: BTreeMap<String, ApiConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout_seconds: default_timeout(),
            api: BTreeMap::new(),
        }
    }
}

fn default_timeout() -> u64 {
    10
}

/// `[connectors.http.api.NAME]`: one API a step may call by `api: NAME`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Every request goes to this origin, under this path prefix.
    pub base_url: String,
    /// Name of the environment variable holding a bearer token; empty: no Authorization.
    #[serde(default)]
    pub token_env: String,
    /// Methods steps may use; empty: GET, POST, PUT, PATCH, DELETE.
    #[serde(default)]
    pub methods: Vec<String>,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Headers vigil sets itself (or the HTTP library does); a step may not set or override them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "expect",
    "host",
    "idempotency-key",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
];

/// Longest header value a step may set.
pub const MAX_HEADER_BYTES: usize = 4096;
/// Longest single path segment or query value.
pub const MAX_URL_PART_BYTES: usize = 2048;
/// Longest whole URL.
pub const MAX_URL_BYTES: usize = 8192;
/// Largest JSON body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Everything but RFC 3986 unreserved characters is percent-encoded in a path segment: `/`,
/// `?`, `#`, `%` and `;` included, so a value can never add a segment or start a query.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A header value as sent, or where it comes from when it is a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderText {
    Plain(String),
    /// `Bearer <token>`, the token read from this environment variable when sending.
    BearerFromEnv(String),
}

/// One request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: HeaderText,
}

/// One HTTP request, complete: method, URL, headers in order, and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCall {
    pub method: String,
    pub url: Url,
    pub headers: Vec<Header>,
    pub body: Option<Value>,
    /// The URL path is itself a secret (a Slack webhook): shown masked.
    pub secret_path: bool,
    pub timeout: Duration,
}

impl HttpCall {
    /// The URL as shown to people: with the path masked when it is a secret.
    pub fn shown_url(&self) -> String {
        if !self.secret_path {
            return self.url.to_string();
        }
        let mut origin = self.url.origin().ascii_serialization();
        origin.push_str("/********");
        origin
    }

    /// A JSON POST of `body` to `url` with the standard headers: what the webhook and Slack
    /// connectors send.
    pub(crate) fn json_post(
        url: &Url,
        secret_path: bool,
        timeout: Duration,
        body: Value,
        key: &str,
    ) -> Result<Self, ConnectorError> {
        check_body(&body)?;
        Ok(HttpCall {
            method: "POST".into(),
            url: url.clone(),
            headers: standard_headers(None, true, key),
            body: Some(body),
            secret_path,
            timeout,
        })
    }
}

impl fmt::Display for HttpCall {
    /// `METHOD URL headers {...} body {...}`: the URL is percent-encoded, header values and the
    /// body are JSON, so nothing untrusted can blur the line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|h| {
                let v = match &h.value {
                    HeaderText::Plain(s) => s.clone(),
                    HeaderText::BearerFromEnv(var) => {
                        format!("Bearer ******** (token from environment variable {var})")
                    }
                };
                (h.name.clone(), Value::String(v))
            })
            .collect();
        write!(
            f,
            "{} {} headers {}",
            self.method,
            self.shown_url(),
            Value::Object(headers)
        )?;
        if let Some(b) = &self.body {
            write!(f, " body {b}")?;
        }
        Ok(())
    }
}

fn standard_headers(token_env: Option<&str>, json_body: bool, key: &str) -> Vec<Header> {
    let plain = |name: &str, v: &str| Header {
        name: name.into(),
        value: HeaderText::Plain(v.into()),
    };
    let mut h = vec![plain(
        "User-Agent",
        concat!("vigil/", env!("CARGO_PKG_VERSION")),
    )];
    if let Some(var) = token_env {
        h.push(Header {
            name: "Authorization".into(),
            value: HeaderText::BearerFromEnv(var.into()),
        });
    }
    if json_body {
        h.push(plain("Content-Type", "application/json"));
    }
    h.push(plain("Idempotency-Key", key));
    h
}

fn check_body(body: &Value) -> Result<(), ConnectorError> {
    let n = crate::sanitize::json::to_string(body).map_or(0, |v| v.len());
    if n > MAX_BODY_BYTES {
        return Err(ConnectorError::bad(
            "body",
            format!("is {n} bytes of JSON, over the {MAX_BODY_BYTES} byte limit"),
        ));
    }
    Ok(())
}

/// The configured APIs.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpApis {
    apis: BTreeMap<String, Api>,
    timeout: Duration,
}

#[derive(Debug, Clone)]
struct Api {
    base: Url,
    token_env: Option<String>,
    methods: Vec<String>,
}

impl HttpApis {
    pub(crate) fn from_config(c: &Config) -> Result<Self, ConnectorError> {
        let mut apis = BTreeMap::new();
        for (name, a) in &c.api {
            let section = format!("http.api.{name}");
            let mut base = super::config_url(&section, "base_url", &a.base_url)?;
            if base.query().is_some() || base.fragment().is_some() {
                return Err(ConnectorError::config(
                    &section,
                    "base_url: no query or fragment (steps add query components)",
                ));
            }
            // A path prefix always ends in `/` so `/api/v1` cannot match `/api/v1-admin`.
            if !base.path().ends_with('/') {
                let p = format!("{}/", base.path());
                base.set_path(&p);
            }
            let token_env = super::non_empty(&a.token_env).map(str::to_string);
            if let Some(var) = &token_env {
                if !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(ConnectorError::config(
                        &section,
                        format!("token_env {var:?}: an environment variable name (A-Z, 0-9, _)"),
                    ));
                }
            }
            let methods: Vec<String> = if a.methods.is_empty() {
                METHODS.iter().map(|m| m.to_string()).collect()
            } else {
                a.methods.iter().map(|m| m.to_ascii_uppercase()).collect()
            };
            if let Some(m) = methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
                return Err(ConnectorError::config(
                    &section,
                    format!("methods: {m:?} is not one of {}", METHODS.join(", ")),
                ));
            }
            apis.insert(
                name.clone(),
                Api {
                    base,
                    token_env,
                    methods,
                },
            );
        }
        Ok(HttpApis {
            apis,
            timeout: super::timeout_from(c.timeout_seconds),
        })
    }

    /// Params: `api`, `method`, `path.1..N` (one percent-encoded segment each, after the base
    /// URL's path), `query.NAME` (one form-encoded pair each), `header.NAME` (one header each),
    /// `body.FIELD` (a JSON value each; dots nest: `body.host.name`).
    pub(crate) fn prepare(
        &self,
        p: &mut Params<'_>,
        key: &str,
    ) -> Result<HttpCall, ConnectorError> {
        if self.apis.is_empty() {
            return Err(ConnectorError::NotConfigured(
                "http",
                "[connectors.http.api.NAME] base_url",
            ));
        }
        let name = p.text("api")?;
        let api = self.apis.get(&name).ok_or_else(|| {
            ConnectorError::bad(
                "api",
                format!(
                    "{} is not configured (known: {})",
                    super::shown(&name),
                    self.apis.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let method = p.text("method")?;
        if !api.methods.contains(&method) {
            return Err(ConnectorError::bad(
                "method",
                format!(
                    "{} is not allowed for api {name} (allowed: {})",
                    super::shown(&method),
                    api.methods.join(", ")
                ),
            ));
        }

        let mut url = api.base.clone();
        let mut path = api.base.path().to_string();
        for (i, (param, v)) in p.numbered("path")?.into_iter().enumerate() {
            let seg = scalar_text(&param, v)?;
            check_len(&param, &seg, MAX_URL_PART_BYTES)?;
            if seg.is_empty() || seg == "." || seg == ".." {
                return Err(ConnectorError::bad(
                    &param,
                    format!(
                        "{} is not a path segment (empty, `.` or `..`)",
                        super::shown(&seg)
                    ),
                ));
            }
            if i > 0 {
                path.push('/');
            }
            path.extend(utf8_percent_encode(&seg, SEGMENT));
        }
        // `set_path` keeps `%XX` as it is, so the strict encoding above is what is sent.
        // (`path_segments_mut().push` would leave `;`, `=`, `,` and other sub-delimiters raw,
        // which servers with matrix parameters read as structure.)
        url.set_path(&path);
        let query = p.prefixed("query");
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (qname, param, v) in query {
                let value = scalar_text(param, v)?;
                check_len(param, &value, MAX_URL_PART_BYTES)?;
                if qname.is_empty() {
                    return Err(ConnectorError::bad(param, "names no query parameter"));
                }
                pairs.append_pair(qname, &value);
            }
        }
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(ConnectorError::bad(
                "path",
                format!(
                    "the URL would be {} bytes, over the {MAX_URL_BYTES} byte limit",
                    url.as_str().len()
                ),
            ));
        }
        // Defence in depth: whatever happened above, the request stays under the base URL.
        if url.origin() != api.base.origin() || !url.path().starts_with(api.base.path()) {
            return Err(ConnectorError::bad(
                "path",
                format!("would leave {} ({url})", api.base),
            ));
        }

        let body = body_from(p.prefixed("body"))?;
        if body.is_some() && method == "GET" {
            return Err(ConnectorError::bad("body", "a GET request carries no body"));
        }
        if let Some(b) = &body {
            check_body(b)?;
        }
        let mut headers = standard_headers(api.token_env.as_deref(), body.is_some(), key);
        for (hname, param, v) in p.prefixed("header") {
            let value = scalar_text(param, v)?;
            header_value(param, &value)?;
            header_name(param, hname)?;
            if headers.iter().any(|h| h.name.eq_ignore_ascii_case(hname)) {
                return Err(ConnectorError::bad(param, "sets the same header twice"));
            }
            headers.push(Header {
                name: hname.to_string(),
                value: HeaderText::Plain(value),
            });
        }
        Ok(HttpCall {
            method,
            url,
            headers,
            body,
            secret_path: false,
            timeout: self.timeout,
        })
    }
}

/// A header name a step may set: an RFC 9110 token that vigil does not set itself.
fn header_name(param: &str, name: &str) -> Result<(), ConnectorError> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(ConnectorError::bad(param, "is not a valid header name"));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ConnectorError::bad(
            param,
            format!("{name} is set by vigil and cannot be set by a step"),
        ));
    }
    Ok(())
}

/// A header value: CR, LF and NUL are refused by name (they would split the header), then
/// anything but visible ASCII, space and tab.
///
/// # Errors
/// Line breaks, NUL, other control or non-ASCII characters, or over [`MAX_HEADER_BYTES`].
pub fn header_value(param: &str, v: &str) -> Result<(), ConnectorError> {
    no_line_breaks(param, v)?;
    check_len(param, v, MAX_HEADER_BYTES)?;
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_graphic() || *c == ' ' || *c == '\t'))
    {
        return Err(ConnectorError::bad(
            param,
            format!(
                "contains {} (header values are printable ASCII)",
                crate::sanitize::sanitize(&c.to_string())
            ),
        ));
    }
    Ok(())
}

/// The JSON body from `body.FIELD` params: each value kept with its JSON type, dotted names
/// nesting into objects.
fn body_from(fields: Vec<(&str, &str, &Value)>) -> Result<Option<Value>, ConnectorError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut root = Map::new();
    for (path, param, v) in fields {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(ConnectorError::bad(param, "names no body field"));
        }
        if let Value::String(s) = v {
            check_len(param, s, super::MAX_VALUE_BYTES)?;
        }
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut at = &mut root;
        for part in parts {
            let slot = at
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            at = match slot {
                Value::Object(m) => m,
                _ => {
                    return Err(ConnectorError::bad(
                        param,
                        format!("body field `{part}` is both a value and an object"),
                    ))
                }
            };
        }
        if at.insert(last.to_string(), v.clone()).is_some() {
            return Err(ConnectorError::bad(
                param,
                format!("body field `{last}` is both a value and an object"),
            ));
        }
    }
    Ok(Some(Value::Object(root)))
}

/// How much of a response body an outcome keeps.
const RESPONSE_EXCERPT_BYTES: usize = 512;

/// Send `call` exactly as prepared: no redirects followed, the token read here and marked
/// sensitive, errors without the URL when the URL is a secret.
pub(crate) async fn send(call: &HttpCall) -> Result<String, Undone> {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    let shown = call.shown_url();
    let what = format!("{} {shown}", call.method);
    let client = reqwest::Client::builder()
        .timeout(call.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("{what}: http client: {e}"))?;
    let method =
        reqwest::Method::from_bytes(call.method.as_bytes()).map_err(|e| format!("{what}: {e}"))?;
    let mut headers = HeaderMap::new();
    for h in &call.headers {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|e| format!("{what}: header {}: {e}", h.name))?;
        let value = match &h.value {
            HeaderText::Plain(v) => {
                HeaderValue::from_str(v).map_err(|e| format!("{what}: header {}: {e}", h.name))?
            }
            HeaderText::BearerFromEnv(var) => {
                let token = std::env::var(var).map_err(|_| {
                    format!(
                        "{what}: not sent: environment variable {var} (the API token) is not set"
                    )
                })?;
                let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    format!(
                        "{what}: not sent: environment variable {var} does not hold a valid token"
                    )
                })?;
                v.set_sensitive(true);
                v
            }
        };
        headers.append(name, value);
    }
    let mut req = client.request(method, call.url.clone()).headers(headers);
    if let Some(b) = &call.body {
        let bytes =
            crate::sanitize::json::to_string(b).map_err(|e| format!("{what}: body: {e}"))?;
        req = req.body(bytes);
    }
    let mut resp = req.send().await.map_err(|e| {
        // Only a connection never made (refused, DNS, TLS handshake) certainly sent nothing.
        let certainly_not_sent = e.is_connect() || e.is_builder();
        let detail = format!("{what}: {}", super::with_causes(&e.without_url()));
        if certainly_not_sent {
            Undone::from(detail)
        } else {
            Undone::unknown(detail)
        }
    })?;
    let status = resp.status();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Ok(Some(chunk)) = resp.chunk().await {
        total += chunk.len();
        let room = RESPONSE_EXCERPT_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if total > 64 * RESPONSE_EXCERPT_BYTES {
            break;
        }
    }
    let mut detail = format!("{what}: HTTP {}", status.as_u16());
    if total > 0 {
        let mut shown_body = super::excerpt(&kept, RESPONSE_EXCERPT_BYTES);
        if total > kept.len() {
            shown_body.push_str(&format!(" (response cut at {} bytes)", kept.len()));
        }
        detail.push_str(&format!(" response {shown_body}"));
    }
    if status.is_success() {
        Ok(detail)
    } else {
        Err(Undone::answered(detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connector::{params, ConnectorConfig, Connectors};
    use serde_json::json;

    fn apis(base: &str, token_env: &str) -> Connectors {
        let mut c = ConnectorConfig::default();
        c.http.api.insert(
            "edr".into(),
            ApiConfig {
                base_url: base.into(),
                token_env: token_env.into(),
                methods: vec![],
            },
        );
        Connectors::from_config(&c, "/tmp/bl.txt".into()).expect("config")
    }

    #[test]
    fn values_are_placed_into_encoded_segments_and_query_pairs() {
        let c = apis("https://edr.example.com/api/v1", "EDR_TOKEN");
        let ua = concat!("vigil/", env!("CARGO_PKG_VERSION"));
        let call = c
            .dry_run(
                "http",
                &params(json!({
                    "api": "edr", "method": "POST",
                    "path.1": "hosts", "path.2": "../../admin;x=1?y#f%2e", "path.3": "isolate",
                    "query.reason": "a&b=c d", "header.X-Case": 42,
                    "body.host.name": "web 01", "body.count": 3
                })),
                "vigil-1-abc",
            )
            .expect("call");
        assert_eq!(
            call.to_string(),
            format!("POST https://edr.example.com/api/v1/hosts/..%2F..%2Fadmin%3Bx%3D1%3Fy%23f%252e/isolate?reason=a%26b%3Dc+d \
             headers {{\"User-Agent\":\"{ua}\",\"Authorization\":\"Bearer ******** (token from environment variable EDR_TOKEN)\",\
             \"Content-Type\":\"application/json\",\"Idempotency-Key\":\"vigil-1-abc\",\"X-Case\":\"42\"}} \
             body {{\"host\":{{\"name\":\"web 01\"}},\"count\":3}}")
        );
    }

    #[test]
    fn refusals_name_the_param() {
        let c = apis("https://edr.example.com/api/v1/", "");
        let base = json!({"api": "edr", "method": "POST"});
        let with = |extra: Value| {
            let mut m = params(base.clone());
            m.extend(params(extra));
            c.describe("http", &m).expect_err("refused").to_string()
        };
        assert_eq!(
            with(json!({"path.1": ".."})),
            "param `path.1`: \"..\" is not a path segment (empty, `.` or `..`)"
        );
        assert_eq!(
            with(json!({"header.X-A": "a\r\nX-B: 1"})),
            "param `header.X-A`: contains CR (would end a header or line)"
        );
        assert_eq!(
            with(json!({"header.Host": "evil"})),
            "param `header.Host`: Host is set by vigil and cannot be set by a step"
        );
        assert!(with(json!({"header.X-A": "caf\u{e9}"})).contains("printable ASCII"));
        assert!(with(json!({"path.1": ["a", "b"]})).contains("is a list"));
        assert!(with(json!({"body.a": 1, "body.a.b": 2})).contains("both a value and an object"));
        assert!(with(json!({"bdy.a": 1})).contains("has no place in a http call"));
        let mut m = params(base.clone());
        m.insert("method".into(), json!("TRACE"));
        assert!(c
            .describe("http", &m)
            .expect_err("method")
            .to_string()
            .contains("not allowed"));
    }

    #[test]
    fn config_refuses_credentials_and_queries_in_the_base_url() {
        let mut c = ConnectorConfig::default();
        c.http.api.insert(
            "x".into(),
            ApiConfig {
                base_url: "https://u:p@h/".into(),
                token_env: String::new(),
                methods: vec![],
            },
        );
        let e = Connectors::from_config(&c, "/tmp/b".into()).expect_err("creds");
        assert_eq!(
            e.to_string(),
            "[connectors.http.api.x] base_url: put no credentials in the URL (use token_env)"
        );
        c.http.api.get_mut("x").expect("x").base_url = "https://h/a?b=c".into();
        assert!(Connectors::from_config(&c, "/tmp/b".into()).is_err());
        c.http.api.get_mut("x").expect("x").base_url = "ftp://h/".into();
        assert!(Connectors::from_config(&c, "/tmp/b".into()).is_err());
    }
}
