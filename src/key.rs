//! The one 32-byte public key type of weft: a node's WireGuard (X25519) key,
//! which is its identity, and the bytes of a CA's Ed25519 key before the
//! trust module has checked that they are a curve point.
//!
//! Its text form is the one `wg pubkey` prints (44 characters of padded
//! standard base64, through the crate's one codec, [`crate::base64`]); the
//! UAPI's form is lower-case hex. Configuration, WireGuard backends, the
//! link layer and the trust module all use this type.

use std::fmt;
use std::str::FromStr;

use crate::base64::{self, Base64DecodeLenError};

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// A 32-byte public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PublicKey(pub [u8; KEY_LEN]);

/// Why a key text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyTextError {
    /// Not base64 of exactly 32 bytes.
    Base64(Base64DecodeLenError),
    /// Not 64 hex digits.
    Hex,
}

impl fmt::Display for KeyTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyTextError::Base64(e) => write!(f, "key is not base64 of 32 bytes: {e}"),
            KeyTextError::Hex => f.write_str("key is not 64 hex digits"),
        }
    }
}

impl std::error::Error for KeyTextError {}

/// X25519 public keys of small order (RFC 7748 §7): with one of these as a
/// peer key the "shared" secret is all zeros, known to everybody. Little
/// endian, compared with bit 255 cleared (X25519 ignores it): 0, 1, the two
/// points of order 8, p-1, p and p+1.
const LOW_ORDER: [[u8; KEY_LEN]; 7] = {
    let mut t = [[0u8; KEY_LEN]; 7];
    t[1][0] = 1;
    t[2] = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda,
        0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ];
    t[3] = [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04,
        0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
    ];
    let mut i = 4;
    while i < 7 {
        let mut k = [0xffu8; KEY_LEN];
        k[0] = 0xec + (i as u8 - 4);
        k[31] = 0x7f;
        t[i] = k;
        i += 1;
    }
    t
};

impl PublicKey {
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The all-zero key, which WireGuard uses for "no key".
    pub fn is_zero(&self) -> bool {
        self.0 == [0; KEY_LEN]
    }

    /// A key of small order as an X25519 key: never a real node's key, and
    /// any "secret" agreed with it is public. Refused wherever a key enters
    /// (configuration, credentials, beacons) before any cryptography.
    pub fn is_low_order(&self) -> bool {
        let mut k = self.0;
        k[31] &= 0x7f;
        LOW_ORDER.contains(&k)
    }

    /// Lower-case hex, as the WireGuard UAPI wants it.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(2 * KEY_LEN);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// Exactly 64 hex digits, either case.
    pub fn from_hex(s: &str) -> Result<PublicKey, KeyTextError> {
        let b = s.as_bytes();
        if b.len() != 2 * KEY_LEN {
            return Err(KeyTextError::Hex);
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8).ok_or(KeyTextError::Hex);
        let mut out = [0u8; KEY_LEN];
        for (i, o) in out.iter_mut().enumerate() {
            *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
        }
        Ok(PublicKey(out))
    }

    /// The 44-character base64 text (the [`fmt::Display`] form).
    pub fn to_base64(&self) -> String {
        base64::encode(&self.0)
    }

    /// Parses the 44-character base64 text, strictly: no whitespace, one
    /// canonical spelling per key (so comparing texts compares keys).
    pub fn from_base64(s: &str) -> Result<PublicKey, KeyTextError> {
        base64::decode_array::<KEY_LEN>(s).map(PublicKey).map_err(KeyTextError::Base64)
    }
}

impl fmt::Display for PublicKey {
    /// The same base64 text as `wg pubkey` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyTextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublicKey::from_base64(s)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_are_strict() {
        let b64 = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
        let k: PublicKey = b64.parse().unwrap();
        assert_eq!(k.to_string(), b64);
        assert_eq!(k.to_hex(), "1c8828f7137324c58b2804928624ea2326f1674537c062e251e2753ca7fcca4c");
        assert_eq!(PublicKey::from_hex(&k.to_hex()).unwrap(), k);
        assert_eq!(PublicKey::from_hex(&k.to_hex().to_uppercase()).unwrap(), k);
        assert!(PublicKey::from_hex("00").is_err());
        assert!(PublicKey::from_hex(&"g".repeat(64)).is_err());
        // Unused low bits set: another spelling of a key, refused.
        assert!("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykx=".parse::<PublicKey>().is_err());
        assert!("short=".parse::<PublicKey>().is_err());
        assert!(format!(" {b64}").parse::<PublicKey>().is_err(), "whitespace is the caller's to trim");
    }

    #[test]
    fn the_low_order_table_is_exactly_the_keys_x25519_refuses() {
        use ed25519_compact::x25519;
        let sk = x25519::SecretKey::new([0x5a; 32]);
        for k in LOW_ORDER {
            assert!(x25519::PublicKey::new(k).dh(&sk).is_err(), "{k:02x?} is not of small order");
            // Bit 255 is ignored by X25519, so it is by the check too.
            let mut high = k;
            high[31] |= 0x80;
            assert!(PublicKey(high).is_low_order());
            assert!(PublicKey(k).is_low_order());
        }
        for seed in 1..=200u8 {
            let pk = crate::trust::NodePrivateKey::from_random([seed; 32]).public_key();
            assert!(!pk.is_low_order());
            assert!(x25519::PublicKey::new(pk.0).dh(&sk).is_ok());
        }
    }
}
