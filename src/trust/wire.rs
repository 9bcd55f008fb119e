//! The signed-object envelope shared by credentials and revocation lists,
//! its type-length-value fields, and their typed decode errors.
//!
//! ```text
//!  0        1        2                                 n-64          n
//! +--------+--------+----------------  ...  ----------+--------------+
//! |version |  kind  | field | field | ...             | signature    |
//! |  = 1   |        |                                 | (Ed25519, 64)|
//! +--------+--------+----------------  ...  ----------+--------------+
//!  \_______________ signed bytes ____________________/
//!
//! field:  type (1) | length (1) | value (length bytes)
//! ```
//!
//! The signature is Ed25519 over `SIGNING_CONTEXT ‖ signed bytes`, where the
//! signed bytes are the object's exact bytes up to the signature. A field
//! type this parser does not know is skipped when it is below 0x80 and makes
//! the whole object refused when it is 0x80 or above ("critical", the same
//! convention as Babel's mandatory sub-TLVs). `docs/CREDENTIALS.md` has the
//! field registry.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::babel::Prefix;

/// The only envelope version so far.
pub const FORMAT_VERSION: u8 = 1;

/// Prepended to the signed bytes before signing, so that a CA signature over
/// a weft object can never be replayed as a signature over anything else
/// the CA key might sign.
pub const SIGNING_CONTEXT: &[u8] = b"weft signed object v1\0";

pub const SIGNATURE_LEN: usize = 64;
/// Version, kind and signature: the smallest possible object.
pub const ENVELOPE_OVERHEAD: usize = 2 + SIGNATURE_LEN;

/// Field types with this bit set must be understood or the object refused.
pub const CRITICAL_BIT: u8 = 0x80;

/// The field type registry (one namespace for every object kind).
pub mod field {
    pub const PUBLIC_KEY: u8 = 0x01;
    pub const NAME: u8 = 0x02;
    pub const VALIDITY: u8 = 0x03;
    pub const CA_KEY_ID: u8 = 0x04;
    pub const PREFIX: u8 = 0x05;
    pub const GROUP: u8 = 0x06;
    pub const SERIAL: u8 = 0x07;
    pub const ISSUED: u8 = 0x08;
    pub const REVOKED_KEY: u8 = 0x09;
    /// The node's Ed25519 key for origin-signed announcements (32 bytes).
    pub const SIGNING_KEY: u8 = 0x0A;
}

/// What a signed object is, the second byte of the envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Credential = 1,
    RevocationList = 2,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Credential => "credential",
            ObjectKind::RevocationList => "revocation list",
        })
    }
}

/// A field value that the format does not admit, found while encoding or
/// decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    EmptyText {
        field: &'static str,
    },
    TextTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A character the field does not allow (control characters anywhere;
    /// for groups anything outside `A-Z a-z 0-9 . _ : -`).
    BadCharacter {
        field: &'static str,
        ch: char,
    },
    TooMany {
        field: &'static str,
        max: usize,
    },
    DuplicateEntry {
        field: &'static str,
        entry: String,
    },
    /// The encoded object would exceed the decoders' size limit.
    Oversized {
        len: usize,
        max: usize,
    },
    /// not-after earlier than not-before.
    ValidityWindow {
        not_before: u64,
        not_after: u64,
    },
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::EmptyText { field } => write!(f, "{field} is empty"),
            ValueError::TextTooLong { field, len, max } => {
                write!(f, "{field} is {len} bytes long, at most {max} allowed")
            }
            ValueError::BadCharacter { field, ch } => {
                write!(f, "{field} contains the character {ch:?}, not allowed there")
            }
            ValueError::TooMany { field, max } => write!(f, "more than {max} {field} entries"),
            ValueError::DuplicateEntry { field, entry } => {
                write!(f, "{field} {entry} appears twice")
            }
            ValueError::Oversized { len, max } => {
                write!(f, "encoded size {len} bytes exceeds the limit of {max}")
            }
            ValueError::ValidityWindow { not_before, not_after } => write!(
                f,
                "validity window ends (not-after {not_after}) before it starts \
                 (not-before {not_before})"
            ),
        }
    }
}

/// Why bytes are not a valid signed object. Every variant names what is
/// wrong; offsets count from the first byte of the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    TooShort {
        len: usize,
        min: usize,
    },
    TooLong {
        len: usize,
        max: usize,
    },
    UnsupportedVersion(u8),
    WrongKind {
        expected: ObjectKind,
        found: u8,
    },
    /// A field header or value runs past the start of the signature.
    Truncated {
        offset: usize,
    },
    /// A field type this parser does not know, with the critical bit set.
    UnknownCriticalField {
        field_type: u8,
        offset: usize,
    },
    DuplicateField {
        field: &'static str,
    },
    MissingField {
        field: &'static str,
    },
    BadFieldLength {
        field: &'static str,
        len: usize,
    },
    NotUtf8 {
        field: &'static str,
    },
    BadPrefix {
        reason: &'static str,
    },
    Value(ValueError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort { len, min } => {
                write!(f, "{len} bytes is too short (at least {min})")
            }
            DecodeError::TooLong { len, max } => {
                write!(f, "{len} bytes is too long (at most {max})")
            }
            DecodeError::UnsupportedVersion(v) => {
                write!(f, "format version {v} is not supported (only {FORMAT_VERSION})")
            }
            DecodeError::WrongKind { expected, found } => {
                write!(f, "object kind {found} is not a {expected}")
            }
            DecodeError::Truncated { offset } => {
                write!(f, "field at offset {offset} runs past the signature")
            }
            DecodeError::UnknownCriticalField { field_type, offset } => write!(
                f,
                "unknown critical field type {field_type:#04x} at offset {offset} \
                 (made by a newer weft?)"
            ),
            DecodeError::DuplicateField { field } => write!(f, "field {field} appears twice"),
            DecodeError::MissingField { field } => write!(f, "required field {field} is missing"),
            DecodeError::BadFieldLength { field, len } => {
                write!(f, "field {field} has invalid length {len}")
            }
            DecodeError::NotUtf8 { field } => write!(f, "field {field} is not UTF-8"),
            DecodeError::BadPrefix { reason } => write!(f, "invalid prefix: {reason}"),
            DecodeError::Value(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<ValueError> for DecodeError {
    fn from(e: ValueError) -> Self {
        DecodeError::Value(e)
    }
}

/// Checks the envelope and returns the signed bytes (everything before the
/// signature).
pub(crate) fn open_envelope(bytes: &[u8], kind: ObjectKind, max_len: usize) -> Result<&[u8], DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLong { len: bytes.len(), max: max_len });
    }
    if bytes.len() < ENVELOPE_OVERHEAD {
        return Err(DecodeError::TooShort { len: bytes.len(), min: ENVELOPE_OVERHEAD });
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(bytes[0]));
    }
    if bytes[1] != kind as u8 {
        return Err(DecodeError::WrongKind { expected: kind, found: bytes[1] });
    }
    Ok(&bytes[..bytes.len() - SIGNATURE_LEN])
}

/// Calls `visit(type, value, offset)` for every field of the signed bytes.
/// `visit` returns whether it knew the type; unknown critical types stop the
/// walk with an error, unknown others are skipped.
pub(crate) fn walk_fields<'a>(
    signed: &'a [u8],
    mut visit: impl FnMut(u8, &'a [u8]) -> Result<bool, DecodeError>,
) -> Result<(), DecodeError> {
    let mut pos = 2;
    while pos < signed.len() {
        if signed.len() - pos < 2 {
            return Err(DecodeError::Truncated { offset: pos });
        }
        let t = signed[pos];
        let len = usize::from(signed[pos + 1]);
        let start = pos + 2;
        if signed.len() - start < len {
            return Err(DecodeError::Truncated { offset: pos });
        }
        let value = &signed[start..start + len];
        let known = visit(t, value)?;
        if !known && t & CRITICAL_BIT != 0 {
            return Err(DecodeError::UnknownCriticalField { field_type: t, offset: pos });
        }
        pos = start + len;
    }
    Ok(())
}

/// Builds the signed bytes of an envelope.
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new(kind: ObjectKind) -> Writer {
        Writer { buf: vec![FORMAT_VERSION, kind as u8] }
    }

    /// Appends one field. Values are at most 255 bytes by construction
    /// (the callers validate lengths first).
    pub fn field(&mut self, t: u8, value: &[u8]) {
        debug_assert!(value.len() <= 255, "field value over 255 bytes");
        self.buf.push(t);
        self.buf.push(value.len() as u8);
        self.buf.extend_from_slice(value);
    }

    /// Bytes written so far (the offset of the next field).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// `SIGNING_CONTEXT ‖ signed`: the message the CA signs.
pub(crate) fn signing_message(signed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + signed.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(signed);
    m
}

pub(crate) fn fixed<const N: usize>(field: &'static str, v: &[u8]) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(v).map_err(|_| DecodeError::BadFieldLength { field, len: v.len() })
}

pub(crate) fn u64_field(field: &'static str, v: &[u8]) -> Result<u64, DecodeError> {
    fixed::<8>(field, v).map(u64::from_be_bytes)
}

/// Sets a field that may appear once.
pub(crate) fn once<T>(slot: &mut Option<T>, field: &'static str, v: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateField { field });
    }
    *slot = Some(v);
    Ok(())
}

/// Address encodings, as Babel numbers them (RFC 8966 §4.1.5).
const AE_IPV4: u8 = 1;
const AE_IPV6: u8 = 2;

/// A prefix value: AE (1 = IPv4, 2 = IPv6), length in bits, then the
/// ⌈length/8⌉ leading bytes of the address (host bits zero).
pub(crate) fn encode_prefix(p: &Prefix) -> Vec<u8> {
    let len = p.len();
    let n = usize::from(len).div_ceil(8);
    let mut v = Vec::with_capacity(2 + n);
    match p {
        Prefix::V4(a, _) => {
            v.push(AE_IPV4);
            v.push(len);
            v.extend_from_slice(&a.octets()[..n]);
        }
        Prefix::V6(a, _) => {
            v.push(AE_IPV6);
            v.push(len);
            v.extend_from_slice(&a.octets()[..n]);
        }
    }
    v
}

pub(crate) fn decode_prefix(v: &[u8]) -> Result<Prefix, DecodeError> {
    let bad = |reason| DecodeError::BadPrefix { reason };
    if v.len() < 2 {
        return Err(bad("shorter than its 2-byte header"));
    }
    let (ae, len, addr) = (v[0], v[1], &v[2..]);
    let max = match ae {
        AE_IPV4 => 32,
        AE_IPV6 => 128,
        _ => return Err(bad("address encoding is neither 1 (IPv4) nor 2 (IPv6)")),
    };
    if len > max {
        return Err(bad("prefix length exceeds the address size"));
    }
    if addr.len() != usize::from(len).div_ceil(8) {
        return Err(bad("address bytes do not match the prefix length"));
    }
    if len % 8 != 0 {
        let last = addr[addr.len() - 1];
        if last & (0xFFu8 >> (len % 8)) != 0 {
            return Err(bad("host bits are set"));
        }
    }
    let p = if ae == AE_IPV4 {
        let mut o = [0u8; 4];
        o[..addr.len()].copy_from_slice(addr);
        Prefix::new(Ipv4Addr::from(o).into(), len)
    } else {
        let mut o = [0u8; 16];
        o[..addr.len()].copy_from_slice(addr);
        Prefix::new(Ipv6Addr::from(o).into(), len)
    };
    p.ok_or(bad("prefix length exceeds the address size"))
}

/// Checks a human-readable name: 1..=max bytes, no control characters.
pub(crate) fn check_name(field: &'static str, s: &str, max: usize) -> Result<(), ValueError> {
    check_text(field, s, max, |c| !c.is_control())
}

/// Checks a group: 1..=max bytes of `A-Z a-z 0-9 . _ : -`, so that group
/// names are safe in configuration files and on the command line.
pub(crate) fn check_group(field: &'static str, s: &str, max: usize) -> Result<(), ValueError> {
    check_text(field, s, max, |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

fn check_text(
    field: &'static str,
    s: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ValueError> {
    if s.is_empty() {
        return Err(ValueError::EmptyText { field });
    }
    if s.len() > max {
        return Err(ValueError::TextTooLong { field, len: s.len(), max });
    }
    if let Some(ch) = s.chars().find(|&c| !allowed(c)) {
        return Err(ValueError::BadCharacter { field, ch });
    }
    Ok(())
}

pub(crate) fn utf8<'a>(field: &'static str, v: &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(v).map_err(|_| DecodeError::NotUtf8 { field })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_encoding_round_trips_and_is_compact() {
        for text in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.1.128.0/17",
            "192.0.2.1/32",
            "::/0",
            "fd00:1234:5678::/48",
            "2001:db8::1/128",
        ] {
            let p: Prefix = text.parse().unwrap();
            let v = encode_prefix(&p);
            assert_eq!(v.len(), 2 + usize::from(p.len()).div_ceil(8));
            assert_eq!(decode_prefix(&v).unwrap(), p, "{text}");
        }
    }

    #[test]
    fn prefix_decoding_refuses_bad_values() {
        let bad = |v: &[u8]| matches!(decode_prefix(v), Err(DecodeError::BadPrefix { .. }));
        assert!(bad(&[]));
        assert!(bad(&[1]));
        assert!(bad(&[3, 0]), "unknown AE");
        assert!(bad(&[1, 33, 0, 0, 0, 0, 0]), "v4 /33");
        assert!(bad(&[2, 129]), "v6 /129");
        assert!(bad(&[1, 8]), "missing byte");
        assert!(bad(&[1, 8, 10, 0]), "extra byte");
        assert!(bad(&[1, 7, 0x0B]), "host bit set");
        assert!(!bad(&[1, 7, 0x0A]));
    }

    #[test]
    fn text_checks() {
        assert!(check_name("name", "Kitchen router ü", 64).is_ok());
        assert!(matches!(check_name("name", "a\nb", 64), Err(ValueError::BadCharacter { ch: '\n', .. })));
        assert!(matches!(check_name("name", "", 64), Err(ValueError::EmptyText { .. })));
        assert!(matches!(
            check_name("name", &"x".repeat(65), 64),
            Err(ValueError::TextTooLong { len: 65, .. })
        ));
        assert!(check_group("group", "ops:admins-2.b_c", 32).is_ok());
        assert!(check_group("group", "a b", 32).is_err());
    }
}
