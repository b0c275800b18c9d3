//! The webhook connector: one JSON POST to the configured URL carrying the step's params as
//! JSON values. Owns only the body's shape; sending is `http::send`.

use super::http::HttpCall;
use super::{ConnectorError, Params};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;
use url::Url;

/// `[connectors.webhook]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where webhook actions POST; empty: webhook steps are never proposed.
    pub url: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    url: Url,
    timeout: Duration,
}

impl Webhook {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, ConnectorError> {
        Ok(Webhook {
            url: super::config_url("webhook", "url", url)?,
            timeout,
        })
    }

    pub(crate) fn from_config(c: &Config) -> Result<Option<Self>, ConnectorError> {
        super::non_empty(&c.url)
            .map(|u| Self::new(u, super::timeout_from(c.timeout_seconds)))
            .transpose()
    }

    /// Params: any names; each value goes, with its JSON type, under `params` in the body
    /// `{"source": "vigil", "idempotency_key": KEY, "params": {...}}`.
    pub(crate) fn prepare(
        &self,
        p: &mut Params<'_>,
        key: &str,
    ) -> Result<HttpCall, ConnectorError> {
        let params: Map<String, Value> = p
            .rest()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let body = json!({"source": "vigil", "idempotency_key": key, "params": params});
        HttpCall::json_post(&self.url, false, self.timeout, body, key)
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::connector::Connectors;
    use serde_json::{json, Map};
    use std::time::Duration;

    #[test]
    fn params_keep_their_json_types_in_the_body() {
        let c = Connectors::new("/tmp/bl.txt".into())
            .with_webhook("https://hooks.example.com/vigil", Duration::from_secs(5))
            .expect("webhook");
        let mut m = Map::new();
        m.insert("ip".into(), json!("10.0.0.1"));
        m.insert("port".into(), json!(443));
        m.insert("techniques".into(), json!(["T1071"]));
        assert_eq!(
            c.describe("webhook", &m).expect("describe"),
            format!(
                "POST https://hooks.example.com/vigil headers {{\"User-Agent\":\"vigil/{}\",\"Content-Type\":\"application/json\",\
                 \"Idempotency-Key\":\"<idempotency key>\"}} body {{\"source\":\"vigil\",\"idempotency_key\":\"<idempotency key>\",\
                 \"params\":{{\"ip\":\"10.0.0.1\",\"port\":443,\"techniques\":[\"T1071\"]}}}}",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
