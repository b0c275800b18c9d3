//! The records of a JSON document (a pretty-printed array, a `findings` list, a search
//! response, a stream of pretty-printed objects) cut out as the document streams past, so a
//! document of any size is read in bounded memory. Only the structure is followed here
//! (brackets, strings, the keys that name a records list); each record is parsed by `format`.

use super::super::pipeline::RawLine;
use super::lines::{too_long, Broken, KEPT_BYTES};
use std::collections::VecDeque;
use std::io::{self, BufRead};

/// Keys whose array value is the records list of a wrapper object (GuardDuty and Security
/// Hub findings, CloudTrail records).
const LIST_KEYS: &[&[u8]] = &[b"findings", b"Findings", b"Records"];
/// Longest object key remembered to recognise a records list (longer keys name none).
const KEY_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Array,
    Object,
}

#[derive(Debug)]
struct Frame {
    kind: Kind,
    /// An array whose elements are the records.
    records: bool,
    /// An object's latest key.
    key: Vec<u8>,
    expect_key: bool,
    /// An EventBridge event (its `detail.findings` are the records).
    has_detail_type: bool,
}

/// Bytes of one record (or one whole top-level value) while it is being read.
#[derive(Debug)]
struct Pending {
    byte_offset: u64,
    line_no: u64,
    kept: Vec<u8>,
    /// Bytes up to and including the last non-blank one.
    len: u64,
    /// Bytes seen so far, blanks included.
    seen: u64,
    over: bool,
}

impl Pending {
    fn new(byte_offset: u64, line_no: u64) -> Self {
        Pending {
            byte_offset,
            line_no,
            kept: Vec::new(),
            len: 0,
            seen: 0,
            over: false,
        }
    }

    fn push(&mut self, b: u8, limit: usize) {
        self.seen += 1;
        if !b.is_ascii_whitespace() {
            self.len = self.seen;
        }
        if self.over {
            return;
        }
        if self.len > limit as u64 {
            self.over = true;
            self.kept.truncate(KEPT_BYTES);
            self.kept.shrink_to_fit();
        } else if self.kept.len() < limit {
            // Blanks past the limit are not kept: they would be trimmed, or a later byte
            // makes the record too long anyway.
            self.kept.push(b);
        }
    }

    fn finish(mut self, limit: usize) -> RawLine {
        let refused = (self.len > limit as u64).then(|| too_long("record", self.len, limit));
        self.kept
            .truncate(usize::try_from(self.len).unwrap_or(usize::MAX));
        if refused.is_some() {
            self.kept.truncate(KEPT_BYTES);
        }
        RawLine {
            byte_offset: self.byte_offset,
            line_no: self.line_no,
            bytes: self.kept,
            refused,
        }
    }
}

/// Records of a JSON document read from a stream.
pub struct DocumentReader<R> {
    src: R,
    limit: usize,
    max_depth: usize,
    offset: u64,
    line_no: u64,
    stack: Vec<Frame>,
    in_string: bool,
    escaped: bool,
    /// The object key being read, when it may name a records list.
    key: Option<Vec<u8>>,
    record: Option<Pending>,
    /// The current top-level value, kept while it may be a record itself (it holds no list).
    whole: Option<Pending>,
    ready: VecDeque<RawLine>,
    /// Why the rest of the document could not be read, once it could not.
    broken: Option<String>,
}

impl<R: BufRead> DocumentReader<R> {
    /// Records of `src`, which starts at `offset` on line 1; records longer than `limit` bytes
    /// are refused, nesting deeper than `max_depth` stops the read.
    pub fn new(src: R, offset: u64, limit: usize, max_depth: usize) -> Self {
        DocumentReader {
            src,
            limit,
            max_depth,
            offset,
            line_no: 1,
            stack: Vec::new(),
            in_string: false,
            escaped: false,
            key: None,
            record: None,
            whole: None,
            ready: VecDeque::new(),
            broken: None,
        }
    }

    /// Why the document could not be read to its end (bad structure), once that is known.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// The next record (`refused` set when it is too long or the document breaks in it), or
    /// `None` at the end.
    ///
    /// # Errors
    /// The stream failed; what was read of the record it broke in comes with the error.
    pub fn next_record(&mut self) -> Result<Option<RawLine>, Box<Broken>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Ok(Some(r));
            }
            if self.broken.is_some() {
                return Ok(None);
            }
            let available = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.broken = Some(error.to_string());
                    let partial = self.pending_or_here();
                    return Err(Box::new(Broken { partial, error }));
                }
            };
            if available.is_empty() {
                if !self.stack.is_empty() || self.in_string {
                    let what = match self.stack.last().map(|f| f.kind) {
                        _ if self.in_string => "a string",
                        Some(Kind::Array) => "an array",
                        _ => "an object",
                    };
                    self.fail(format!("not valid JSON: the document ends inside {what}"));
                    continue;
                }
                return Ok(None);
            }
            let chunk = available.to_vec();
            let mut used = 0;
            for b in chunk {
                used += 1;
                self.byte(b);
                self.offset += 1;
                if b == b'\n' {
                    self.line_no += 1;
                }
                if self.broken.is_some() {
                    break;
                }
            }
            self.src.consume(used);
        }
    }

    /// Stop reading: the record or value in progress (else one empty record here) is refused
    /// with `why` and the line it broke on.
    fn fail(&mut self, why: String) {
        let line = self.line_no;
        let mut r = self.pending_or_here();
        r.refused = Some(format!(
            "{why} (line {line}); the rest of the file was not read"
        ));
        self.broken = r.refused.clone();
        self.ready.push_back(r);
    }

    fn pending_or_here(&mut self) -> RawLine {
        match self.record.take().or_else(|| self.whole.take()) {
            Some(p) => {
                let mut r = p.finish(usize::MAX);
                r.bytes.truncate(KEPT_BYTES);
                r
            }
            None => RawLine {
                byte_offset: self.offset,
                line_no: self.line_no,
                bytes: Vec::new(),
                refused: None,
            },
        }
    }

    fn byte(&mut self, b: u8) {
        let structural = !self.in_string;
        if structural && self.stack.is_empty() && self.whole.is_none() {
            let byte_order_mark = self.offset < 3 && matches!(b, 0xEF | 0xBB | 0xBF);
            if b.is_ascii_whitespace() || byte_order_mark {
                return;
            }
            if b != b'{' && b != b'[' {
                self.fail(format!(
                    "not valid JSON: `{}` where an array or object should start",
                    char::from(b).escape_default()
                ));
                return;
            }
            self.whole = Some(Pending::new(self.offset, self.line_no));
        }
        let in_records = self.stack.last().is_some_and(|f| f.records);
        let starts_record = !(b.is_ascii_whitespace() || b == b',' || b == b']');
        if structural && in_records && self.record.is_none() && starts_record {
            self.record = Some(Pending::new(self.offset, self.line_no));
        }
        let ends_record = structural && in_records && (b == b',' || b == b']');
        if ends_record {
            if let Some(r) = self.record.take() {
                self.ready.push_back(r.finish(self.limit));
            }
        }
        let limit = self.limit;
        if let Some(r) = self.record.as_mut() {
            r.push(b, limit);
        }
        if let Some(w) = self.whole.as_mut() {
            w.push(b, limit);
        }
        if self.in_string {
            self.string_byte(b);
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                let shallow = self.stack.len() <= 2;
                if let Some(top) = self.stack.last() {
                    if top.kind == Kind::Object && top.expect_key && shallow {
                        self.key = Some(Vec::new());
                    }
                }
            }
            b'{' | b'[' => self.open(b),
            b'}' | b']' => self.close(b),
            b':' => {
                if let Some(top) = self.stack.last_mut() {
                    top.expect_key = false;
                }
            }
            b',' => {
                if let Some(top) = self.stack.last_mut() {
                    top.expect_key = top.kind == Kind::Object;
                }
            }
            _ => {}
        }
    }

    fn string_byte(&mut self, b: u8) {
        if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.in_string = false;
            if let Some(key) = self.key.take() {
                let root = self.stack.len() == 1;
                if let Some(top) = self.stack.last_mut() {
                    if root && key == b"detail-type" {
                        top.has_detail_type = true;
                    }
                    top.key = key;
                }
            }
            return;
        }
        if let Some(key) = self.key.as_mut() {
            if key.len() <= KEY_BYTES {
                key.push(b);
            }
        }
    }

    /// True when an array opened here holds the records: a top-level array, or the list a
    /// wrapper object names.
    fn is_records_list(&self) -> bool {
        let key = |i: usize, k: &[u8]| {
            self.stack
                .get(i)
                .is_some_and(|f| f.kind == Kind::Object && f.key == k)
        };
        match self.stack.len() {
            0 => true,
            1 => LIST_KEYS.iter().any(|k| key(0, k)),
            2 => {
                (key(0, b"hits") && key(1, b"hits"))
                    || (key(0, b"detail") && self.stack[0].has_detail_type && key(1, b"findings"))
            }
            _ => false,
        }
    }

    fn open(&mut self, b: u8) {
        if self.stack.len() >= self.max_depth + 3 {
            self.fail(format!(
                "nested deeper than {} levels ([ingest] max_depth)",
                self.max_depth
            ));
            return;
        }
        let kind = if b == b'[' { Kind::Array } else { Kind::Object };
        let records = kind == Kind::Array && self.is_records_list();
        if records {
            // The list's elements are the records, not the value holding them.
            self.whole = None;
        }
        self.stack.push(Frame {
            kind,
            records,
            key: Vec::new(),
            expect_key: kind == Kind::Object,
            has_detail_type: false,
        });
    }

    fn close(&mut self, b: u8) {
        let want = if b == b']' { Kind::Array } else { Kind::Object };
        match self.stack.last() {
            Some(top) if top.kind == want => {}
            _ => {
                self.fail(format!(
                    "not valid JSON: unexpected `{}`",
                    char::from(b).escape_default()
                ));
                return;
            }
        }
        self.stack.pop();
        if self.stack.is_empty() {
            // A top-level value that held no records list is a record itself.
            if let Some(w) = self.whole.take() {
                self.ready.push_back(w.finish(self.limit));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str, limit: usize) -> (Vec<RawLine>, Option<String>) {
        let mut r = DocumentReader::new(
            io::BufReader::with_capacity(5, text.as_bytes()),
            0,
            limit,
            16,
        );
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().expect("in memory") {
            out.push(rec);
        }
        (out, r.broken().map(str::to_string))
    }

    fn texts(recs: &[RawLine]) -> Vec<String> {
        recs.iter()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .collect()
    }

    #[test]
    fn array_elements_are_records_with_their_line_and_offset() {
        let doc = "[\n  {\"a\": \"],[\"},\n  {\"b\": [1, {\"c\": 2}]}\n]\n";
        let (recs, broken) = records(doc, 1024);
        assert_eq!(broken, None);
        assert_eq!(
            texts(&recs),
            vec!["{\"a\": \"],[\"}", "{\"b\": [1, {\"c\": 2}]}"]
        );
        assert_eq!(recs[1].line_no, 3);
        assert_eq!(
            recs[1].byte_offset as usize,
            doc.find("{\"b\"").expect("there")
        );
        assert!(records("[]", 1024).0.is_empty());
        assert!(records("  \n", 1024).0.is_empty());
    }

    #[test]
    fn wrappers_yield_their_lists_and_plain_objects_are_one_record_each() {
        let doc = "{\n \"findings\": [\n  {\"id\": 1},\n  {\"id\": 2}\n ]\n}";
        assert_eq!(
            texts(&records(doc, 1024).0),
            vec!["{\"id\": 1}", "{\"id\": 2}"]
        );
        let hits = r#"{"took":1,"hits":{"total":2,"hits":[{"_id":"a"},{"_id":"b"}]}}"#;
        assert_eq!(records(hits, 1024).0.len(), 2);
        let event = r#"{"detail-type":"x","detail":{"findings":[{"f":1}]}}"#;
        assert_eq!(texts(&records(event, 1024).0), vec![r#"{"f":1}"#]);
        let no_type = r#"{"detail":{"findings":[{"f":1}]}}"#;
        assert_eq!(texts(&records(no_type, 1024).0), vec![no_type]);
        // `jq .` output: one pretty-printed object after another.
        let (recs, _) = records("{\n \"a\": 1\n}\n{\n \"b\": [2]\n}\n", 1024);
        assert_eq!(texts(&recs), vec!["{\n \"a\": 1\n}", "{\n \"b\": [2]\n}"]);
        assert_eq!(recs[1].line_no, 4);
    }

    #[test]
    fn a_long_record_is_refused_alone_and_a_broken_document_keeps_what_came_before() {
        let long = format!("[{{\"a\":\"{}\"}}, {{\"b\":1}}]", "x".repeat(200));
        let (recs, broken) = records(&long, 100);
        assert_eq!(broken, None);
        assert_eq!(
            recs[0].refused.as_deref(),
            Some("record is 208 bytes, over the 100 byte limit ([ingest] max_record_bytes)")
        );
        assert_eq!(texts(&recs[1..]), vec!["{\"b\":1}"]);

        let (recs, broken) = records("[\n{\"a\": 1},\n{\"b\": \n", 1024);
        assert_eq!(texts(&recs[..1]), vec!["{\"a\": 1}"]);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].line_no, 3);
        assert_eq!(
            recs[1].refused.as_deref(),
            Some("not valid JSON: the document ends inside an object (line 4); the rest of the file was not read")
        );
        assert_eq!(broken, recs[1].refused);
        let (recs, _) = records("[{\"a\": 1}}, {\"b\": 2}]", 1024);
        assert_eq!(recs.len(), 1);
        assert!(recs[0]
            .refused
            .as_deref()
            .is_some_and(|r| r.starts_with("not valid JSON: unexpected `}`")));
        let deep = format!("{}{}", "[".repeat(30), "]".repeat(30));
        assert!(records(&deep, 1024)
            .1
            .is_some_and(|b| b.starts_with("nested deeper")));
    }
}
