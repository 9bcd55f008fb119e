//! Wire format of weft's link discovery and tunnel handshake.
//!
//! Datagrams go to UDP port [`DISCOVERY_PORT`]: beacons to the link-local
//! group ff02::114 (IANA: "any private experiment") on raw mesh interfaces,
//! handshake messages by unicast (link-local, or a static peer's address).
//! Nothing here is Babel, so babeld and BIRD never see it.
//!
//! ```text
//!  0      4   5   6
//! +------+---+---+---------------------------------------------+
//! | WEFT | 1 | T | body (big-endian)                            |
//! +------+---+---+---------------------------------------------+
//! T=1 Beacon : key(32) cred_len(2) cred
//! T=2 Offer  : from(32) to(32) nonce(8) stamp(8) cred_len(2) cred mac(16)
//! T=3 Answer : from(32) to(32) echo(8) nonce(8) port(2) cred_len(2) cred mac(16)
//! T=4 Confirm: from(32) to(32) echo(8) stamp(8) port(2) mac(16)
//! ```
//! `key`/`from`/`to` are WireGuard public keys; `port` is the sender's
//! WireGuard listen port for this pair; `mac` is a 16-byte MAC over every
//! byte before it ([`mac`]: HMAC-SHA-512 keyed by the pair's X25519 shared
//! secret), so only the holders of the two private keys can produce it.
//! `echo` returns the nonce of the message being answered, which proves the
//! Answer and the Confirm fresh. `stamp` makes the Offer fresh: the
//! sender's run (32 random bits, high half) and a counter of the Offers it
//! sent in that run (low half); a receiver drops an Offer whose stamp is not
//! above the last one it took from that key in the same run. The Confirm
//! repeats the stamp of the Offer it completes: the responder derives its
//! Answer's nonce from it (keeping no state per Offer, so a replayed Offer
//! has nothing to overwrite), and takes a Confirm only for an Offer newer
//! than the last handshake it completed with that key.
//!
//! Version 2: version 1 Offers carried the sender's port (never used) and
//! no stamp, and Confirms no stamp.

use std::net::Ipv6Addr;

pub const MAGIC: &[u8; 4] = b"WEFT";
pub const VERSION: u8 = 2;
pub const DISCOVERY_PORT: u16 = 6698;
/// ff02::114, "any private experiment" (RFC 4291 / IANA).
pub const DISCOVERY_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x114);
pub const MAC_LEN: usize = 16;
/// Credentials are small; anything larger is refused before any parsing.
pub const MAX_CREDENTIAL: usize = 1024;

pub use crate::key::PublicKey;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkMessage {
    Beacon {
        key: PublicKey,
        credential: Vec<u8>,
    },
    Offer {
        from: PublicKey,
        to: PublicKey,
        nonce: u64,
        stamp: u64,
        credential: Vec<u8>,
        mac: [u8; MAC_LEN],
    },
    Answer {
        from: PublicKey,
        to: PublicKey,
        echo: u64,
        nonce: u64,
        port: u16,
        credential: Vec<u8>,
        mac: [u8; MAC_LEN],
    },
    Confirm {
        from: PublicKey,
        to: PublicKey,
        echo: u64,
        stamp: u64,
        port: u16,
        mac: [u8; MAC_LEN],
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    TooShort,
    BadMagic,
    BadVersion(u8),
    UnknownType(u8),
    CredentialTooLong(usize),
    TrailingBytes(usize),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::TooShort => write!(f, "datagram too short"),
            WireError::BadMagic => write!(f, "not a weft discovery datagram"),
            WireError::BadVersion(v) => write!(f, "unsupported discovery version {v}"),
            WireError::UnknownType(t) => write!(f, "unknown discovery message type {t}"),
            WireError::CredentialTooLong(n) => write!(f, "credential of {n} bytes is too long"),
            WireError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the message"),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::TooShort)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::TooShort)?;
        self.pos = end;
        Ok(s)
    }
    fn key(&mut self) -> Result<PublicKey, WireError> {
        Ok(PublicKey(self.take(32)?.try_into().expect("32 bytes")))
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn credential(&mut self) -> Result<Vec<u8>, WireError> {
        let n = self.u16()? as usize;
        if n > MAX_CREDENTIAL {
            return Err(WireError::CredentialTooLong(n));
        }
        Ok(self.take(n)?.to_vec())
    }
    fn mac(&mut self) -> Result<[u8; MAC_LEN], WireError> {
        Ok(self.take(MAC_LEN)?.try_into().expect("mac"))
    }
}

impl LinkMessage {
    /// Decodes a datagram. Also returns the length of the MAC-covered part
    /// (everything before the MAC) for messages that carry one.
    pub fn decode(buf: &[u8]) -> Result<(LinkMessage, usize), WireError> {
        if buf.len() < 6 {
            return Err(WireError::TooShort);
        }
        if &buf[..4] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if buf[4] != VERSION {
            return Err(WireError::BadVersion(buf[4]));
        }
        let mut r = Reader { buf, pos: 6 };
        let (msg, covered) = match buf[5] {
            1 => {
                let key = r.key()?;
                let credential = r.credential()?;
                (LinkMessage::Beacon { key, credential }, r.pos)
            }
            2 => {
                let (from, to, nonce, stamp, credential) =
                    (r.key()?, r.key()?, r.u64()?, r.u64()?, r.credential()?);
                let covered = r.pos;
                (LinkMessage::Offer { from, to, nonce, stamp, credential, mac: r.mac()? }, covered)
            }
            3 => {
                let (from, to, echo, nonce, port, credential) =
                    (r.key()?, r.key()?, r.u64()?, r.u64()?, r.u16()?, r.credential()?);
                let covered = r.pos;
                (LinkMessage::Answer { from, to, echo, nonce, port, credential, mac: r.mac()? }, covered)
            }
            4 => {
                let (from, to, echo, stamp, port) = (r.key()?, r.key()?, r.u64()?, r.u64()?, r.u16()?);
                let covered = r.pos;
                (LinkMessage::Confirm { from, to, echo, stamp, port, mac: r.mac()? }, covered)
            }
            t => return Err(WireError::UnknownType(t)),
        };
        if r.pos != buf.len() {
            return Err(WireError::TrailingBytes(buf.len() - r.pos));
        }
        Ok((msg, covered))
    }

    /// Encodes the message. For messages with a MAC, the MAC field is
    /// written as given; use [`seal`] to compute it.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        let cred = |b: &mut Vec<u8>, c: &[u8]| {
            b.extend_from_slice(&(c.len() as u16).to_be_bytes());
            b.extend_from_slice(c);
        };
        match self {
            LinkMessage::Beacon { key, credential } => {
                b.push(1);
                b.extend_from_slice(&key.0);
                cred(&mut b, credential);
            }
            LinkMessage::Offer { from, to, nonce, stamp, credential, mac } => {
                b.push(2);
                b.extend_from_slice(&from.0);
                b.extend_from_slice(&to.0);
                b.extend_from_slice(&nonce.to_be_bytes());
                b.extend_from_slice(&stamp.to_be_bytes());
                cred(&mut b, credential);
                b.extend_from_slice(mac);
            }
            LinkMessage::Answer { from, to, echo, nonce, port, credential, mac } => {
                b.push(3);
                b.extend_from_slice(&from.0);
                b.extend_from_slice(&to.0);
                b.extend_from_slice(&echo.to_be_bytes());
                b.extend_from_slice(&nonce.to_be_bytes());
                b.extend_from_slice(&port.to_be_bytes());
                cred(&mut b, credential);
                b.extend_from_slice(mac);
            }
            LinkMessage::Confirm { from, to, echo, stamp, port, mac } => {
                b.push(4);
                b.extend_from_slice(&from.0);
                b.extend_from_slice(&to.0);
                b.extend_from_slice(&echo.to_be_bytes());
                b.extend_from_slice(&stamp.to_be_bytes());
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(mac);
            }
        }
        b
    }
}

const MAC_CONTEXT: &[u8] = b"weft link handshake v1";

/// HMAC-SHA-512 (RFC 2104), truncated by the caller.
pub fn hmac_sha512(key: &[u8], data: &[&[u8]]) -> [u8; 64] {
    use ed25519_compact::sha512::Hash as Sha512;
    let mut k = [0u8; 128];
    if key.len() > 128 {
        k[..64].copy_from_slice(&Sha512::hash(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha512::new();
    inner.update(k.map(|b| b ^ 0x36));
    for d in data {
        inner.update(d);
    }
    let ih = inner.finalize();
    let mut outer = Sha512::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(ih);
    outer.finalize()
}

/// The MAC of handshake bytes under the pair's shared secret.
pub fn mac(secret: &[u8; 32], data: &[u8]) -> [u8; MAC_LEN] {
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&hmac_sha512(secret, &[MAC_CONTEXT, data])[..MAC_LEN]);
    out
}

/// Encodes a MAC-carrying message with its MAC computed by `mac_of` over
/// the covered bytes.
pub fn seal(msg: &LinkMessage, mac_of: impl FnOnce(&[u8]) -> [u8; MAC_LEN]) -> Vec<u8> {
    let mut b = msg.encode();
    if matches!(msg, LinkMessage::Beacon { .. }) {
        return b;
    }
    let covered = b.len() - MAC_LEN;
    let m = mac_of(&b[..covered]);
    b[covered..].copy_from_slice(&m);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let msgs = [
            LinkMessage::Beacon { key: PublicKey([1; 32]), credential: vec![9; 40] },
            LinkMessage::Offer {
                from: PublicKey([1; 32]),
                to: PublicKey([2; 32]),
                nonce: 7,
                stamp: 0x1234_5678_0000_0009,
                credential: vec![],
                mac: [3; 16],
            },
            LinkMessage::Answer {
                from: PublicKey([2; 32]),
                to: PublicKey([1; 32]),
                echo: 7,
                nonce: 8,
                port: 51821,
                credential: vec![5; 3],
                mac: [4; 16],
            },
            LinkMessage::Confirm {
                from: PublicKey([1; 32]),
                to: PublicKey([2; 32]),
                echo: 8,
                stamp: 0x1234_5678_0000_0009,
                port: 51820,
                mac: [6; 16],
            },
        ];
        for m in &msgs {
            let b = m.encode();
            let (d, covered) = LinkMessage::decode(&b).unwrap();
            assert_eq!(&d, m);
            if !matches!(m, LinkMessage::Beacon { .. }) {
                assert_eq!(covered, b.len() - MAC_LEN);
            }
            for cut in 0..b.len() {
                assert!(LinkMessage::decode(&b[..cut]).is_err(), "truncated at {cut} accepted");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(LinkMessage::decode(&longer).unwrap_err(), WireError::TrailingBytes(1));
        }
        assert_eq!(LinkMessage::decode(b"WEFX\x01\x01").unwrap_err(), WireError::BadMagic);
        assert_eq!(LinkMessage::decode(b"WEFT\x01\x01").unwrap_err(), WireError::BadVersion(1));
        assert_eq!(LinkMessage::decode(b"WEFT\x02\x09").unwrap_err(), WireError::UnknownType(9));
        let mut huge = LinkMessage::Beacon { key: PublicKey([1; 32]), credential: vec![] }.encode();
        huge[38..40].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(LinkMessage::decode(&huge).unwrap_err(), WireError::CredentialTooLong(2000));
    }

    #[test]
    fn hmac_sha512_matches_rfc4231_case_2() {
        let mac = hmac_sha512(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac[..8],
            [0x16, 0x4b, 0x7a, 0x7b, 0xfc, 0xf8, 0x19, 0xe2],
            "RFC 4231 test case 2 (HMAC-SHA-512)"
        );
    }

    #[test]
    fn seal_fills_the_mac_over_the_covered_bytes() {
        let m = LinkMessage::Confirm {
            from: PublicKey([1; 32]),
            to: PublicKey([2; 32]),
            echo: 8,
            stamp: 3,
            port: 1,
            mac: [0; 16],
        };
        let b = seal(&m, |covered| {
            let mut x = [0u8; 16];
            x[0] = covered.len() as u8;
            x
        });
        let (d, covered) = LinkMessage::decode(&b).unwrap();
        let LinkMessage::Confirm { mac, .. } = d else { panic!() };
        assert_eq!(mac[0] as usize, covered);
    }
}
