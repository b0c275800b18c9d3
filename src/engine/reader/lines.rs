//! Cutting a byte stream into lines, and the one rule for a line too long to parse: it is
//! refused whole, once, however long it is, keeping only its first bytes. `vigil ingest`,
//! `score`, `iocs` and the tailer all cut lines here.

use super::super::pipeline::RawLine;
use std::io::{self, BufRead};

/// Most bytes of a refused record kept for quarantine: enough to see what went wrong without
/// letting one hostile line bloat the database.
pub const KEPT_BYTES: usize = 64 * 1024;

/// Why a `what` ("line", "record") longer than `limit` is refused: the same words wherever
/// it is refused.
pub fn too_long(what: &str, len: u64, limit: usize) -> String {
    format!("{what} is {len} bytes, over the {limit} byte limit ([ingest] max_record_bytes)")
}

/// What to do with bytes after the last newline when the stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastLine {
    /// The file is read once: its unterminated last line is a whole line.
    Whole,
    /// The file is still being written: leave an unterminated last line for a later read.
    Wait,
}

/// The stream failed part-way: the bytes of the line it broke in, and why.
#[derive(Debug)]
pub struct Broken {
    pub partial: RawLine,
    pub error: io::Error,
}

/// Lines from a stream, each at most `limit` bytes in memory whatever the stream holds.
pub struct LineReader<R> {
    src: R,
    limit: usize,
    /// Offset of the next line's first byte.
    offset: u64,
    /// Number the next line gets.
    line_no: u64,
    last: LastLine,
}

impl<R: BufRead> LineReader<R> {
    /// Lines of `src`, the first at `offset` with number `line_no`.
    pub fn new(src: R, offset: u64, line_no: u64, limit: usize, last: LastLine) -> Self {
        LineReader {
            src,
            limit,
            offset,
            line_no,
            last,
        }
    }

    /// Offset just past the last line returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of the last line returned (one less than the next line's).
    pub fn last_line_no(&self) -> u64 {
        self.line_no.saturating_sub(1)
    }

    /// The next line without its newline (`refused` set when it is too long), or `None` at the
    /// end of the stream. With `LastLine::Wait`, an unterminated last line is not returned and
    /// the reader is spent: make a new one from `offset()` once more has been written.
    ///
    /// # Errors
    /// The stream failed; what was read of the broken line comes with the error.
    pub fn next_line(&mut self) -> Result<Option<RawLine>, Box<Broken>> {
        let mut kept: Vec<u8> = Vec::new();
        let mut len: u64 = 0;
        let mut ends_in_cr = false;
        let mut over = false;
        loop {
            let available = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    let partial = self.line(kept, len, ends_in_cr);
                    return Err(Box::new(Broken { partial, error }));
                }
            };
            if available.is_empty() {
                if len == 0 || self.last == LastLine::Wait {
                    return Ok(None);
                }
                let line = self.line(kept, len, ends_in_cr);
                self.offset += len;
                self.line_no += 1;
                return Ok(Some(line));
            }
            let (part, newline) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], true),
                None => (available, false),
            };
            if !over {
                // Past the limit plus a carriage return the line is surely too long: from
                // there on only its head is kept.
                let room = (self.limit + 2).saturating_sub(kept.len());
                kept.extend_from_slice(&part[..part.len().min(room)]);
                if kept.len() > self.limit + 1 {
                    over = true;
                    kept.truncate(KEPT_BYTES);
                    kept.shrink_to_fit();
                }
            }
            if let Some(last) = part.last() {
                ends_in_cr = *last == b'\r';
            }
            len += part.len() as u64;
            let used = part.len() + usize::from(newline);
            self.src.consume(used);
            if newline {
                let line = self.line(kept, len, ends_in_cr);
                self.offset += len + 1;
                self.line_no += 1;
                return Ok(Some(line));
            }
        }
    }

    /// The line of `len` bytes starting at the current offset, refused when it is too long
    /// (a carriage return before the newline does not count, as for a parsed line).
    fn line(&self, mut kept: Vec<u8>, len: u64, ends_in_cr: bool) -> RawLine {
        let text_len = len - u64::from(ends_in_cr);
        let refused = (text_len > self.limit as u64).then(|| {
            kept.truncate(KEPT_BYTES);
            too_long("line", text_len, self.limit)
        });
        RawLine {
            byte_offset: self.offset,
            line_no: self.line_no,
            bytes: kept,
            refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &[u8], limit: usize, last: LastLine) -> Vec<RawLine> {
        let mut r = LineReader::new(io::BufReader::with_capacity(7, text), 10, 1, limit, last);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().expect("in memory") {
            out.push(l);
        }
        out
    }

    #[test]
    fn lines_keep_their_offsets_and_numbers_across_small_reads() {
        let lines = all(b"ab\ncdefghijk\n\nlast", 1024, LastLine::Whole);
        let got: Vec<_> = lines
            .iter()
            .map(|l| (l.byte_offset, l.line_no, l.bytes.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                (10, 1, &b"ab"[..]),
                (13, 2, &b"cdefghijk"[..]),
                (23, 3, &b""[..]),
                (24, 4, &b"last"[..])
            ]
        );
        assert_eq!(all(b"ab\nlast", 1024, LastLine::Wait).len(), 1);
    }

    #[test]
    fn a_long_line_is_refused_whole_once_with_only_its_head_kept() {
        let mut text = vec![b'x'; 3 * KEPT_BYTES];
        text.extend_from_slice(b"{\"hidden\":1}\r\nnext\n");
        let lines = all(&text, KEPT_BYTES * 2, LastLine::Whole);
        assert_eq!(lines.len(), 2);
        let long = &lines[0];
        assert_eq!(long.bytes.len(), KEPT_BYTES);
        assert_eq!(
            long.refused.as_deref(),
            Some(too_long("line", 3 * KEPT_BYTES as u64 + 12, KEPT_BYTES * 2).as_str())
        );
        assert_eq!(
            (lines[1].line_no, lines[1].bytes.as_slice()),
            (2, &b"next"[..])
        );
        assert_eq!(lines[1].refused, None);
        // At the limit exactly is not too long; the carriage return does not count.
        let exact = all(b"abcd\r\n", 4, LastLine::Whole);
        assert_eq!(exact[0].refused, None);
    }

    #[test]
    fn a_failing_stream_returns_the_broken_line() {
        struct Fails(bool);
        impl io::Read for Fails {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut short"));
                }
                buf[..6].copy_from_slice(b"a\nbrok");
                Ok(6)
            }
        }
        let mut r = LineReader::new(io::BufReader::new(Fails(false)), 0, 1, 100, LastLine::Whole);
        assert_eq!(
            r.next_line().expect("first").map(|l| l.bytes),
            Some(b"a".to_vec())
        );
        let broken = r.next_line().expect_err("fails");
        assert_eq!(broken.partial.bytes, b"brok");
        assert_eq!((broken.partial.line_no, broken.partial.byte_offset), (2, 2));
    }
}
