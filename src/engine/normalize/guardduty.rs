//! AWS findings: GuardDuty's own finding format (as the API, the S3 export and EventBridge
//! deliver it, in camelCase or the CLI's PascalCase) and the Security Hub ASFF wrapping of any
//! product's finding. A GuardDuty finding keeps one identity on both paths: its ARN.

use super::{
    content_fingerprint, field, first, kind, opt_ip, opt_port, opt_str, reject, str_list,
    timestamp, Parsed, Reject, Value,
};
use crate::engine::alert::{sha256_hex, Alert, Severity};
use serde_json::Map;
use std::net::IpAddr;

/// A GuardDuty finding, an EventBridge event carrying one, or a `findings` list.
pub(super) fn recognises(doc: &Value) -> bool {
    is_finding(doc)
        || doc.get("detail-type").is_some() && doc.get("detail").is_some_and(Value::is_object)
        || findings_list(doc).is_some()
}

fn is_finding(doc: &Value) -> bool {
    let has = |camel: &str, pascal: &str| doc.get(camel).or_else(|| doc.get(pascal)).is_some();
    has("schemaVersion", "SchemaVersion")
        && has("accountId", "AccountId")
        && has("type", "Type")
        && (has("service", "Service") || has("resource", "Resource"))
}

/// A Security Hub finding (AWS Security Finding Format).
pub(super) fn recognises_asff(doc: &Value) -> bool {
    doc.get("ProductArn").is_some()
        && doc.get("AwsAccountId").is_some()
        && doc.get("SchemaVersion").is_some()
}

fn findings_list(doc: &Value) -> Option<&Vec<Value>> {
    match doc.get("findings").or_else(|| doc.get("Findings")) {
        Some(Value::Array(a)) => Some(a),
        _ => None,
    }
}

/// Any GuardDuty-shaped document in one line: a finding, an EventBridge event or a list
/// holding exactly one finding (a list of many is a whole document, read as one).
pub(super) fn normalize_any(doc: &Value, text: &str) -> Result<Parsed, Reject> {
    if let (Some(kind), Some(detail)) = (doc.get("detail-type"), doc.get("detail")) {
        return match kind.as_str() {
            Some("GuardDuty Finding") => normalize_finding(detail, text),
            Some(k) if k.starts_with("Security Hub Findings") => {
                let one = single(detail, "detail.findings")?;
                normalize_asff(one, text)
            }
            _ => Err(reject(format!(
                "field `detail-type`: {} is not a GuardDuty or Security Hub finding event",
                super::describe(kind)
            ))),
        };
    }
    if findings_list(doc).is_some() {
        let one = single(doc, "findings")?;
        return if recognises_asff(one) {
            normalize_asff(one, text)
        } else {
            normalize_finding(one, text)
        };
    }
    normalize_finding(doc, text)
}

fn single<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, Reject> {
    match findings_list(doc) {
        Some(list) if list.len() == 1 => Ok(&list[0]),
        Some(list) => Err(reject(format!(
            "field `{path}`: {} findings in one line; a line holds one finding (a file that \
             is one JSON document may hold any number)",
            list.len()
        ))),
        None => Err(reject(format!("field `{path}`: missing or not a list"))),
    }
}

/// The CLI writes PascalCase (`AccountId`); the API, S3 export and EventBridge camelCase.
fn camel_case(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let mut c = k.chars();
                    let key = match c.next() {
                        Some(f) => f.to_lowercase().chain(c).collect(),
                        None => String::new(),
                    };
                    (key, camel_case(v))
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(camel_case).collect()),
        other => other.clone(),
    }
}

/// GuardDuty's severity bands: low 1.0-3.9, medium 4.0-6.9, high 7.0-8.9, critical 9.0-10.
fn severity_band(score: f64) -> Severity {
    if score < 4.0 {
        Severity::Low
    } else if score < 7.0 {
        Severity::Medium
    } else if score < 9.0 {
        Severity::High
    } else {
        Severity::Critical
    }
}

fn normalize_finding(doc: &Value, text: &str) -> Result<Parsed, Reject> {
    if !doc.is_object() {
        return Err(reject(format!(
            "a GuardDuty finding must be a JSON object, found {}",
            kind(doc)
        )));
    }
    let converted;
    let f = if doc.get("SchemaVersion").is_some() && doc.get("schemaVersion").is_none() {
        converted = camel_case(doc);
        &converted
    } else {
        doc
    };
    let (severity, original) = match field(f, "severity") {
        Some(v @ (Value::Number(_) | Value::String(_))) => {
            let raw = match v {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            };
            match raw.parse::<f64>() {
                Ok(x) if (0.0..=10.0).contains(&x) => (severity_band(x), Some(raw)),
                _ => {
                    return Err(reject(format!(
                        "field `severity`: expected a number 0-10, found {}",
                        super::describe(v)
                    )))
                }
            }
        }
        Some(v) => {
            return Err(reject(format!(
                "field `severity`: expected a number 0-10, found {}",
                kind(v)
            )))
        }
        None => return Err(reject("field `severity`: missing")),
    };
    let ts = if field(f, "createdAt").is_some() {
        timestamp(f, "createdAt")?
    } else {
        timestamp(f, "updatedAt")?
    };
    let finding_type = opt_str(f, "type")?;
    let ends = endpoints(f)?;
    let instance = "resource.instanceDetails";
    let alert = Alert {
        timestamp: ts,
        module: "guardduty".into(),
        severity,
        severity_original: original,
        rule_category: finding_type
            .as_deref()
            .and_then(|t| t.split_once(':'))
            .map(|(purpose, _)| purpose.to_string()),
        rule_id: finding_type,
        rule_name: opt_str(f, "title")?,
        source_ip: ends.source_ip,
        source_port: ends.source_port,
        destination_ip: ends.destination_ip,
        destination_port: ends.destination_port,
        transport: ends.transport,
        host_name: opt_str(f, &format!("{instance}.instanceId"))?,
        user_name: opt_str(f, "resource.accessKeyDetails.userName")?,
        technique_ids: Vec::new(),
        tactics: Vec::new(),
        message: opt_str(f, "description")?,
        original: text.to_string(),
    };
    let fp = match (opt_str(f, "arn")?, opt_str(f, "id")?) {
        (Some(arn), _) => sha256_hex(format!("guardduty\0{arn}").as_bytes()),
        (None, Some(id)) => sha256_hex(
            format!(
                "guardduty\0{}\0{}\0{id}",
                opt_str(f, "accountId")?.unwrap_or_default(),
                opt_str(f, "region")?.unwrap_or_default()
            )
            .as_bytes(),
        ),
        (None, None) => content_fingerprint(f),
    };
    Ok(Parsed::Alert(Box::new(alert), fp))
}

#[derive(Default)]
struct Endpoints {
    source_ip: Option<IpAddr>,
    source_port: Option<u16>,
    destination_ip: Option<IpAddr>,
    destination_port: Option<u16>,
    transport: Option<String>,
}

/// Who talked to whom, by the finding's action: the remote side is the source of inbound
/// connections, probes and API calls, the destination of outbound connections.
fn endpoints(f: &Value) -> Result<Endpoints, Reject> {
    let action = "service.action";
    let instance_ip = {
        let nics = "resource.instanceDetails.networkInterfaces";
        match field(f, nics) {
            Some(Value::Array(list)) => match list.first() {
                Some(first) => opt_ip(first, "privateIpAddress").map_err(|r| {
                    Reject(r.0.replacen("field `", &format!("field `{nics}[0]."), 1))
                })?,
                None => None,
            },
            Some(Value::Object(_)) => opt_ip(f, &format!("{nics}.privateIpAddress"))?,
            _ => None,
        }
    };
    let mut e = Endpoints::default();
    match opt_str(f, &format!("{action}.actionType"))?.as_deref() {
        Some("NETWORK_CONNECTION") => {
            let n = format!("{action}.networkConnectionAction");
            let remote = opt_ip(f, &format!("{n}.remoteIpDetails.ipAddressV4"))?;
            let local = match opt_ip(f, &format!("{n}.localIpDetails.ipAddressV4"))? {
                Some(ip) => Some(ip),
                None => instance_ip,
            };
            let remote_port = opt_port(f, &format!("{n}.remotePortDetails.port"))?;
            let local_port = opt_port(f, &format!("{n}.localPortDetails.port"))?;
            e.transport = opt_str(f, &format!("{n}.protocol"))?.map(|p| p.to_ascii_lowercase());
            if opt_str(f, &format!("{n}.connectionDirection"))?.as_deref() == Some("OUTBOUND") {
                (e.source_ip, e.source_port) = (local, local_port);
                (e.destination_ip, e.destination_port) = (remote, remote_port);
            } else {
                (e.source_ip, e.source_port) = (remote, remote_port);
                (e.destination_ip, e.destination_port) = (local, local_port);
            }
        }
        Some("PORT_PROBE") => {
            let details = format!("{action}.portProbeAction.portProbeDetails");
            let first = match field(f, &details) {
                Some(Value::Array(list)) => list.first(),
                Some(v @ Value::Object(_)) => Some(v),
                _ => None,
            };
            if let Some(p) = first {
                let at = |r: Reject| {
                    Reject(r.0.replacen("field `", &format!("field `{details}[0]."), 1))
                };
                e.source_ip = opt_ip(p, "remoteIpDetails.ipAddressV4").map_err(at)?;
                e.destination_port = opt_port(p, "localPortDetails.port").map_err(at)?;
                e.destination_ip = match opt_ip(p, "localIpDetails.ipAddressV4").map_err(at)? {
                    Some(ip) => Some(ip),
                    None => instance_ip,
                };
            }
        }
        Some("AWS_API_CALL") => {
            e.source_ip = opt_ip(
                f,
                &format!("{action}.awsApiCallAction.remoteIpDetails.ipAddressV4"),
            )?;
        }
        Some("KUBERNETES_API_CALL") => {
            e.source_ip = opt_ip(
                f,
                &format!("{action}.kubernetesApiCallAction.remoteIpDetails.ipAddressV4"),
            )?;
        }
        Some("DNS_REQUEST") => {
            e.source_ip = instance_ip;
            e.transport = opt_str(f, &format!("{action}.dnsRequestAction.protocol"))?
                .map(|p| p.to_ascii_lowercase());
        }
        _ => e.source_ip = instance_ip,
    }
    Ok(e)
}

/// ASFF severity label (or its 0-100 normalised score) on vigil's scale.
fn asff_severity(f: &Value) -> Result<(Severity, Option<String>), Reject> {
    if let Some(label) = opt_str(f, "Severity.Label")? {
        let sev = match label.to_ascii_uppercase().as_str() {
            "INFORMATIONAL" | "LOW" => Severity::Low,
            "MEDIUM" => Severity::Medium,
            "HIGH" => Severity::High,
            "CRITICAL" => Severity::Critical,
            _ => {
                return Err(reject(format!(
                    "field `Severity.Label`: expected INFORMATIONAL, LOW, MEDIUM, HIGH or \
                     CRITICAL, found {label:?}"
                )))
            }
        };
        return Ok((sev, Some(label)));
    }
    match super::opt_int(f, "Severity.Normalized")? {
        Some(n) => {
            let sev = match n {
                i64::MIN..=39 => Severity::Low,
                40..=69 => Severity::Medium,
                70..=89 => Severity::High,
                _ => Severity::Critical,
            };
            Ok((sev, Some(n.to_string())))
        }
        None => Err(reject(
            "field `Severity.Label`: missing (and no Severity.Normalized)",
        )),
    }
}

/// One ASFF finding (`text` as read) to an alert.
pub(super) fn normalize_asff(f: &Value, text: &str) -> Result<Parsed, Reject> {
    let (severity, original) = asff_severity(f)?;
    let ts = if field(f, "CreatedAt").is_some() {
        timestamp(f, "CreatedAt")?
    } else {
        timestamp(f, "UpdatedAt")?
    };
    let product_arn = opt_str(f, "ProductArn")?.unwrap_or_default();
    let from_guardduty = product_arn.ends_with("/guardduty");
    let types = str_list(f, "Types")?;
    let first_type = types.first().cloned();
    let rule_id = if from_guardduty {
        first_type
            .as_deref()
            .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
    } else {
        opt_str(f, "GeneratorId")?
    };
    let tactics: Vec<String> = types
        .iter()
        .filter_map(|t| t.strip_prefix("TTPs/"))
        .filter_map(|rest| rest.split('/').next())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let module = opt_str(f, "ProductName")?
        .map(|p| p.to_ascii_lowercase().replace(' ', ""))
        .unwrap_or_else(|| "securityhub".into());
    let ends = asff_endpoints(f)?;
    let (host, user) = asff_resources(f)?;
    let id = opt_str(f, "Id")?;
    let alert = Alert {
        timestamp: ts,
        module,
        severity,
        severity_original: original,
        rule_id,
        rule_name: opt_str(f, "Title")?,
        rule_category: first_type.map(|t| match t.rsplit_once('/') {
            Some((head, _)) => head.to_string(),
            None => t,
        }),
        source_ip: ends.source_ip,
        source_port: ends.source_port,
        destination_ip: ends.destination_ip,
        destination_port: ends.destination_port,
        transport: ends.transport,
        host_name: host,
        user_name: user,
        technique_ids: Vec::new(),
        tactics: super::sorted_unique(tactics),
        message: opt_str(f, "Description")?,
        original: text.to_string(),
    };
    // A GuardDuty finding's ASFF `Id` is its GuardDuty ARN: the same identity as the raw
    // finding, so one finding read both ways is one alert.
    let fp = match id {
        Some(id) if from_guardduty => sha256_hex(format!("guardduty\0{id}").as_bytes()),
        Some(id) => sha256_hex(format!("asff\0{product_arn}\0{id}").as_bytes()),
        None => content_fingerprint(f),
    };
    Ok(Parsed::Alert(Box::new(alert), fp))
}

fn asff_endpoints(f: &Value) -> Result<Endpoints, Reject> {
    let mut e = Endpoints::default();
    if field(f, "Network").is_some() {
        e.source_ip = first(f, &["Network.SourceIpV4", "Network.SourceIpV6"], opt_ip)?;
        e.destination_ip = first(
            f,
            &["Network.DestinationIpV4", "Network.DestinationIpV6"],
            opt_ip,
        )?;
        e.source_port = opt_port(f, "Network.SourcePort")?;
        e.destination_port = opt_port(f, "Network.DestinationPort")?;
        e.transport = opt_str(f, "Network.Protocol")?.map(|p| p.to_ascii_lowercase());
        return Ok(e);
    }
    // GuardDuty's own action details survive only as flat `ProductFields` keys.
    let Some(Value::Object(pf)) = f.get("ProductFields") else {
        return Ok(e);
    };
    let find = |suffix: &str| -> Option<(&String, &Value)> {
        pf.iter()
            .find(|(k, v)| k.ends_with(suffix) && v.as_str().is_some_and(|s| !s.is_empty()))
    };
    let ip_at = |suffix: &str| -> Result<Option<IpAddr>, Reject> {
        match find(suffix) {
            Some((k, v)) => v
                .as_str()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .map(Some)
                .ok_or_else(|| {
                    reject(format!(
                        "field `ProductFields.{k}`: expected an IP address, found {}",
                        super::describe(v)
                    ))
                }),
            None => Ok(None),
        }
    };
    let port_at = |suffix: &str| -> Result<Option<u16>, Reject> {
        match find(suffix) {
            Some((k, v)) => v
                .as_str()
                .and_then(|s| s.trim().parse::<u16>().ok())
                .map(Some)
                .ok_or_else(|| {
                    reject(format!(
                        "field `ProductFields.{k}`: expected a port 0-65535, found {}",
                        super::describe(v)
                    ))
                }),
            None => Ok(None),
        }
    };
    let remote = ip_at("remoteIpDetails/ipAddressV4")?;
    let local = ip_at("localIpDetails/ipAddressV4")?;
    let remote_port = port_at("remotePortDetails/port")?;
    let local_port = port_at("localPortDetails/port")?;
    let outbound = find("connectionDirection").and_then(|(_, v)| v.as_str()) == Some("OUTBOUND");
    e.transport = find("networkConnectionAction/protocol")
        .and_then(|(_, v)| v.as_str())
        .map(str::to_ascii_lowercase);
    if outbound {
        (e.source_ip, e.source_port) = (local, local_port);
        (e.destination_ip, e.destination_port) = (remote, remote_port);
    } else {
        (e.source_ip, e.source_port) = (remote, remote_port);
        (e.destination_ip, e.destination_port) = (local, local_port);
    }
    Ok(e)
}

/// The EC2 instance (its id) and the IAM principal a finding is about, from `Resources`.
fn asff_resources(f: &Value) -> Result<(Option<String>, Option<String>), Reject> {
    let Some(Value::Array(resources)) = f.get("Resources") else {
        return Ok((None, None));
    };
    let (mut host, mut user) = (None, None);
    for (i, r) in resources.iter().enumerate() {
        let at = |e: Reject| Reject(e.0.replacen("field `", &format!("field `Resources[{i}]."), 1));
        match opt_str(r, "Type").map_err(at)?.as_deref() {
            Some("AwsEc2Instance") if host.is_none() => {
                host = opt_str(r, "Id")
                    .map_err(at)?
                    .map(|id| id.rsplit('/').next().unwrap_or(&id).to_string());
            }
            Some("AwsIamAccessKey") if user.is_none() => {
                let key = "Details.AwsIamAccessKey";
                let names = [&format!("{key}.PrincipalName"), &format!("{key}.UserName")];
                user = first(r, &names.map(String::as_str), opt_str).map_err(at)?;
            }
            Some("AwsIamUser") if user.is_none() => {
                user = opt_str(r, "Details.AwsIamUser.UserName").map_err(at)?;
            }
            _ => {}
        }
    }
    Ok((host, user))
}
