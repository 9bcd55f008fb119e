//! Text armour for files: the binary form in base64 between BEGIN and END
//! lines, in the style of PEM.
//!
//! ```text
//! -----BEGIN WEFT CREDENTIAL-----
//! AQEBIIUg8AmJMKdUdIt93LQ+91oNvzoNJjga9Oukq...   (64 characters a line)
//! -----END WEFT CREDENTIAL-----
//! ```
//!
//! Lines outside the block (comments, a trailing newline) are ignored; a
//! second block is refused, so a file never silently means only half of
//! what it holds. Whitespace at either end of a line (and CRLF) is allowed.

use std::fmt;

use super::wire::DecodeError;
use crate::base64::{self, Base64Error};

const LINE_LEN: usize = 64;
const DASHES: &str = "-----";

/// Why an armoured text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArmourError {
    TooLarge { len: usize, max: usize },
    NoBeginLine { expected: &'static str },
    WrongLabel { expected: &'static str, found: String },
    NoEndLine { expected: &'static str },
    MismatchedEnd { expected: &'static str, found: String },
    MultipleBlocks,
    Base64(Base64Error),
    Decode(DecodeError),
}

impl fmt::Display for ArmourError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArmourError::TooLarge { len, max } => {
                write!(f, "armoured text is {len} bytes, at most {max} accepted")
            }
            ArmourError::NoBeginLine { expected } => {
                write!(f, "no \"{DASHES}BEGIN {expected}{DASHES}\" line")
            }
            ArmourError::WrongLabel { expected, found } => {
                write!(f, "armour holds a {found:?}, expected a {expected:?}")
            }
            ArmourError::NoEndLine { expected } => {
                write!(f, "no \"{DASHES}END {expected}{DASHES}\" line")
            }
            ArmourError::MismatchedEnd { expected, found } => {
                write!(f, "END line says {found:?}, expected {expected:?}")
            }
            ArmourError::MultipleBlocks => f.write_str("more than one armoured block"),
            ArmourError::Base64(e) => write!(f, "armour body: {e}"),
            ArmourError::Decode(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ArmourError {}

pub fn encode(label: &str, bytes: &[u8]) -> String {
    let b64 = base64::encode(bytes);
    let mut out = format!("{DASHES}BEGIN {label}{DASHES}\n");
    for chunk in b64.as_bytes().chunks(LINE_LEN) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("{DASHES}END {label}{DASHES}\n"));
    out
}

/// The label of a `-----BEGIN X-----` / `-----END X-----` line, cut short so
/// that an error message never repeats a huge attacker-chosen string.
fn label_of<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    line.strip_prefix(DASHES)?.strip_prefix(word)?.strip_prefix(' ')?.strip_suffix(DASHES)
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The longest armoured text accepted for at most `max_bytes` of payload:
/// base64 plus line breaks, labels and room for a few comment lines.
pub fn max_text_len(max_bytes: usize) -> usize {
    max_bytes.div_ceil(3) * 4 * (LINE_LEN + 2) / LINE_LEN + 4096
}

/// Extracts the bytes of the one block labelled `label`.
pub fn decode(text: &str, label: &'static str, max_bytes: usize) -> Result<Vec<u8>, ArmourError> {
    let max = max_text_len(max_bytes);
    if text.len() > max {
        return Err(ArmourError::TooLarge { len: text.len(), max });
    }
    enum State {
        Before,
        Inside,
        After,
    }
    let mut state = State::Before;
    let mut body = String::new();
    for line in text.lines() {
        let line = line.trim();
        match state {
            State::Before => {
                if let Some(found) = label_of(line, "BEGIN") {
                    if found != label {
                        return Err(ArmourError::WrongLabel { expected: label, found: shorten(found) });
                    }
                    state = State::Inside;
                }
            }
            State::Inside => {
                if let Some(found) = label_of(line, "END") {
                    if found != label {
                        return Err(ArmourError::MismatchedEnd { expected: label, found: shorten(found) });
                    }
                    state = State::After;
                } else {
                    body.push_str(line);
                }
            }
            State::After => {
                if label_of(line, "BEGIN").is_some() {
                    return Err(ArmourError::MultipleBlocks);
                }
            }
        }
    }
    match state {
        State::Before => Err(ArmourError::NoBeginLine { expected: label }),
        State::Inside => Err(ArmourError::NoEndLine { expected: label }),
        State::After => base64::decode(&body).map_err(ArmourError::Base64),
    }
}

/// The label of the first BEGIN line, to tell what kind of file this is.
pub fn first_label(text: &str) -> Option<&str> {
    text.lines().find_map(|l| label_of(l.trim(), "BEGIN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: &str = "WEFT TEST";

    #[test]
    fn round_trips_with_line_breaks_and_comments() {
        let data: Vec<u8> = (0..=255).collect();
        let text = encode(L, &data);
        assert!(text.lines().all(|l| l.len() <= LINE_LEN || l.starts_with(DASHES)));
        assert_eq!(decode(&text, L, 1024).unwrap(), data);
        let commented = format!("# a comment\r\n\n{}\n", text.replace('\n', "\r\n"));
        assert_eq!(decode(&commented, L, 1024).unwrap(), data);
        assert_eq!(first_label(&commented), Some(L));
    }

    #[test]
    fn errors_are_specific() {
        let text = encode(L, b"hello");
        assert_eq!(decode("nothing here", L, 64), Err(ArmourError::NoBeginLine { expected: L }));
        assert_eq!(
            decode(&text, "WEFT OTHER", 64),
            Err(ArmourError::WrongLabel { expected: "WEFT OTHER", found: L.into() })
        );
        let no_end = text.replace("-----END WEFT TEST-----", "");
        assert_eq!(decode(&no_end, L, 64), Err(ArmourError::NoEndLine { expected: L }));
        let bad_end = text.replace("END WEFT TEST", "END WEFT TESTS");
        assert!(matches!(decode(&bad_end, L, 64), Err(ArmourError::MismatchedEnd { .. })));
        assert_eq!(decode(&format!("{text}{text}"), L, 64), Err(ArmourError::MultipleBlocks));
        let bad_b64 = text.replace("aGVsbG8=", "aGVs*G8=");
        assert!(matches!(
            decode(&bad_b64, L, 64),
            Err(ArmourError::Base64(Base64Error::BadCharacter { .. }))
        ));
        let huge = "A".repeat(max_text_len(64) + 1);
        assert!(matches!(decode(&huge, L, 64), Err(ArmourError::TooLarge { .. })));
    }
}
