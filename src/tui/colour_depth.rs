//! How many colours the terminal says it has, and output that keeps to them. vigil draws with
//! the 16 named colours; crossterm writes even those as 256-colour codes (`38;5;9`), which a
//! 16-colour terminal shows wrong or not at all. On such a terminal the codes are rewritten to
//! the named ones (`91`) before they leave the process.

use std::io::{self, Write};

/// What the terminal told us through `TERM` and `COLORTERM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourDepth {
    /// The 16 named colours: the default, safe on any colour terminal.
    Sixteen,
    /// `TERM` names a 256-colour terminal.
    Indexed256,
    /// `COLORTERM` says truecolor or 24bit.
    TrueColour,
}

impl ColourDepth {
    /// Decide from the values of `TERM` and `COLORTERM` (empty counts as unset).
    pub fn detect(term: Option<&str>, colorterm: Option<&str>) -> ColourDepth {
        let colorterm = colorterm.unwrap_or("").to_ascii_lowercase();
        if colorterm == "truecolor" || colorterm == "24bit" {
            return ColourDepth::TrueColour;
        }
        if term.is_some_and(|t| t.contains("256color")) {
            return ColourDepth::Indexed256;
        }
        ColourDepth::Sixteen
    }

    /// From this process's environment.
    pub fn from_env() -> ColourDepth {
        let term = std::env::var("TERM").ok();
        let colorterm = std::env::var("COLORTERM").ok();
        ColourDepth::detect(term.as_deref(), colorterm.as_deref())
    }
}

/// A writer that holds a frame until it is flushed and, on a 16-colour terminal, rewrites
/// `38;5;N` / `48;5;N` for N below 16 to the named SGR codes. Other output passes unchanged.
pub struct ColourOut<W: Write> {
    inner: W,
    depth: ColourDepth,
    pending: Vec<u8>,
}

impl<W: Write> ColourOut<W> {
    pub fn new(inner: W, depth: ColourDepth) -> Self {
        ColourOut {
            inner,
            depth,
            pending: Vec::new(),
        }
    }
}

impl<W: Write> Write for ColourOut<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.depth == ColourDepth::Sixteen {
            // Held until flush: a colour code may arrive in several pieces.
            self.pending.extend_from_slice(buf);
            Ok(buf.len())
        } else {
            self.inner.write(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let out = to_sixteen(&self.pending);
            self.pending.clear();
            self.inner.write_all(&out)?;
        }
        self.inner.flush()
    }
}

/// Rewrite every SGR sequence (`ESC [ params m`) in `bytes` to 16-colour codes.
pub fn to_sixteen(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'[') {
            let start = i + 2;
            let len = bytes[start..]
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b';'))
                .unwrap_or(bytes.len() - start);
            let end = start + len;
            if bytes.get(end) == Some(&b'm') {
                let params = String::from_utf8_lossy(&bytes[start..end]);
                out.extend_from_slice(b"\x1b[");
                out.extend_from_slice(sgr_params(&params).as_bytes());
                out.push(b'm');
                i = end + 1;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// `38;5;9;48;5;4` → `91;44`; anything else is kept as it is.
fn sgr_params(params: &str) -> String {
    let p: Vec<&str> = params.split(';').collect();
    let mut out: Vec<String> = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        let named = match (p[i], p.get(i + 1), p.get(i + 2).map(|n| n.parse::<u8>())) {
            ("38", Some(&"5"), Some(Ok(n))) if n < 16 => Some(named_code(30, n)),
            ("48", Some(&"5"), Some(Ok(n))) if n < 16 => Some(named_code(40, n)),
            _ => None,
        };
        match named {
            Some(code) => {
                out.push(code.to_string());
                i += 3;
            }
            None => {
                // Keep an extended colour whole so its numbers are not read as attributes.
                let take = match (p[i], p.get(i + 1)) {
                    ("38" | "48" | "58", Some(&"5")) => 3,
                    ("38" | "48" | "58", Some(&"2")) => 5,
                    _ => 1,
                };
                let stop = (i + take).min(p.len());
                out.push(p[i..stop].join(";"));
                i = stop;
            }
        }
    }
    out.join(";")
}

/// The named SGR code of colour `n` (0-15): `base + n` for the first eight, the bright ones
/// at `base + 60`.
fn named_code(base: u8, n: u8) -> u8 {
    if n < 8 {
        base + n
    } else {
        base + 60 + (n - 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::CrosstermBackend;
    use ratatui::style::{Color, Style};
    use ratatui::text::Span;
    use ratatui::Terminal;
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_terminal_says_how_many_colours_it_has() {
        use ColourDepth::*;
        assert_eq!(ColourDepth::detect(Some("xterm"), None), Sixteen);
        assert_eq!(ColourDepth::detect(Some("linux"), Some("")), Sixteen);
        assert_eq!(ColourDepth::detect(None, None), Sixteen);
        assert_eq!(
            ColourDepth::detect(Some("xterm-256color"), None),
            Indexed256
        );
        assert_eq!(
            ColourDepth::detect(Some("screen-256color"), Some("")),
            Indexed256
        );
        assert_eq!(
            ColourDepth::detect(Some("xterm"), Some("truecolor")),
            TrueColour
        );
        assert_eq!(
            ColourDepth::detect(Some("xterm"), Some("24bit")),
            TrueColour
        );
    }

    #[test]
    fn codes_become_named_and_the_rest_stays() {
        let t = |s: &str| String::from_utf8(to_sixteen(s.as_bytes())).expect("utf8");
        assert_eq!(t("\x1b[38;5;1mA"), "\x1b[31mA");
        assert_eq!(t("\x1b[38;5;9m\x1b[48;5;4m"), "\x1b[91m\x1b[44m");
        assert_eq!(t("\x1b[38;5;8;48;5;15m"), "\x1b[90;107m");
        assert_eq!(
            t("\x1b[38;5;200m"),
            "\x1b[38;5;200m",
            "no named colour for 200"
        );
        assert_eq!(t("\x1b[1;38;5;2;7m"), "\x1b[1;32;7m");
        assert_eq!(t("\x1b[38;2;1;2;3m"), "\x1b[38;2;1;2;3m");
        assert_eq!(t("\x1b[39m\x1b[49m\x1b[0m"), "\x1b[39m\x1b[49m\x1b[0m");
        assert_eq!(t("\x1b[2J\x1b[5;10H"), "\x1b[2J\x1b[5;10H");
        assert_eq!(t("plain 38;5;1 text"), "plain 38;5;1 text");
    }

    /// A writer whose bytes the test can read after the terminal has them.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn drawn_bytes(depth: ColourDepth) -> String {
        let captured = Captured::default();
        let out = ColourOut::new(captured.clone(), depth);
        let mut term = Terminal::with_options(
            CrosstermBackend::new(out),
            ratatui::TerminalOptions {
                viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 20, 2)),
            },
        )
        .expect("terminal");
        term.draw(|f| {
            f.render_widget(
                ratatui::text::Line::from(vec![
                    Span::styled("CRIT", Style::default().fg(Color::Red)),
                    Span::styled(" dim", Style::default().fg(Color::DarkGray)),
                    Span::styled(" bar", Style::default().bg(Color::Blue)),
                ]),
                f.area(),
            )
        })
        .expect("draw");
        let bytes = captured.0.lock().expect("lock").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_sixteen_colour_terminal_gets_named_codes_through_the_real_backend() {
        let plain = drawn_bytes(ColourDepth::Sixteen);
        assert!(
            !plain.contains("38;5;") && !plain.contains("48;5;"),
            "{plain:?}"
        );
        // crossterm sends foreground and background together: `ESC[31;49m`.
        assert!(plain.contains("\x1b[31;49mCRIT"), "red: {plain:?}");
        assert!(plain.contains("\x1b[90;49m dim"), "dark grey: {plain:?}");
        assert!(plain.contains(";44m bar"), "blue background: {plain:?}");
        let rich = drawn_bytes(ColourDepth::Indexed256);
        assert!(rich.contains("\x1b[38;5;1;"), "left as sent: {rich:?}");
    }
}
