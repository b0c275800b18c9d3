//! `[enrichment]` as the engine takes it: offline sources and online providers. The
//! configuration file deserialises into these types; the engine never reads the file itself.

use serde::Deserialize;

/// `[enrichment]`: offline sources and online providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichmentConfig {
    pub offline: bool,
    pub feeds_dir: String,
    pub geoip_city: String,
    pub geoip_country: String,
    pub geoip_asn: String,
    pub secrets_file: String,
    pub providers: ProvidersConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    pub abuseipdb: ProviderConfig,
    pub virustotal: ProviderConfig,
    pub otx: ProviderConfig,
    pub urlhaus: ProviderConfig,
    pub rdap: ProviderConfig,
}

/// One online provider's switch, endpoint and budgets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub enabled: bool,
    pub base_url: String,
    pub per_minute: u32,
    pub per_day: u32,
    pub timeout_seconds: u64,
    pub concurrency: usize,
    pub ttl_hours: u64,
    pub negative_ttl_minutes: u64,
    pub retries: u32,
}
