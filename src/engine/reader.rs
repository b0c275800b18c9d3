//! Every alert file a command takes (`vigil ingest`, `score`, `iocs`), read one way: opened,
//! gunzipped when its name ends in `.gz`, its format detected from its head, and cut into
//! records as a stream, so memory stays bounded whatever the file's size. A file that breaks
//! part-way keeps the records before the break and says why the rest could not be read.

mod document;
pub mod lines;

pub use document::DocumentReader;
pub use lines::{LastLine, LineReader};

use super::format::{FileFormat, Format, FormatSettings, HEAD_BYTES};
use super::pipeline::RawLine;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;

/// Bytes read from the file at a time.
const READ_BYTES: usize = 256 * 1024;

type Source = Box<dyn BufRead + Send>;

enum Records {
    Lines(LineReader<Source>),
    Document(Box<DocumentReader<Source>>),
    Done,
}

/// One alert file being read, record by record.
pub struct AlertFile {
    format: FileFormat,
    records: Records,
    unread: Option<String>,
}

/// A reader that fails once with the error the head read met, so the records before it are
/// still returned first.
struct Failed(Option<io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

impl AlertFile {
    /// Open `path` (gunzipped when it ends in `.gz`) and detect its format (`forced` wins
    /// unless `Auto`).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(
        path: &Path,
        forced: Format,
        settings: &Arc<FormatSettings>,
    ) -> io::Result<AlertFile> {
        let file = std::fs::File::open(path)?;
        let raw: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(file)
        };
        Ok(Self::from_reader(raw, forced, settings))
    }

    /// Read alerts from any stream (a file's bytes, already decompressed).
    pub fn from_reader(
        mut raw: Box<dyn Read + Send>,
        forced: Format,
        settings: &Arc<FormatSettings>,
    ) -> AlertFile {
        let mut head = Vec::with_capacity(HEAD_BYTES);
        // On a read error the bytes read before it are in `head`; the error comes after them.
        let failed = (&mut raw)
            .take(HEAD_BYTES as u64)
            .read_to_end(&mut head)
            .err();
        let format = FileFormat::detect_with(&head, forced, settings);
        let rest: Box<dyn Read + Send> = match failed {
            Some(e) => Box::new(Failed(Some(e))),
            None => raw,
        };
        let src: Source = Box::new(BufReader::with_capacity(
            READ_BYTES,
            Cursor::new(head).chain(rest),
        ));
        Self::with_format(src, format, settings)
    }

    fn with_format(src: Source, format: FileFormat, settings: &FormatSettings) -> AlertFile {
        let limit = settings.max_record_bytes;
        let records = if format.is_line_oriented() {
            Records::Lines(LineReader::new(src, 0, 1, limit, LastLine::Whole))
        } else {
            Records::Document(Box::new(DocumentReader::new(
                src,
                0,
                limit,
                settings.max_depth,
            )))
        };
        AlertFile {
            format,
            records,
            unread: None,
        }
    }

    /// The records of `bytes` read as a file of `format`.
    pub fn of_bytes(bytes: &[u8], format: &FileFormat) -> AlertFile {
        let src: Source = Box::new(Cursor::new(bytes.to_vec()));
        Self::with_format(src, format.clone(), format.settings())
    }

    /// What the file was detected (or forced) to be.
    pub fn format(&self) -> &FileFormat {
        &self.format
    }

    /// The next record (blank lines included), or `None` at the end. A record with `refused`
    /// set is quarantined with that reason; after a read failure the broken record is the last.
    pub fn next_record(&mut self) -> Option<RawLine> {
        let next = match &mut self.records {
            Records::Lines(r) => r.next_line(),
            Records::Document(r) => r.next_record(),
            Records::Done => return None,
        };
        match next {
            Ok(Some(r)) => {
                if let Records::Document(d) = &self.records {
                    if let Some(why) = d.broken() {
                        self.unread.get_or_insert_with(|| why.to_string());
                    }
                }
                Some(r)
            }
            Ok(None) => {
                self.records = Records::Done;
                None
            }
            Err(broken) => {
                self.records = Records::Done;
                let lines::Broken { mut partial, error } = *broken;
                let why =
                    format!("cannot be read past here: {error}; the rest of the file was not read");
                partial.refused = Some(why.clone());
                self.unread = Some(format!("line {}: {why}", partial.line_no));
                Some(partial)
            }
        }
    }

    /// Why the file could not be read to its end, once that is known.
    pub fn unread(&self) -> Option<&str> {
        self.unread.as_deref()
    }
}

impl Iterator for AlertFile {
    type Item = RawLine;
    fn next(&mut self) -> Option<RawLine> {
        self.next_record()
    }
}

/// Read a whole file, gunzipping when it ends in `.gz`.
///
/// # Errors
/// I/O or gzip errors, naming the file.
pub fn read_maybe_gz(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: not valid gzip", path.display()))?;
        return Ok(out);
    }
    Ok(bytes)
}
