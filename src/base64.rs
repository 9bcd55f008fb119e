//! Base64 with the standard alphabet and `=` padding (RFC 4648 §4), the text
//! form WireGuard uses for its keys.
//!
//! Decoding is strict: no whitespace, padding only at the end, and the unused
//! low bits of the last symbol must be zero. A key therefore has exactly one
//! text form, so two spellings of the same key never look like two keys.

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a base64 text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base64Error {
    /// The length is not a multiple of 4.
    BadLength(usize),
    /// A byte outside the alphabet, at this offset.
    BadCharacter { offset: usize, byte: u8 },
    /// `=` somewhere other than the last one or two positions.
    BadPadding,
    /// The unused bits of the last symbol are not zero.
    NonCanonical,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base64Error::BadLength(n) => {
                write!(f, "base64 length {n} is not a multiple of 4")
            }
            Base64Error::BadCharacter { offset, byte } => {
                write!(f, "byte {byte:#04x} at offset {offset} is not base64")
            }
            Base64Error::BadPadding => f.write_str("misplaced base64 padding '='"),
            Base64Error::NonCanonical => f.write_str("non-canonical base64 (unused bits set)"),
        }
    }
}

impl std::error::Error for Base64Error {}

/// Encodes `data` with padding.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for i in 0..4 {
            if i < symbols {
                let idx = (n >> (18 - 6 * i)) & 0x3F;
                out.push(ALPHABET[idx as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn value(offset: usize, byte: u8) -> Result<u32, Base64Error> {
    let v = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return Err(Base64Error::BadCharacter { offset, byte }),
    };
    Ok(u32::from(v))
}

/// Decodes padded standard base64.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return Err(Base64Error::BadLength(bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (q, quad) in bytes.chunks(4).enumerate() {
        let last = q + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(Base64Error::BadPadding);
        }
        let mut n = 0u32;
        for (i, &b) in quad[..4 - pad].iter().enumerate() {
            if b == b'=' {
                return Err(Base64Error::BadPadding);
            }
            n |= value(q * 4 + i, b)? << (18 - 6 * i);
        }
        let produced = 3 - pad;
        // Bits below the last full byte must be zero for a canonical text.
        let unused_mask = (1u32 << (8 * pad)) - 1;
        if n & unused_mask != 0 {
            return Err(Base64Error::NonCanonical);
        }
        for i in 0..produced {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Ok(out)
}

/// Decodes base64 text that must hold exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], Base64DecodeLenError> {
    let v = decode(text).map_err(Base64DecodeLenError::Base64)?;
    <[u8; N]>::try_from(v.as_slice())
        .map_err(|_| Base64DecodeLenError::WrongLength { expected: N, found: v.len() })
}

/// A base64 text that is either invalid or of the wrong decoded length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base64DecodeLenError {
    Base64(Base64Error),
    WrongLength { expected: usize, found: usize },
}

impl fmt::Display for Base64DecodeLenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base64DecodeLenError::Base64(e) => e.fmt(f),
            Base64DecodeLenError::WrongLength { expected, found } => {
                write!(f, "decodes to {found} bytes, expected {expected}")
            }
        }
    }
}

impl std::error::Error for Base64DecodeLenError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(encode(&[0xFB, 0xFF]), "+/8=");
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(decode("Zm9"), Err(Base64Error::BadLength(3)));
        assert_eq!(decode("Zm9v Zg=="), Err(Base64Error::BadLength(9)), "whitespace is never skipped");
        assert_eq!(decode("Zm-v"), Err(Base64Error::BadCharacter { offset: 2, byte: b'-' }));
        assert_eq!(decode("Zg==Zm9v"), Err(Base64Error::BadPadding));
        assert_eq!(decode("Z==="), Err(Base64Error::BadPadding));
        assert_eq!(decode("Z=g="), Err(Base64Error::BadPadding));
        assert_eq!(decode("Zh=="), Err(Base64Error::NonCanonical));
        assert_eq!(decode("Zm9="), Err(Base64Error::NonCanonical));
        assert_eq!(
            decode_array::<32>("Zm9v"),
            Err(Base64DecodeLenError::WrongLength { expected: 32, found: 3 })
        );
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(decode(&encode(&data)).unwrap(), data);
        }

        #[test]
        fn decode_never_panics(text in "[A-Za-z0-9+/=]{0,24}") {
            if let Ok(v) = decode(&text) {
                prop_assert_eq!(encode(&v), text);
            }
        }
    }
}
