//! Indicators in free text: refanging (`hxxp`, `[.]`, `(dot)`, `[:]`), defanging for copies,
//! and the scanners for each indicator kind. Pure functions on strings; no alert knowledge.

use super::{ip, Ioc, IocKind};
use regex::Regex;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in pattern compiles")
}

/// Defanging marks people put in indicators so they cannot be clicked, and what they stand for.
static DEFANG_MARKS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        (re(r"(?i)\bhxxp(s?)\b"), "http$1"),
        (re(r"(?i)\bfxp\b"), "ftp"),
        (re(r"\[\s*:\s*/\s*/\s*\]|\[:\]//"), "://"),
        (re(r"\[\s*:\s*\]"), ":"),
        (
            re(r"(?i)\[\s*(?:\.|dot)\s*\]|\(\s*(?:\.|dot)\s*\)|\{\s*(?:\.|dot)\s*\}"),
            ".",
        ),
        (
            re(r"(?i)\[\s*(?:@|at)\s*\]|\(\s*(?:@|at)\s*\)|\{\s*(?:@|at)\s*\}"),
            "@",
        ),
    ]
});

/// Undo common defanging so the scanners see real indicators. Text with no marks comes back
/// borrowed.
pub fn refang(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for (pattern, with) in DEFANG_MARKS.iter() {
        if pattern.is_match(&out) {
            out = std::borrow::Cow::Owned(pattern.replace_all(&out, *with).into_owned());
        }
    }
    out
}

/// A copy of an indicator that cannot be clicked or resolved by accident, for exports and
/// clipboards: `hxxp://evil[.]example/x`, `1[.]2[.]3[.]4`, `user[@]example[.]com`, `2001[:]db8[:][:]1`.
/// Hashes, CVE ids, user and host names come back unchanged.
pub fn defang(kind: IocKind, value: &str) -> String {
    match kind {
        IocKind::Url => {
            let (scheme, rest) = match value.split_once("://") {
                Some((s, r)) => (s, r),
                None => return value.replace('.', "[.]"),
            };
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "http" => "hxxp".to_string(),
                "https" => "hxxps".to_string(),
                "ftp" => "fxp".to_string(),
                _ => scheme.to_string(),
            };
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            format!("{scheme}://{}{path}", authority.replace('.', "[.]"))
        }
        IocKind::Domain | IocKind::Ipv4 => value.replace('.', "[.]"),
        IocKind::Email => value.replace('.', "[.]").replace('@', "[@]"),
        IocKind::Ipv6 => value.replace(':', "[:]"),
        _ => value.to_string(),
    }
}

static URL: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\b(?:https?|ftp|ldaps?|rmi)://[^\s"'<>\\^`{|}\x00-\x1f]+"#));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b[a-z0-9][a-z0-9._%+-]{0,63}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\b",
    )
});
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"));
static IPV6: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:(?:\.\d{1,3}){3})?"));
static HASH: LazyLock<Regex> = LazyLock::new(|| re(r"\b[0-9a-fA-F]{32,64}\b"));
static CVE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\bCVE-\d{4}-\d{4,7}\b"));
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z][a-z0-9-]{0,61}[a-z0-9]|xn--[a-z0-9-]{1,59})\b\.?",
    )
});
/// Log phrases that name an account (sshd, PAM, su, Windows logon text).
static USER_PHRASES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    vec![
        re(
            r"(?:[Ii]nvalid user|[Ff]ailed (?:password|publickey|none) for(?: invalid user)?|[Aa]ccepted (?:password|publickey|keyboard-interactive/pam) for|attempts exceeded for(?: invalid user)?) (.{1,64}?) from ",
        ),
        re(r"(?i)password check failed for user \(([^)\s][^)]{0,63})\)"),
        re(r"\b(?:user|ruser|logname|USER|account)=([^\s;,]{1,64})"),
        re(r"(?i)\bsession (?:opened|closed) for user ([^\s(]{1,64})"),
    ]
});

/// File extensions that are also top-level domains: `setup.sh` or `run.py` in a command line
/// is a file, not a host. In free text such a two-label name is not taken as a domain.
const FILE_LIKE_TLDS: &[&str] = &[
    "sh", "py", "pl", "rs", "md", "zip", "mov", "ps", "so", "pm", "exe", "bat", "cab", "jar",
    "lnk", "tar", "gz", "doc", "log", "conf", "cfg", "ini", "json", "yaml", "yml", "xml", "txt",
    "php", "asp", "aspx", "jsp", "html", "htm", "js", "css", "dll", "sys", "tmp", "bak",
];

/// A domain as written on the wire: lower-case, no trailing dot, under a public suffix
/// registries sell names in, with at least one label of its own.
pub fn valid_domain(name: &str, strict_files: bool) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.len() > 253 || !name.contains('.') || name.split('.').any(|l| l.is_empty()) {
        return None;
    }
    // Reverse-DNS names (in-addr.arpa, ip6.arpa) name an address, not a registrable domain.
    if name.parse::<Ipv4Addr>().is_ok() || name.ends_with(".arpa") {
        return None;
    }
    let domain = psl::domain(name.as_bytes())?;
    if !domain.suffix().is_known() {
        return None;
    }
    if strict_files {
        let labels = name.split('.').count();
        let tld = name.rsplit('.').next().unwrap_or_default();
        if labels == 2 && FILE_LIKE_TLDS.contains(&tld) {
            return None;
        }
    }
    Some(name)
}

/// Trailing characters that end a sentence or a quotation rather than a URL.
fn trim_url(u: &str) -> &str {
    let mut s = u.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"']);
    // A closing bracket belongs to the URL only if the URL opened one.
    for (open, close) in [('(', ')'), ('[', ']')] {
        while s.ends_with(close) && s.matches(open).count() < s.matches(close).count() {
            s = &s[..s.len() - 1];
        }
    }
    s.trim_end_matches(['.', ',', ';', ':', '!', '?'])
}

/// The host part of a URL, without user info, port or brackets.
pub fn url_host(u: &str) -> Option<String> {
    let parsed = url::Url::parse(u).ok()?;
    match parsed.host()? {
        url::Host::Domain(d) => Some(d.to_string()),
        url::Host::Ipv4(v4) => Some(v4.to_string()),
        url::Host::Ipv6(v6) => Some(v6.to_string()),
    }
}

/// Whether a match sits inside a longer dotted/colon run (a version string such as 1.2.3.4.5,
/// an OID, a MAC address, a hex word) and so is not an address of its own.
fn embedded(text: &str, start: usize, end: usize, joiner: char) -> bool {
    let before: Vec<char> = text[..start].chars().rev().take(2).collect();
    let after: Vec<char> = text[end..].chars().take(2).collect();
    let side = |v: &[char]| match v {
        [c, ..] if c.is_ascii_alphanumeric() || *c == '_' => true,
        [j, n, ..] => *j == joiner && n.is_ascii_alphanumeric(),
        _ => false,
    };
    side(&before) || side(&after)
}

/// Most indicators kept from one text: a hostile line cannot make extraction unbounded.
pub const MAX_PER_TEXT: usize = 256;

/// Every indicator in a piece of free text, found under `field`. Defanged indicators are
/// recognised; values come back refanged and in canonical case.
pub fn scan(text: &str, field: &str, out: &mut Vec<Ioc>) {
    let text = refang(text);
    let text = text.as_ref();
    let start_len = out.len();
    let push = |out: &mut Vec<Ioc>, ioc: Ioc| {
        if out.len() - start_len < MAX_PER_TEXT {
            out.push(ioc);
        }
    };
    // Spans already explained by a URL or an e-mail: their hosts are not also free-text domains.
    let mut taken: Vec<(usize, usize)> = Vec::new();
    for m in URL.find_iter(text) {
        let u = trim_url(m.as_str());
        if let Some(host) = url_host(u) {
            taken.push((m.start(), m.start() + u.len()));
            push(out, Ioc::new(IocKind::Url, u.to_string(), field));
            host_ioc(&host, field, out);
        }
    }
    for m in EMAIL.find_iter(text) {
        if taken.iter().any(|(s, e)| m.start() >= *s && m.end() <= *e) {
            continue;
        }
        let v = m.as_str().to_ascii_lowercase();
        let Some((_, dom)) = v.rsplit_once('@') else {
            continue;
        };
        if valid_domain(dom, false).is_some() {
            taken.push((m.start(), m.end()));
            push(out, Ioc::new(IocKind::Email, v, field));
        }
    }
    for m in IPV4.find_iter(text) {
        if embedded(text, m.start(), m.end(), '.') {
            continue;
        }
        if let Ok(v4) = m.as_str().parse::<Ipv4Addr>() {
            push(out, Ioc::ip(IpAddr::V4(v4), field));
        }
    }
    for m in IPV6.find_iter(text) {
        let s = m.as_str();
        if s.len() < 3 || !s.contains("::") && s.matches(':').count() < 7 {
            continue;
        }
        if embedded(text, m.start(), m.end(), ':') {
            continue;
        }
        if let Ok(v6) = s.parse::<Ipv6Addr>() {
            if !v6.is_unspecified() {
                push(out, Ioc::ip(IpAddr::V6(v6), field));
            }
        }
    }
    for m in HASH.find_iter(text) {
        let kind = match m.len() {
            32 => IocKind::Md5,
            40 => IocKind::Sha1,
            64 => IocKind::Sha256,
            _ => continue,
        };
        let v = m.as_str();
        if v.bytes().all(|b| b.is_ascii_digit()) || v.bytes().all(|b| b.is_ascii_alphabetic()) {
            continue;
        }
        push(out, Ioc::new(kind, v.to_ascii_lowercase(), field));
    }
    for m in CVE.find_iter(text) {
        push(
            out,
            Ioc::new(IocKind::Cve, m.as_str().to_ascii_uppercase(), field),
        );
    }
    for m in DOMAIN.find_iter(text) {
        if taken.iter().any(|(s, e)| m.start() < *e && m.end() > *s) {
            continue;
        }
        // "/var/www/index.html" and "C:\x\setup.sh" are paths, not hosts.
        let prev = text[..m.start()].chars().next_back();
        if matches!(prev, Some('/' | '\\' | '@' | '-' | '_')) {
            continue;
        }
        if let Some(d) = valid_domain(m.as_str(), true) {
            push(out, Ioc::new(IocKind::Domain, d, field));
        }
    }
    for p in USER_PHRASES.iter() {
        for c in p.captures_iter(text) {
            if let Some(u) = c.get(1) {
                let name = u.as_str().trim().trim_matches(['"', '\'', '(', ')']);
                if !name.is_empty() && name.len() <= 64 {
                    push(out, Ioc::new(IocKind::UserName, name.to_string(), field));
                }
            }
        }
    }
}

/// A URL's host as its own indicator: an address, a domain, or (for internal names) a host.
pub fn host_ioc(host: &str, field: &str, out: &mut Vec<Ioc>) {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        out.push(Ioc::ip(ip, field));
    } else if let Some(ip) = reverse_v4(h) {
        out.push(Ioc::ip(IpAddr::V4(ip), field));
    } else if let Some(d) = valid_domain(h, false) {
        out.push(Ioc::new(IocKind::Domain, d, field));
    } else if !h.is_empty()
        && h.len() <= 253
        && h.bytes().any(|b| b.is_ascii_alphanumeric())
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        out.push(Ioc::new(IocKind::HostName, h.to_ascii_lowercase(), field));
    }
}

/// The address a PTR query name asks about: `41.212.95.203.in-addr.arpa.` is 203.95.212.41.
fn reverse_v4(name: &str) -> Option<Ipv4Addr> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let octets = lower.strip_suffix(".in-addr.arpa")?;
    let mut parts: Vec<&str> = octets.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    parts.reverse();
    parts.join(".").parse().ok()
}

/// The class of an address found in text, re-exported for callers that classify alone.
pub fn class_of(ip: IpAddr) -> ip::IpClass {
    ip::classify(ip)
}
