//! Detection from a file's head, forced formats, and the framing of each kind of file.

use super::*;

fn detect(head: &[u8]) -> FileFormat {
    FileFormat::detect(head, Format::Auto)
}

#[test]
fn detection_by_the_first_bytes() {
    let eve = br#"{"event_type":"alert"}"#;
    assert_eq!(
        detect(&[eve.as_slice(), b"\n"].concat()).format,
        Format::JsonLines
    );
    assert_eq!(detect(b"[\n  {\"a\": 1}\n]\n").format, Format::JsonDocument);
    assert_eq!(detect(b"[{\"a\": 1}]\n").format, Format::JsonDocument);
    assert_eq!(
        detect(b"{\n  \"Findings\": [\n    {\"Id\": \"x\"}\n  ]\n}\n").format,
        Format::JsonDocument
    );
    assert_eq!(
        detect(b"#separator \\x09\n#fields\tts\tuid\tnote\n#types\ttime\tstring\tenum\n").format,
        Format::ZeekTsv
    );
    assert_eq!(
        detect(b"Sep 19 08:26:10 host CEF:0|a|b|1|2|n|3|\n").format,
        Format::Cef
    );
    assert_eq!(detect(b"timestamp,src_ip,signature\n").format, Format::Csv);
    assert_eq!(detect(b"# a comment\n#\ntime,dst_ip\n").format, Format::Csv);
    assert_eq!(
        detect(b"name,colour\n").format,
        Format::JsonLines,
        "a CSV whose columns map to nothing is not recognised"
    );
    // A JSON-lines file whose first line is broken is still JSON lines.
    assert_eq!(
        detect(b"{\"a\":\n{\"event_type\":\"alert\"}\n").format,
        Format::JsonLines
    );
}

#[test]
fn an_empty_or_growing_head_is_provisional() {
    assert!(detect(b"").is_provisional());
    assert!(detect(b"{\"event_type\":\"al").is_provisional());
    assert!(detect(b"# only a comment so far\n").is_provisional());
    assert!(!detect(b"{\"a\":1}\n").is_provisional());
}

#[test]
fn forced_formats_win_and_say_why_when_they_cannot_apply() {
    let f = FileFormat::detect(b"{\"a\":1}\n", Format::Cef);
    assert_eq!(f.format, Format::Cef);
    assert_eq!(
        f.parse_line(b"{\"a\":1}").expect_err("not CEF").0,
        "no `CEF:` marker: not a CEF record"
    );
    let f = FileFormat::detect(b"{\"a\":1}\n", Format::ZeekTsv);
    assert_eq!(
        f.parse_line(b"{\"a\":1}").expect_err("no header").0,
        "no Zeek `#fields` header in the file's first 64 KiB"
    );
    let f = FileFormat::detect(b"[\n{\"a\":1}\n]\n", Format::Suricata);
    assert_eq!(f.format, Format::Suricata);
    assert!(
        !f.is_line_oriented(),
        "a forced producer still reads a document"
    );
    let f = FileFormat::detect(b"{\"a\":1}\n", Format::Wazuh);
    assert!(f
        .parse_line(br#"{"rule":{"level":"x"},"timestamp":"2020-01-01T00:00:00Z"}"#)
        .expect_err("bad level")
        .0
        .starts_with("field `rule.level`"));
    for name in Format::NAMES.split(", ") {
        let f: Format = name.parse().expect("every listed name parses");
        assert_eq!(f.name(), name);
    }
    assert!("xml"
        .parse::<Format>()
        .expect_err("unknown")
        .starts_with("unknown format `xml` (known: auto, json-lines"));
}

#[test]
fn csv_header_and_comment_lines_are_skips_and_short_rows_are_refused() {
    let head = b"timestamp,src_ip,signature\n2024-01-01T00:00:00Z,10.0.0.1,x\n";
    let f = detect(head);
    assert!(matches!(
        f.parse_line(b"timestamp,src_ip,signature"),
        Ok(Parsed::Skipped)
    ));
    assert!(matches!(f.parse_line(b"# note"), Ok(Parsed::Skipped)));
    assert_eq!(
        f.parse_line(b"2024-01-01T00:00:00Z,10.0.0.1")
            .expect_err("short")
            .0,
        "row has 2 columns, the header has 3"
    );
    assert_eq!(
        f.parse_line(b"2024-01-01T00:00:00Z,\"10.0.0.1,x")
            .expect_err("open quote")
            .0,
        "unterminated quoted field: a CSV record spanning lines is not supported"
    );
    assert_eq!(
        f.parse_line(b"2024-01-01T00:00:00Z,10.0.0.999,x")
            .expect_err("bad ip")
            .0,
        "field `src_ip`: expected an IP address, found a string \"10.0.0.999\""
    );
    match f.parse_line(b"2024-01-01T00:00:00Z,10.0.0.1,\"a, quoted \"\"name\"\"\"") {
        Ok(Parsed::Alert(a, _)) => {
            assert_eq!(a.rule_name.as_deref(), Some("a, quoted \"name\""));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_broken_document_keeps_its_records_before_the_break() {
    let f = detect(b"[\n{\"a\": 1},\n{\"b\": \n");
    let recs = f.parse_records(b"[\n{\"a\": 1},\n{\"b\": \n");
    assert_eq!(recs.len(), 2);
    assert!(recs[0]
        .parsed
        .as_ref()
        .expect_err("not an alert")
        .0
        .starts_with("unrecognised document"));
    assert_eq!(recs[1].line_no, 3);
    assert_eq!(
        recs[1].parsed.as_ref().expect_err("broken").0,
        "not valid JSON: the document ends inside an object (line 4); the rest of the file was not read"
    );
    assert!(f.parse_records(b"  \n").is_empty());
}

#[test]
fn depth_scan_ignores_brackets_in_strings_and_escapes() {
    assert!(check_depth(br#"{"a":"[[[[\"[[[["}"#, 2).is_ok());
    assert!(check_depth(b"[[[]]]", 3).is_ok());
    assert_eq!(
        check_depth(b"[[[[]]]]", 3).expect_err("deep").0,
        "nested deeper than 3 levels at byte 3 ([ingest] max_depth)"
    );
}

#[test]
fn unsupported_files_say_what_they_are() {
    let asa = b"Oct 10 2018 12:34:56 localhost CiscoASA[999]: %ASA-4-106023: Deny tcp src outside:100.66.19.254/80 dst inside:172.31.98.44/8277 by access-group \"inbound\" [0x0, 0x0]";
    let f = detect(asa);
    let e = f.parse_line(asa).expect_err("not supported").0;
    assert!(
        e.starts_with("not JSON, and the file holds Cisco ASA syslog messages"),
        "{e}"
    );
    // CloudTrail records are activity, not alerts: skipped, even as a `Records` file.
    let trail = br#"{"Records":[{"eventVersion":"1.08","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","userIdentity":{"type":"IAMUser"}}]}"#;
    let f = detect(trail);
    let recs = f.parse_records(trail);
    assert_eq!(recs.len(), 1);
    assert!(matches!(recs[0].parsed, Ok(Parsed::Skipped)));
}
