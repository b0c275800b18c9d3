//! Extraction cases from real alert text (tests/fixtures/ioc, provenance in ATTRIBUTION.md).

use super::*;
use crate::engine::normalize::{normalize_line, Parsed};

const REAL: &str = include_str!("../../../tests/fixtures/ioc/real-alerts.jsonl");
const DEFANGED: &str = include_str!("../../../tests/fixtures/ioc/defanged.txt");

fn alert(n: usize) -> Alert {
    let line = REAL.lines().nth(n - 1).expect("fixture line");
    match normalize_line(line.as_bytes()).expect("fixture normalises") {
        Parsed::Alert(a, _) => *a,
        Parsed::Skipped => panic!("fixture line {n} is not an alert"),
    }
}

fn has(iocs: &[Ioc], kind: IocKind, value: &str) -> bool {
    iocs.iter().any(|i| i.kind == kind && i.value == value)
}

fn find<'a>(iocs: &'a [Ioc], kind: IocKind, value: &str) -> &'a Ioc {
    iocs.iter()
        .find(|i| i.kind == kind && i.value == value)
        .unwrap_or_else(|| panic!("{} {value} not found in {iocs:#?}", kind.label()))
}

#[test]
fn log4j_alert_gives_cve_addresses_and_the_jndi_url() {
    let iocs = extract(&alert(1));
    assert_eq!(
        find(&iocs, IocKind::Ipv4, "172.16.238.1").class,
        Some(IpClass::Private)
    );
    assert!(has(&iocs, IocKind::Cve, "CVE-2021-44228"));
    assert!(has(&iocs, IocKind::Url, "ldap://172.16.238.11:1389/a"));
    assert!(has(
        &iocs,
        IocKind::Url,
        "http://192.168.13.31:8080/log4shell/"
    ));
    let host = find(&iocs, IocKind::Ipv4, "192.168.13.31");
    assert!(
        host.fields.contains(&"http.hostname".to_string()),
        "{host:?}"
    );
}

#[test]
fn dns_query_name_is_a_domain_and_the_resolver_public() {
    let iocs = extract(&alert(2));
    let d = find(&iocs, IocKind::Domain, "suricata.io");
    assert_eq!(d.fields, vec!["dns.query.rrname".to_string()]);
    assert_eq!(
        find(&iocs, IocKind::Ipv4, "9.9.9.9").class,
        Some(IpClass::Public)
    );
}

#[test]
fn relative_http_url_is_joined_with_its_host() {
    let iocs = extract(&alert(3));
    assert!(has(&iocs, IocKind::Domain, "www.google.com"));
    assert!(has(
        &iocs,
        IocKind::Url,
        "http://www.google.com/AllWorkAndNoPlayMakesWillADullBoy"
    ));
}

#[test]
fn sni_and_cyu_fingerprint() {
    let iocs = extract(&alert(4));
    assert!(has(&iocs, IocKind::Domain, "clients1.google.com"));
    assert!(
        !iocs.iter().any(|i| i.kind.is_hash()),
        "a QUIC CYU fingerprint is not a file hash: {iocs:?}"
    );
}

#[test]
fn zero_padded_ipv6_is_canonical() {
    let iocs = extract(&alert(5));
    let src = find(&iocs, IocKind::Ipv6, "2a03:b0c0:2:d0::bd3:4001");
    assert_eq!(src.class, Some(IpClass::Public));
    assert!(src.fields.contains(&"source.ip".to_string()));
}

#[test]
fn sshd_full_log_user_and_source() {
    let iocs = extract(&alert(6));
    let ip = find(&iocs, IocKind::Ipv4, "45.124.37.241");
    assert!(ip.fields.contains(&"message".to_string()), "{ip:?}");
    assert!(ip.fields.contains(&"data.srcip".to_string()), "{ip:?}");
    assert!(has(&iocs, IocKind::UserName, "wazuh"));
    assert!(has(&iocs, IocKind::HostName, "master") || has(&iocs, IocKind::HostName, "amazon"));
}

#[test]
fn pam_user_in_parentheses() {
    assert!(has(&extract(&alert(7)), IocKind::UserName, "suricata"));
}

#[test]
fn file_names_are_not_domains() {
    let iocs = extract(&alert(8));
    assert!(
        !iocs.iter().any(|i| i.kind == IocKind::Domain),
        "index.html is a file: {iocs:?}"
    );
    assert!(has(&iocs, IocKind::Ipv4, "134.87.21.47"));
}

#[test]
fn office365_user_id_is_an_email() {
    let iocs = extract(&alert(9));
    assert!(has(&iocs, IocKind::Email, "smith@wazuh.com"));
    assert!(has(&iocs, IocKind::Ipv4, "13.226.52.104"));
}

#[test]
fn reverse_dns_names_are_not_sent_as_domains() {
    let iocs = extract(&alert(10));
    // in-addr.arpa is a public suffix of its own: the query name is a host, not a registrable
    // domain, and it must never become a domain lookup.
    assert!(
        !iocs
            .iter()
            .any(|i| i.kind == IocKind::Domain && i.value.ends_with("in-addr.arpa")),
        "{iocs:?}"
    );
    assert!(has(&iocs, IocKind::Ipv4, "203.95.212.41"), "{iocs:?}");
}

#[test]
fn audit_command_fields_are_scanned_without_inventing_indicators() {
    let iocs = extract(&alert(11));
    assert!(
        !iocs
            .iter()
            .any(|i| matches!(i.kind, IocKind::Domain | IocKind::Url)),
        "{iocs:?}"
    );
}

#[test]
fn percent_encoded_url_kept_whole() {
    let iocs = extract(&alert(12));
    let u = iocs
        .iter()
        .find(|i| i.kind == IocKind::Url)
        .expect("the Macie URL");
    assert!(u
        .value
        .starts_with("https://mt.us-west-1.macie.aws.amazon.com/posts/arn%3Aaws"));
    assert!(has(
        &iocs,
        IocKind::Domain,
        "mt.us-west-1.macie.aws.amazon.com"
    ));
}

#[test]
fn defanged_report_text() {
    let iocs = extract_text(DEFANGED, "message");
    for (k, v) in [
        (IocKind::Url, "http://evil-cdn.example.com/gate.php"),
        (IocKind::Url, "https://203.0.113.9:8443/x"),
        (IocKind::Domain, "evil-cdn.example.com"),
        (IocKind::Domain, "malware.top"),
        (IocKind::Ipv4, "185.220.101.4"),
        (IocKind::Email, "ops@bad-actor.ru"),
        (IocKind::Ipv6, "2001:db8::dead"),
        (IocKind::Url, "http://files.example.net/a.exe"),
    ] {
        assert!(has(&iocs, k, v), "{} {v} missing from {iocs:#?}", k.label());
    }
    assert!(!has(&iocs, IocKind::Domain, "a.exe"));
    assert!(!has(&iocs, IocKind::Domain, "gate.php"));
}

#[test]
fn defang_round_trips() {
    for (k, v) in [
        (IocKind::Url, "https://evil.example.com:8443/a.b?c=d.e"),
        (IocKind::Domain, "evil.example.com"),
        (IocKind::Ipv4, "185.220.101.4"),
        (IocKind::Email, "ops@bad-actor.ru"),
        (IocKind::Ipv6, "2001:db8::dead"),
    ] {
        let d = defang(k, v);
        assert_ne!(d, v, "{v} must change");
        assert!(!extract_text(&d, "x").is_empty() || k == IocKind::Ipv6);
        assert_eq!(refang(&d), v, "{d}");
    }
    assert_eq!(
        defang(IocKind::Url, "http://evil.example.com/a.php"),
        "hxxp://evil[.]example[.]com/a.php"
    );
}

#[test]
fn versions_times_and_macs_are_not_addresses() {
    let iocs = extract_text(
        "version 1.2.3.4.5 at 12:57:46.918 from 00:11:22:33:44:55 build 2.0.0",
        "m",
    );
    assert!(iocs.is_empty(), "{iocs:?}");
}

#[test]
fn hashes_by_length() {
    let iocs = extract_text(
        "md5 c7d0a1ea4ab73fa3e7cd72fc1eb5b492 sha1 797615cb676469dfb32b8e770a0955c1633fa0ee sha256 5ef391d886d04116cf84b584ae37ef136f83950ab69b7bfb2a6da7506f7b3a57",
        "m",
    );
    let kinds: Vec<IocKind> = iocs.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, vec![IocKind::Md5, IocKind::Sha1, IocKind::Sha256]);
}

#[test]
fn only_public_indicators_may_leave() {
    let iocs = extract_text(
        "10.0.0.1 8.8.8.8 http://192.168.1.1/x http://example.org/x fe80::1 100.64.1.1",
        "m",
    );
    let out: Vec<&str> = iocs
        .iter()
        .filter(|i| i.may_leave_the_machine())
        .map(|i| i.value.as_str())
        .collect();
    assert_eq!(out, vec!["http://example.org/x", "example.org", "8.8.8.8"]);
}

#[test]
fn hostile_text_is_bounded() {
    let big = "1.1.1.1 ".repeat(5000) + &"a.com ".repeat(5000);
    let mut out = Vec::new();
    text::scan(&big, "m", &mut out);
    assert!(out.len() <= text::MAX_PER_TEXT);
}
