//! Indicators of compromise in an alert: addresses (with their class), domains, URLs, e-mail
//! addresses, hashes, user and host names, CVE ids, taken from the normalised fields, the
//! rule name and message (Wazuh `full_log`), and the producer's URL, host, command-line, user
//! and hash fields. Owns extraction, refanging and defanging; never looks anything up.

pub mod ip;
pub mod text;

use super::alert::Alert;
pub use ip::{classify, IpClass};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
pub use text::{defang, refang};

/// What an indicator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IocKind {
    Ipv4,
    Ipv6,
    Domain,
    Url,
    Email,
    Md5,
    Sha1,
    Sha256,
    UserName,
    HostName,
    Cve,
}

impl IocKind {
    pub const ALL: &'static [IocKind] = &[
        IocKind::Ipv4,
        IocKind::Ipv6,
        IocKind::Domain,
        IocKind::Url,
        IocKind::Email,
        IocKind::Md5,
        IocKind::Sha1,
        IocKind::Sha256,
        IocKind::UserName,
        IocKind::HostName,
        IocKind::Cve,
    ];

    pub fn label(self) -> &'static str {
        match self {
            IocKind::Ipv4 => "ipv4",
            IocKind::Ipv6 => "ipv6",
            IocKind::Domain => "domain",
            IocKind::Url => "url",
            IocKind::Email => "email",
            IocKind::Md5 => "md5",
            IocKind::Sha1 => "sha1",
            IocKind::Sha256 => "sha256",
            IocKind::UserName => "user-name",
            IocKind::HostName => "host-name",
            IocKind::Cve => "cve",
        }
    }

    /// ECS `threat.indicator.type` for this kind.
    pub fn ecs_type(self) -> &'static str {
        match self {
            IocKind::Ipv4 | IocKind::Ipv6 => "ipv4-addr",
            IocKind::Domain | IocKind::HostName => "domain-name",
            IocKind::Url => "url",
            IocKind::Email => "email-addr",
            IocKind::Md5 | IocKind::Sha1 | IocKind::Sha256 => "file",
            IocKind::UserName => "user-account",
            IocKind::Cve => "software",
        }
    }

    pub fn is_hash(self) -> bool {
        matches!(self, IocKind::Md5 | IocKind::Sha1 | IocKind::Sha256)
    }
}

/// One indicator and every field of the alert it was found in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ioc {
    #[serde(rename = "type")]
    pub kind: IocKind,
    /// Canonical form: refanged; lower-case for domains, e-mail and hashes; upper-case CVE ids.
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<IpClass>,
    /// ECS field names for normalised fields, the producer's dotted path otherwise.
    pub fields: Vec<String>,
}

impl Ioc {
    pub fn new(kind: IocKind, value: String, field: &str) -> Ioc {
        Ioc {
            kind,
            value,
            class: None,
            fields: vec![field.to_string()],
        }
    }

    pub fn ip(ip: IpAddr, field: &str) -> Ioc {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        Ioc {
            kind: if ip.is_ipv4() {
                IocKind::Ipv4
            } else {
                IocKind::Ipv6
            },
            value: ip.to_string(),
            class: Some(ip::classify(ip)),
            fields: vec![field.to_string()],
        }
    }

    /// Whether this indicator may be sent to an online provider: public addresses, domains
    /// under a public suffix, URLs on such hosts, hashes. Never private or reserved space,
    /// user names or internal host names.
    pub fn may_leave_the_machine(&self) -> bool {
        match self.kind {
            IocKind::Ipv4 | IocKind::Ipv6 => self.class == Some(IpClass::Public),
            IocKind::Domain => true,
            IocKind::Url => text::url_host(&self.value).is_some_and(|h| {
                let h = h.trim_start_matches('[').trim_end_matches(']');
                match h.parse::<IpAddr>() {
                    Ok(ip) => ip::classify(ip) == IpClass::Public,
                    Err(_) => text::valid_domain(h, false).is_some(),
                }
            }),
            IocKind::Md5 | IocKind::Sha1 | IocKind::Sha256 => true,
            IocKind::Email | IocKind::UserName | IocKind::HostName | IocKind::Cve => false,
        }
    }
}

/// Merge repeats of the same indicator, keeping the order of first appearance and every field.
pub fn dedupe(list: Vec<Ioc>) -> Vec<Ioc> {
    let mut out: Vec<Ioc> = Vec::with_capacity(list.len());
    let mut at: HashMap<(IocKind, String), usize> = HashMap::new();
    for ioc in list {
        match at.get(&(ioc.kind, ioc.value.clone())) {
            Some(&i) => {
                for f in ioc.fields {
                    if !out[i].fields.contains(&f) {
                        out[i].fields.push(f);
                    }
                }
            }
            None => {
                at.insert((ioc.kind, ioc.value.clone()), out.len());
                out.push(ioc);
            }
        }
    }
    out
}

/// Indicators in free text alone (the fuzz target's entry point).
pub fn extract_text(s: &str, field: &str) -> Vec<Ioc> {
    let mut out = Vec::new();
    text::scan(s, field, &mut out);
    dedupe(out)
}

/// Longest string value scanned: enough for any command line, bounded for hostile input.
const MAX_SCAN_BYTES: usize = 16 * 1024;
/// Most string values of the producer's document visited.
const MAX_VALUES: usize = 4096;
const MAX_DEPTH: usize = 32;

fn clip(s: &str) -> &str {
    if s.len() <= MAX_SCAN_BYTES {
        return s;
    }
    let mut end = MAX_SCAN_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// How a producer field is read, decided by its last key with case and separators ignored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldRole {
    /// Free text that may hold any indicator (URLs, command lines, references).
    Text,
    /// A host name or address.
    Host,
    User,
    Address,
    Hash,
}

fn role(key: &str) -> Option<FieldRole> {
    let k: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    Some(match k.as_str() {
        "url" | "uri" | "fullurl" | "requesturl" | "httprefer" | "referer" | "referrer"
        | "commandline" | "command" | "cmdline" | "processcommandline" | "parentcommandline"
        | "scriptblocktext" | "httpuseragent" | "useragent" | "payloadprintable" | "mailfrom"
        | "rcptto" | "from" | "to" | "sender" | "recipient" | "rdata" | "siteurl"
        | "alertweburl" => FieldRole::Text,
        "hostname" | "host" | "sni" | "rrname" | "queryname" | "servername" | "computer"
        | "workstationname" | "publicdnsname" | "privatednsname" => FieldRole::Host,
        "user" | "username" | "srcuser" | "dstuser" | "targetusername" | "subjectusername"
        | "accountname" | "userid" | "actor" | "logonuser" => FieldRole::User,
        "srcip" | "dstip" | "destip" | "ipaddress" | "clientip" | "sourceip" | "ipaddressv4"
        | "publicip" | "privateipaddress" | "remoteip" | "ip" => FieldRole::Address,
        "md5" | "sha1" | "sha256" | "hashes" | "filehash" => FieldRole::Hash,
        _ => return None,
    })
}

fn producer_field(path: &str, key: &str, s: &str, doc: &Value, out: &mut Vec<Ioc>) {
    let Some(role) = role(key) else {
        return;
    };
    let s = clip(s.trim());
    if s.is_empty() {
        return;
    }
    match role {
        FieldRole::Text | FieldRole::Hash => {
            // Suricata gives the request path and the Host header apart: join them.
            if path == "http.url" && s.starts_with('/') {
                let http = doc.get("http");
                if let Some(Value::String(h)) = http.and_then(|h| h.get("hostname")) {
                    let port = match http
                        .and_then(|h| h.get("http_port"))
                        .and_then(Value::as_u64)
                    {
                        Some(p) if p != 80 => format!(":{p}"),
                        _ => String::new(),
                    };
                    let full = format!("http://{h}{port}{s}");
                    if url::Url::parse(&full).is_ok() {
                        out.push(Ioc::new(IocKind::Url, full, path));
                    }
                }
            }
            text::scan(s, path, out);
        }
        FieldRole::Host => {
            if s.contains(char::is_whitespace) {
                text::scan(s, path, out);
            } else {
                text::host_ioc(&refang(s), path, out);
            }
        }
        FieldRole::User => {
            // An account id is a name, not free text: a GUID is not a hash, and only a whole
            // e-mail address becomes an e-mail indicator.
            let email = extract_text(s, path)
                .into_iter()
                .find(|i| i.kind == IocKind::Email && i.value.eq_ignore_ascii_case(s));
            match email {
                Some(e) => out.push(e),
                None if s.len() <= 128 => {
                    out.push(Ioc::new(IocKind::UserName, s.to_string(), path));
                }
                None => {}
            }
        }
        FieldRole::Address => match s.parse::<IpAddr>() {
            Ok(ip) => out.push(Ioc::ip(ip, path)),
            Err(_) => text::scan(s, path, out),
        },
    }
}

fn walk(
    v: &Value,
    path: &mut String,
    key: &str,
    depth: usize,
    budget: &mut usize,
    doc: &Value,
    out: &mut Vec<Ioc>,
) {
    if depth > MAX_DEPTH || *budget == 0 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(child, path, k, depth + 1, budget, doc, out);
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for child in a {
                walk(child, path, key, depth + 1, budget, doc, out);
            }
        }
        Value::String(s) => {
            *budget -= 1;
            producer_field(path, key, s, doc, out);
        }
        _ => {}
    }
}

/// Every indicator of one alert, deduplicated, in order of first appearance.
pub fn extract(a: &Alert) -> Vec<Ioc> {
    let mut out = Vec::new();
    if let Some(ip) = a.source_ip {
        out.push(Ioc::ip(ip, "source.ip"));
    }
    if let Some(ip) = a.destination_ip {
        out.push(Ioc::ip(ip, "destination.ip"));
    }
    if let Some(h) = &a.host_name {
        match h.parse::<IpAddr>() {
            Ok(ip) => out.push(Ioc::ip(ip, "host.name")),
            Err(_) => out.push(Ioc::new(
                IocKind::HostName,
                h.to_ascii_lowercase(),
                "host.name",
            )),
        }
    }
    if let Some(u) = &a.user_name {
        out.push(Ioc::new(IocKind::UserName, u.clone(), "user.name"));
    }
    if let Some(r) = &a.rule_name {
        text::scan(clip(r), "rule.name", &mut out);
    }
    if let Some(m) = &a.message {
        text::scan(clip(m), "message", &mut out);
    }
    if let Ok(doc) = serde_json::from_str::<Value>(&a.original) {
        let mut budget = MAX_VALUES;
        walk(&doc, &mut String::new(), "", 0, &mut budget, &doc, &mut out);
    }
    dedupe(out)
}

#[cfg(test)]
mod tests;

/// The lists a playbook can iterate with `for_each: ioc.KEY`: one per kind, plus `ip_public`
/// (public IPv4 and IPv6 addresses: the ones worth blocking).
pub const LIST_KEYS: &[&str] = &[
    "ip_public",
    "ipv4",
    "ipv6",
    "domain",
    "url",
    "email",
    "md5",
    "sha1",
    "sha256",
    "user_name",
    "host_name",
    "cve",
];

/// An alert's indicators grouped for playbooks: `{"ipv4": [...], "domain": [...], ...,
/// "ip_public": [...]}`, each list in order of first appearance, without repeats.
pub fn for_playbooks(iocs: &[Ioc]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for key in LIST_KEYS {
        m.insert((*key).to_string(), serde_json::Value::Array(Vec::new()));
    }
    let mut push = |key: &str, v: &str| {
        if let Some(serde_json::Value::Array(list)) = m.get_mut(key) {
            let v = serde_json::Value::String(v.to_string());
            if !list.contains(&v) {
                list.push(v);
            }
        }
    };
    for i in iocs {
        push(&i.kind.label().replace('-', "_"), &i.value);
        if matches!(i.kind, IocKind::Ipv4 | IocKind::Ipv6) && i.class == Some(IpClass::Public) {
            push("ip_public", &i.value);
        }
    }
    serde_json::Value::Object(m)
}
