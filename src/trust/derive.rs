//! What follows from a node's public key alone: its Babel router-id, its
//! own mesh address and its transport address.
//!
//! Both are hashes of the WireGuard public key under a domain-separation
//! string, so the same key gives the same values on every node and neither
//! value can be chosen without choosing the key:
//!
//! ```text
//! H(domain, counter, key) = SHA-512(domain ‖ 0x00 ‖ counter ‖ key)
//!
//! router-id    = H("weft router-id v1", c, key)[0..8]
//!                with c = 0, 1, … the first counter whose 8 bytes are a
//!                valid router-id (not all-zeros, not all-ones; RFC 8966 §3.1)
//! mesh address = P | (H("weft mesh-address v1", c, key)[0..16] & host-mask(P))
//!                for a mesh prefix P of length ≤ 64, with c = 0, 1, … the
//!                first counter whose host bits are not all zero (that would
//!                be the subnet-router anycast address, RFC 4291 §2.6.1)
//! transport    = TP | H("weft transport-address v1", c, key)[0..8]
//!                where TP, the transport prefix, is the last /64 of P
//!                (P with bits len(P)..63 set; P must be /63 or shorter),
//!                with c the first counter whose host bits are not all zero;
//!                the mesh address also skips any counter that would put it
//!                inside TP (which changes it for 2^-(64-len(P)) of keys)
//! ```
//!
//! The transport address is what end-to-end WireGuard packets travel
//! between (Babel routes it hop by hop); the mesh address and granted
//! prefixes travel inside them. Keeping the two apart is what keeps the
//! end-to-end interface from carrying its own outer packets.
//!
//! In practice `c` is always 0 (the retry happens with probability 2^-63 or
//! less). The mesh prefix is at most /64 so that at least 64 address bits come
//! from the hash: the key-derived /128 is authorised without any credential,
//! and finding a key whose address equals another node's then takes about
//! 2^(128 − prefix length) X25519 operations.
//!
//! SHA-512 is used because the Ed25519 crate already contains it.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use ed25519_compact::sha512;

use crate::babel::{Prefix, RouterId};
use crate::key::PublicKey;

pub const ROUTER_ID_DOMAIN: &str = "weft router-id v1";
pub const MESH_ADDRESS_DOMAIN: &str = "weft mesh-address v1";
pub const TRANSPORT_ADDRESS_DOMAIN: &str = "weft transport-address v1";

/// Longest mesh prefix: at least 64 bits of each address come from the key.
pub const MAX_MESH_PREFIX_LEN: u8 = 64;

/// SHA-512 over `domain ‖ 0x00 ‖ parts…`. The zero byte ends the domain so
/// that no domain string is a prefix of another's input.
pub(crate) fn sha512_domain(domain: &str, parts: &[&[u8]]) -> [u8; 64] {
    let mut h = sha512::Hash::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// The Babel router-id of the node with this public key.
pub fn router_id(key: &PublicKey) -> RouterId {
    for counter in 0..=u8::MAX {
        let h = sha512_domain(ROUTER_ID_DOMAIN, &[&[counter], key.as_bytes()]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        let id = RouterId(id);
        if id.is_valid() {
            return id;
        }
    }
    // 256 invalid hashes in a row cannot happen (2^-16000); keep a valid
    // answer anyway rather than a panic path.
    RouterId([0, 0, 0, 0, 0, 0, 0, 1])
}

fn mesh_hash(key: &PublicKey, counter: u8) -> u128 {
    domain_hash(MESH_ADDRESS_DOMAIN, key, counter)
}

fn domain_hash(domain: &str, key: &PublicKey, counter: u8) -> u128 {
    let h = sha512_domain(domain, &[&[counter], key.as_bytes()]);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    u128::from_be_bytes(b)
}

/// The low 64 bits of the key's mesh address under any mesh prefix: what a
/// key determines without knowing the prefix (for display).
pub fn mesh_interface_id(key: &PublicKey) -> u64 {
    mesh_hash(key, 0) as u64
}

/// Why a mesh prefix was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshPrefixError {
    NotIpv6(Prefix),
    TooLong(Prefix),
    Parse(String),
}

impl fmt::Display for MeshPrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeshPrefixError::NotIpv6(p) => write!(f, "mesh prefix {p} is not IPv6"),
            MeshPrefixError::TooLong(p) => write!(
                f,
                "mesh prefix {p} is longer than /{MAX_MESH_PREFIX_LEN} \
                 (addresses need at least 64 key-derived bits)"
            ),
            MeshPrefixError::Parse(e) => write!(f, "mesh prefix: {e}"),
        }
    }
}

impl std::error::Error for MeshPrefixError {}

/// The IPv6 prefix (typically a ULA /48, e.g. fd00:1234:5678::/48) inside
/// which every node owns one key-derived /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MeshPrefix(Prefix);

impl MeshPrefix {
    pub fn new(prefix: Prefix) -> Result<MeshPrefix, MeshPrefixError> {
        match prefix {
            Prefix::V4(..) => Err(MeshPrefixError::NotIpv6(prefix)),
            Prefix::V6(_, len) if len > MAX_MESH_PREFIX_LEN => Err(MeshPrefixError::TooLong(prefix)),
            Prefix::V6(..) => Ok(MeshPrefix(prefix)),
        }
    }

    pub fn prefix(&self) -> Prefix {
        self.0
    }

    /// The key's own address inside this prefix.
    pub fn address_for(&self, key: &PublicKey) -> Ipv6Addr {
        let (net, len) = match self.0 {
            Prefix::V6(a, l) => (u128::from(a), l),
            Prefix::V4(..) => unreachable!("MeshPrefix::new admits only IPv6"),
        };
        let host_mask = if len == 0 { u128::MAX } else { u128::MAX >> len };
        let tp = self.transport_prefix();
        for counter in 0..=u8::MAX {
            let host = mesh_hash(key, counter) & host_mask;
            let addr = Ipv6Addr::from(net | host);
            if host != 0 && !tp.is_some_and(|tp| tp.contains_addr(addr.into())) {
                return addr;
            }
        }
        Ipv6Addr::from(net | 1)
    }

    /// The transport prefix: the last /64 of the mesh prefix, where
    /// transport addresses live. `None` for a /64 mesh prefix (no room).
    pub fn transport_prefix(&self) -> Option<Prefix> {
        let (net, len) = match self.0 {
            Prefix::V6(a, l) => (u128::from(a), l),
            Prefix::V4(..) => return None,
        };
        if len >= 64 {
            return None;
        }
        // Bits len..63 set: the highest /64 inside the prefix.
        let subnet = (u128::MAX >> len) & !(u128::MAX >> 64);
        Prefix::new(Ipv6Addr::from(net | subnet).into(), 64)
    }

    /// The key's transport address, if the mesh prefix leaves room for one.
    pub fn transport_address_for(&self, key: &PublicKey) -> Option<Ipv6Addr> {
        let net = match self.transport_prefix()? {
            Prefix::V6(a, _) => u128::from(a),
            Prefix::V4(..) => return None,
        };
        let host_mask = u128::MAX >> 64;
        for counter in 0..=u8::MAX {
            let host = (domain_hash(TRANSPORT_ADDRESS_DOMAIN, key, counter) >> 64) & host_mask;
            if host != 0 {
                return Some(Ipv6Addr::from(net | host));
            }
        }
        Some(Ipv6Addr::from(net | 1))
    }

    /// The key's own address as a /128 prefix.
    pub fn host_prefix_for(&self, key: &PublicKey) -> Prefix {
        match Prefix::new(self.address_for(key).into(), 128) {
            Some(p) => p,
            None => unreachable!("/128 is a valid IPv6 prefix length"),
        }
    }
}

impl fmt::Display for MeshPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for MeshPrefix {
    type Err = MeshPrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MeshPrefix::new(s.parse::<Prefix>().map_err(MeshPrefixError::Parse)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::keys::NodePrivateKey;

    fn test_key() -> PublicKey {
        // RFC 7748 §6.1 Alice's public key: a fixed, well-known input.
        "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=".parse().unwrap()
    }

    #[test]
    fn test_vector_router_id_and_mesh_address() {
        let key = test_key();
        // Checked independently with Python hashlib. Changing the derivation breaks every deployed mesh
        // (router-ids and addresses would change), so it must be deliberate.
        assert_eq!(router_id(&key).to_string(), "48:51:81:f2:5c:e5:87:ab");
        let p: MeshPrefix = "fd00:1234:5678::/48".parse().unwrap();
        assert_eq!(p.address_for(&key).to_string(), "fd00:1234:5678:4593:205d:38b1:835e:c8d4");
        assert_eq!(mesh_interface_id(&key), 0x205d_38b1_835e_c8d4);
    }

    #[test]
    fn derivations_are_stable_and_distinct() {
        let a = NodePrivateKey::from_random([1; 32]).public_key();
        let b = NodePrivateKey::from_random([2; 32]).public_key();
        assert_eq!(router_id(&a), router_id(&a));
        assert_ne!(router_id(&a), router_id(&b));
        assert!(router_id(&a).is_valid());
        let p: MeshPrefix = "fd00:1234:5678::/48".parse().unwrap();
        assert_ne!(p.address_for(&a), p.address_for(&b));
    }

    #[test]
    fn mesh_address_lies_in_prefix_and_keeps_low_bits() {
        let key = test_key();
        for text in ["fd00:1234:5678::/48", "fd00:1::/64", "fc00::/7", "::/0"] {
            let p: MeshPrefix = text.parse().unwrap();
            let addr = p.address_for(&key);
            assert!(p.prefix().contains_addr(addr.into()), "{addr} in {p}");
            assert_eq!(u128::from(addr) as u64, mesh_interface_id(&key));
            assert_eq!(p.host_prefix_for(&key).len(), 128);
        }
    }

    #[test]
    fn transport_address_test_vector_and_room() {
        let key = test_key();
        let p: MeshPrefix = "fd00:1234:5678::/48".parse().unwrap();
        assert_eq!(p.transport_prefix().unwrap().to_string(), "fd00:1234:5678:ffff::/64");
        // Checked independently with Python hashlib, like the others.
        let t = p.transport_address_for(&key).unwrap();
        assert_eq!(t.to_string(), "fd00:1234:5678:ffff:efc:6e52:7b22:d0a6");
        assert!(p.transport_prefix().unwrap().contains_addr(t.into()));
        // Alice's mesh address is outside TP, so it did not move.
        assert_eq!(p.address_for(&key).to_string(), "fd00:1234:5678:4593:205d:38b1:835e:c8d4");
        let p64: MeshPrefix = "fd00:1::/64".parse().unwrap();
        assert_eq!(p64.transport_prefix(), None);
        assert_eq!(p64.transport_address_for(&key), None);
        let p63: MeshPrefix = "fd00:1::/63".parse().unwrap();
        assert_eq!(p63.transport_prefix().unwrap().to_string(), "fd00:1:0:1::/64");
    }

    #[test]
    fn mesh_addresses_never_fall_in_the_transport_prefix() {
        // With a /63 half of all first hashes land in TP: the counter moves on.
        let p: MeshPrefix = "fd00:1::/63".parse().unwrap();
        let tp = p.transport_prefix().unwrap();
        for i in 0..64u8 {
            let key = NodePrivateKey::from_random([i; 32]).public_key();
            let m = p.address_for(&key);
            assert!(p.prefix().contains_addr(m.into()) && !tp.contains_addr(m.into()), "{m}");
            assert_ne!(Some(m), p.transport_address_for(&key));
        }
    }

    #[test]
    fn mesh_prefix_limits() {
        assert!(matches!("fd00::/65".parse::<MeshPrefix>(), Err(MeshPrefixError::TooLong(_))));
        assert!(matches!("10.0.0.0/8".parse::<MeshPrefix>(), Err(MeshPrefixError::NotIpv6(_))));
        assert!(matches!("fd00::1/48".parse::<MeshPrefix>(), Err(MeshPrefixError::Parse(_))));
    }
}
