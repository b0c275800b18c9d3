//! Shared driver for the fuzz targets: what every parser target does with its input.

use vigil::engine::format::{FileFormat, Format};

/// Detect `data`'s format (forced to `forced`, then auto), and parse it the way the tailer
/// and `vigil ingest` would: line by line, or as one document.
pub fn exercise(data: &[u8], forced: Format) {
    for format in [forced, Format::Auto] {
        let f = FileFormat::detect(data, format);
        if f.is_line_oriented() {
            for line in data.split(|b| *b == b'\n') {
                let _ = f.parse_line(line);
            }
        } else {
            let _ = f.parse_document(data);
        }
        let _ = f.parse_records(data);
    }
}
