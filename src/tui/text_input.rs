//! A one-line text field with a cursor, as the prompts' fields hold it (a reason, an action's
//! params). Owns the text and the cursor and how an edit changes them; knows nothing of keys or
//! drawing. Control characters never enter the text.

/// One change to a text field. Keys become these through the keymap; a printable character
/// that no binding claims becomes `Insert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Edit {
    Insert(char),
    DeleteBack,
    DeleteForward,
    Left,
    Right,
    Home,
    End,
    Clear,
}

/// The text and where the cursor is (a character index, 0..=len).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextField {
    chars: Vec<char>,
    cursor: usize,
    max_chars: usize,
}

impl TextField {
    /// An empty field that holds at most `max_chars` characters.
    pub fn new(max_chars: usize) -> Self {
        TextField {
            chars: Vec::new(),
            cursor: 0,
            max_chars,
        }
    }

    /// A field prefilled with `text` (control characters dropped), the cursor at its end.
    pub fn with_text(text: &str, max_chars: usize) -> Self {
        let chars: Vec<char> = text
            .chars()
            .filter(|c| !c.is_control())
            .take(max_chars)
            .collect();
        TextField {
            cursor: chars.len(),
            chars,
            max_chars,
        }
    }

    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// The cursor as a character index.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The text split at the cursor: before it, and from it on.
    pub fn split_at_cursor(&self) -> (String, String) {
        (
            self.chars[..self.cursor].iter().collect(),
            self.chars[self.cursor..].iter().collect(),
        )
    }

    /// Apply one edit. Returns whether the text changed.
    pub fn apply(&mut self, edit: Edit) -> bool {
        match edit {
            Edit::Insert(c) => {
                if c.is_control() || self.chars.len() >= self.max_chars {
                    return false;
                }
                self.chars.insert(self.cursor, c);
                self.cursor += 1;
                true
            }
            Edit::DeleteBack => {
                if self.cursor == 0 {
                    return false;
                }
                self.cursor -= 1;
                self.chars.remove(self.cursor);
                true
            }
            Edit::DeleteForward => {
                if self.cursor >= self.chars.len() {
                    return false;
                }
                self.chars.remove(self.cursor);
                true
            }
            Edit::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                false
            }
            Edit::Right => {
                self.cursor = (self.cursor + 1).min(self.chars.len());
                false
            }
            Edit::Home => {
                self.cursor = 0;
                false
            }
            Edit::End => {
                self.cursor = self.chars.len();
                false
            }
            Edit::Clear => {
                let changed = !self.chars.is_empty();
                self.chars.clear();
                self.cursor = 0;
                changed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(f: &mut TextField, s: &str) {
        for c in s.chars() {
            f.apply(Edit::Insert(c));
        }
    }

    #[test]
    fn typing_goes_where_the_cursor_is() {
        let mut f = TextField::new(100);
        typed(&mut f, "hlo");
        f.apply(Edit::Left);
        f.apply(Edit::Left);
        typed(&mut f, "el");
        assert_eq!(f.text(), "hello");
        assert_eq!(f.cursor(), 3);
        f.apply(Edit::End);
        f.apply(Edit::DeleteBack);
        f.apply(Edit::Home);
        f.apply(Edit::DeleteForward);
        assert_eq!(f.text(), "ell");
        assert_eq!(f.split_at_cursor(), (String::new(), "ell".into()));
    }

    #[test]
    fn edges_and_limits_hold() {
        let mut f = TextField::with_text("ab\u{1b}c", 4);
        assert_eq!(f.text(), "abc", "control characters never enter");
        assert_eq!(f.cursor(), 3);
        f.apply(Edit::Right);
        assert_eq!(f.cursor(), 3);
        typed(&mut f, "dé");
        assert_eq!(f.text(), "abcd", "the limit is in characters");
        assert!(!f.apply(Edit::Insert('\n')));
        f.apply(Edit::Home);
        assert!(!f.apply(Edit::DeleteBack));
        assert!(f.apply(Edit::Clear));
        assert_eq!((f.text().as_str(), f.cursor()), ("", 0));
        assert!(!f.apply(Edit::Left) && f.cursor() == 0);
    }
}
