//! Lines of vigil.log, made safe to read with `tail` or `less`: file names and alert text reach
//! the log (the tailer names each file it follows), so each line goes through the same
//! sanitiser as the terminal, and a value holding a newline cannot forge a line of its own.

use crate::sanitize::sanitize;
use std::io::{self, Write};
use tracing_subscriber::fmt::MakeWriter;

/// A log writer whose events come out sanitised.
pub struct SafeLog<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for SafeLog<M> {
    type Writer = SafeLines<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        SafeLines(self.0.make_writer())
    }
}

/// One event's writer. The formatter writes each event whole, ending in a newline.
pub struct SafeLines<W>(W);

impl<W: Write> Write for SafeLines<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (event, newline) = match text.strip_suffix('\n') {
            Some(event) => (event, "\n"),
            None => (&*text, ""),
        };
        self.0.write_all(sanitize(event).as_bytes())?;
        self.0.write_all(newline.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::SafeLines;
    use std::io::Write;

    #[test]
    fn an_event_stays_one_safe_line() {
        let mut out = SafeLines(Vec::new());
        out.write_all(b"INFO following path=/logs/a\xe2\x80\xaeb.json\nINFO forged\n")
            .expect("write");
        assert_eq!(
            String::from_utf8(out.0).expect("utf8"),
            "INFO following path=/logs/a\\u{202e}b.json\\nINFO forged\n"
        );
    }
}
