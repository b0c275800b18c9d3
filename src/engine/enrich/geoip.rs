//! GeoIP country, city and ASN from MaxMind-format databases (GeoLite2/GeoIP2 or compatible),
//! read once into memory. Owns the readers; answers nothing for addresses the databases do not
//! hold.

use maxminddb::{geoip2, PathElement, Reader};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;

/// Where an address is, as far as the configured databases know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeoInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_iso_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_organization: Option<String>,
}

impl GeoInfo {
    pub fn is_empty(&self) -> bool {
        *self == GeoInfo::default()
    }
}

/// The configured databases; any of them may be absent.
#[derive(Default)]
pub struct GeoIp {
    city: Option<Reader<Vec<u8>>>,
    country: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

fn open(path: Option<&Path>) -> Result<Option<Reader<Vec<u8>>>, String> {
    let Some(p) = path else {
        return Ok(None);
    };
    Reader::open_readfile(p)
        .map(Some)
        .map_err(|e| format!("{}: not a readable MaxMind database: {e}", p.display()))
}

impl GeoIp {
    /// Open whichever databases are configured.
    ///
    /// # Errors
    /// A configured file that is missing or not a MaxMind database, naming the file.
    pub fn open(
        city: Option<&Path>,
        country: Option<&Path>,
        asn: Option<&Path>,
    ) -> Result<Self, String> {
        Ok(GeoIp {
            city: open(city)?,
            country: open(country)?,
            asn: open(asn)?,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.city.is_some() || self.country.is_some() || self.asn.is_some()
    }

    /// What the databases say about `ip`. A corrupt record reads as "unknown", never as an
    /// error that would stop enrichment.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let mut g = GeoInfo::default();
        if let Some(r) = &self.city {
            if let Ok(Some(c)) = r.lookup(ip).and_then(|l| l.decode::<geoip2::City>()) {
                g.country_iso_code = c.country.iso_code.map(str::to_string);
                g.country_name = c.country.names.english.map(str::to_string);
                g.city_name = c.city.names.english.map(str::to_string);
            }
        }
        if g.country_iso_code.is_none() {
            if let Some(r) = &self.country {
                if let Ok(l) = r.lookup(ip) {
                    if let Ok(Some(c)) = l.decode::<geoip2::Country>() {
                        g.country_iso_code = c.country.iso_code.map(str::to_string);
                        g.country_name = c.country.names.english.map(str::to_string);
                    }
                    // ip-location-db's country databases write a flat `country_code`.
                    if g.country_iso_code.is_none() {
                        g.country_iso_code = l
                            .decode_path::<String>(&[PathElement::Key("country_code")])
                            .ok()
                            .flatten();
                    }
                }
            }
        }
        if let Some(r) = &self.asn {
            if let Ok(Some(a)) = r.lookup(ip).and_then(|l| l.decode::<geoip2::Asn>()) {
                g.asn = a.autonomous_system_number;
                g.as_organization = a.autonomous_system_organization.map(str::to_string);
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/geoip")
            .join(name)
    }

    #[test]
    fn maxmind_test_databases() {
        let g = GeoIp::open(
            Some(&fixture("GeoIP2-City-Test.mmdb")),
            Some(&fixture("GeoIP2-Country-Test.mmdb")),
            Some(&fixture("GeoLite2-ASN-Test.mmdb")),
        )
        .expect("fixtures open");
        // MaxMind's test data: 81.2.69.142 is London; 1.128.0.0/11 is AS1221 Telstra.
        let london = g.lookup("81.2.69.142".parse().expect("ip"));
        assert_eq!(london.country_iso_code.as_deref(), Some("GB"));
        assert_eq!(london.city_name.as_deref(), Some("London"));
        let telstra = g.lookup("1.128.0.0".parse().expect("ip"));
        assert_eq!(telstra.asn, Some(1221));
        assert_eq!(telstra.as_organization.as_deref(), Some("Telstra Pty Ltd"));
        assert!(g.lookup("10.0.0.1".parse().expect("ip")).is_empty());
    }

    #[test]
    fn a_bad_database_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("broken.mmdb");
        std::fs::write(&f, b"not a database").expect("write");
        let e = GeoIp::open(Some(&f), None, None).err().expect("refused");
        assert!(e.starts_with(&f.display().to_string()), "{e}");
    }
}
