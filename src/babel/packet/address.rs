//! Address encodings (RFC 8966 §4.1.4–4.1.5, RFC 9229 §2.4): how addresses
//! and prefixes are laid out inside TLVs, and prefix compression.
//!
//! | AE | meaning            | address bytes | prefix bytes                    | compression |
//! |----|--------------------|---------------|---------------------------------|-------------|
//! | 0  | wildcard           | 0             | 0 (Plen must be 0)              | —           |
//! | 1  | IPv4               | 4             | ⌈Plen/8⌉ − Omitted              | yes, own default prefix |
//! | 2  | IPv6               | 16            | ⌈Plen/8⌉ − Omitted              | yes, own default prefix |
//! | 3  | IPv6 link-local    | 8 (fe80::/64 implied) | ⌈Plen/8⌉ − 8 (Plen counts the implied 64 bits) | no (Omitted must be 0) |
//! | 4  | IPv4 via IPv6 (RFC 9229) | — (never an address) | as AE 1           | yes, a default prefix of its own, distinct from AE 1's |
//!
//! Compression only exists in Update TLVs: the first Omitted bytes of the
//! prefix are copied from the default prefix of the same AE, set by an
//! earlier Update of the same packet that carried flag 0x80.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ae;
use super::error::TlvErrorKind;
use crate::babel::types::{Prefix, RouterId};

/// The prefix `fe80::/64` that AE 3 leaves implicit.
const LINK_LOCAL_64: [u8; 8] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0];

/// Number of bytes an *address* (not a prefix) takes with `ae`, or `None`
/// if `ae` is not an address encoding this codec knows.
pub(super) fn address_len(ae: u8) -> Option<usize> {
    match ae {
        ae::WILDCARD => Some(0),
        ae::IPV4 => Some(4),
        ae::IPV6 => Some(16),
        ae::IPV6_LINK_LOCAL => Some(8),
        _ => None,
    }
}

/// True for an AE this codec understands (RFC 8966's four and RFC 9229's).
pub(super) fn known_ae(ae: u8) -> bool {
    ae <= ae::V4_VIA_V6
}

/// Reads an address with encoding `ae` (0–3) from the start of `buf`.
/// Returns the address (`None` for the wildcard) and the bytes consumed.
pub(super) fn read_address(ae: u8, buf: &[u8]) -> Result<(Option<IpAddr>, usize), TlvErrorKind> {
    let need = address_len(ae).ok_or(TlvErrorKind::UnknownAe(ae))?;
    let bytes =
        buf.get(..need).ok_or(TlvErrorKind::AddressTruncated { needed: need, available: buf.len() })?;
    let addr = match ae {
        ae::WILDCARD => None,
        ae::IPV4 => Some(IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))),
        ae::IPV6 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => {
            let mut a = [0u8; 16];
            a[..8].copy_from_slice(&LINK_LOCAL_64);
            a[8..].copy_from_slice(bytes);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
    };
    Ok((addr, need))
}

/// True if `a` lies in `fe80::/64`, so that AE 3 carries it without loss.
pub(super) fn is_ll64(a: &Ipv6Addr) -> bool {
    a.octets()[..8] == LINK_LOCAL_64
}

/// Appends `addr` in its most compact address encoding and returns that AE:
/// AE 1 for IPv4, AE 3 for an address in fe80::/64, AE 2 otherwise.
pub(super) fn write_address(addr: IpAddr, out: &mut Vec<u8>) -> u8 {
    match addr {
        IpAddr::V4(a) => {
            out.extend_from_slice(&a.octets());
            ae::IPV4
        }
        IpAddr::V6(a) if is_ll64(&a) => {
            out.extend_from_slice(&a.octets()[8..]);
            ae::IPV6_LINK_LOCAL
        }
        IpAddr::V6(a) => {
            out.extend_from_slice(&a.octets());
            ae::IPV6
        }
    }
}

/// Which per-AE default prefix (RFC 8966 §4.5) an AE uses, if it may be
/// compressed at all. AE 4 has its own slot (RFC 9229 §2.4): a default set
/// by an AE 1 Update never applies to an AE 4 Update, nor the reverse.
pub(super) fn default_slot(ae: u8) -> Option<usize> {
    match ae {
        ae::IPV4 => Some(0),
        ae::IPV6 => Some(1),
        ae::V4_VIA_V6 => Some(2),
        _ => None,
    }
}

/// Number of per-AE default prefix slots.
pub(super) const DEFAULT_SLOTS: usize = 3;

/// A prefix as raw bytes: the first `width` bytes of `bytes` (4 for IPv4
/// encodings, 16 for IPv6 ones) hold the address with every bit past `plen`
/// cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RawPrefix {
    pub bytes: [u8; 16],
    pub width: usize,
    pub plen: u8,
}

impl RawPrefix {
    pub fn from_prefix(p: &Prefix) -> RawPrefix {
        // Re-mask: the enum's fields are public, so host bits may be set.
        let (bytes, width, plen) = match *p {
            Prefix::V4(a, l) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (b, 4, l.min(32))
            }
            Prefix::V6(a, l) => (a.octets(), 16, l.min(128)),
        };
        let mut r = RawPrefix { bytes, width, plen };
        r.mask();
        r
    }

    fn mask(&mut self) {
        let full = self.plen as usize / 8;
        let rem = self.plen % 8;
        let mut i = full;
        if rem != 0 {
            self.bytes[i] &= 0xFFu8 << (8 - rem);
            i += 1;
        }
        for b in &mut self.bytes[i..] {
            *b = 0;
        }
    }

    /// Bytes the prefix occupies uncompressed: ⌈plen/8⌉.
    pub fn byte_len(&self) -> usize {
        (self.plen as usize).div_ceil(8)
    }

    pub fn to_prefix(self) -> Prefix {
        if self.width == 4 {
            let a = Ipv4Addr::new(self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]);
            Prefix::V4(a, self.plen)
        } else {
            Prefix::V6(Ipv6Addr::from(self.bytes), self.plen)
        }
    }

    /// The router-id an Update with flag 0x40 implies (RFC 8966 §4.6.9):
    /// the last 8 bytes of the address, or for an IPv4 address, 4 zero
    /// bytes followed by it.
    pub fn implied_router_id(&self) -> RouterId {
        let mut id = [0u8; 8];
        if self.width == 4 {
            id[4..].copy_from_slice(&self.bytes[..4]);
        } else {
            id.copy_from_slice(&self.bytes[8..16]);
        }
        RouterId(id)
    }
}

/// Reads the Prefix field of an Update or Request TLV.
///
/// `omitted` leading bytes come from `default` (the default prefix of this
/// AE, if one was set in this packet); the rest of ⌈plen/8⌉ bytes come from
/// `buf`. Returns the prefix and the number of bytes of `buf` consumed.
///
/// Like babeld, an Omitted value larger than ⌈plen/8⌉ (but within the
/// address width) is accepted: the extra default bytes are masked away.
pub(super) fn read_prefix(
    ae: u8,
    plen: u8,
    omitted: u8,
    default: Option<&RawPrefix>,
    buf: &[u8],
) -> Result<(RawPrefix, usize), TlvErrorKind> {
    let omitted = omitted as usize;
    let pb = (plen as usize).div_ceil(8);
    let mut r = RawPrefix { bytes: [0; 16], width: 16, plen };
    let taken = match ae {
        ae::WILDCARD => {
            if plen != 0 || omitted != 0 {
                return Err(TlvErrorKind::WildcardWithPrefix);
            }
            0
        }
        ae::IPV4 | ae::V4_VIA_V6 | ae::IPV6 => {
            let width = if ae == ae::IPV6 { 16 } else { 4 };
            r.width = width;
            if plen as usize > width * 8 {
                return Err(TlvErrorKind::PlenTooLong { ae, plen });
            }
            if omitted > width {
                return Err(TlvErrorKind::OmittedTooLong { ae, omitted: omitted as u8 });
            }
            if omitted > 0 {
                let d = default.ok_or(TlvErrorKind::NoDefaultPrefix { ae })?;
                r.bytes[..omitted].copy_from_slice(&d.bytes[..omitted]);
            }
            let n = pb.saturating_sub(omitted);
            let src =
                buf.get(..n).ok_or(TlvErrorKind::AddressTruncated { needed: n, available: buf.len() })?;
            r.bytes[omitted..omitted + n].copy_from_slice(src);
            n
        }
        ae::IPV6_LINK_LOCAL => {
            if omitted != 0 {
                return Err(TlvErrorKind::OmittedNotAllowed { ae });
            }
            if plen > 128 {
                return Err(TlvErrorKind::PlenTooLong { ae, plen });
            }
            // Plen counts the implied fe80::/64, so fewer than 8 bytes
            // would mean a prefix shorter than what AE 3 itself fixes.
            if pb < 8 {
                return Err(TlvErrorKind::PlenTooShort { ae, plen });
            }
            let n = pb - 8;
            let src =
                buf.get(..n).ok_or(TlvErrorKind::AddressTruncated { needed: n, available: buf.len() })?;
            r.bytes[..8].copy_from_slice(&LINK_LOCAL_64);
            r.bytes[8..8 + n].copy_from_slice(src);
            n
        }
        _ => return Err(TlvErrorKind::UnknownAe(ae)),
    };
    r.mask();
    Ok((r, taken))
}

/// Number of leading bytes of `p` that equal the default prefix `d` and may
/// therefore be omitted (never more than `p`'s own ⌈plen/8⌉).
pub(super) fn common_bytes(p: &RawPrefix, d: &RawPrefix) -> usize {
    p.bytes[..p.byte_len()].iter().zip(d.bytes.iter()).take_while(|(a, b)| a == b).count()
}
