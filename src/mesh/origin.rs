//! Origin-signed announcements: a node signs the set of prefixes it
//! originates at each (epoch, seqno) with an Ed25519 key derived from its
//! WireGuard private key, whose public half its credential carries (field
//! `signing-key`). Relays pass sets on unchanged (weft's TLV 224, never on
//! plain Babel interfaces); every node verifies a set once and then uses an
//! Update (prefix P, router-id R, seqno s) learned over a tunnel only if R's
//! verified set lists P (see [`super::filter`]). Updates keep their bytes:
//! babeld and BIRD see nothing new.
//!
//! The epoch orders sets across seqno wrap-around and restarts, and within
//! a run counts changes of what is announced at one seqno, so that one
//! (R, epoch, seqno) never names two different sets.
//!
//! Wire form of a set (the body of TLV 224 kind [`KIND_SET`] after the kind
//! byte; at most 254 bytes, so about nine IPv6 /128s or forty IPv4 /24s):
//!
//! ```text
//!  0  version = 2
//!  1  router-id (8)
//!  9  epoch (4, big-endian)
//! 13  seqno (2, big-endian)
//! 15  flags: 0x04 end-to-end capable (other bits: sent 0, signed, ignored)
//! 16  end-to-end UDP port (2, big-endian; 0 without 0x04)
//! 18  n, number of prefixes
//! 19  n × (AE 1|2, plen, ⌈plen/8⌉ address bytes), strictly ascending
//! end-64  Ed25519 signature over "weft announcement set v1\0" ‖ bytes[..end-64]
//! ```

use std::net::IpAddr;
use std::sync::Arc;

use ed25519_compact::{KeyPair, Seed};

use crate::babel::{Prefix, RouterId, SeqNo};
use crate::trust::{wire, NodePrivateKey};

pub const KIND_SET: u8 = 3;
pub const KIND_SET_REQUEST: u8 = 4;
/// A piece of a set too large for one TLV body (as credential chunks).
pub const KIND_SET_CHUNK: u8 = 5;
const VERSION: u8 = 2;
const HEADER: usize = 19;
/// Flag: the origin takes end-to-end WireGuard at its transport address.
const FLAG_E2E: u8 = 0x04;
const SIG: usize = 64;
/// A TLV body is at most 255 bytes, one of them the kind: a set up to this
/// long travels whole (kind 3), a longer one in chunks (kind 5).
pub const ONE_TLV: usize = 254;
/// Prefixes one set may hold: 64 IPv6 prefixes at most 18 bytes each, with
/// header and signature, 1 235 bytes (six chunks).
pub const MAX_PREFIXES: usize = 64;
pub const MAX_SET_LEN: usize = HEADER + MAX_PREFIXES * 18 + SIG;
/// Chunks of 240 bytes a set may take.
pub const MAX_SET_CHUNKS: usize = MAX_SET_LEN.div_ceil(240);
const CONTEXT: &[u8] = b"weft announcement set v1\0";

/// The node's signing key pair, derived from its WireGuard private key (one
/// secret per node).
pub fn signing_keypair(key: &NodePrivateKey) -> KeyPair {
    let mut h = ed25519_compact::sha512::Hash::new();
    h.update(b"weft origin-signing-key v1");
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&d[..32]);
    KeyPair::from_seed(Seed::new(seed))
}

/// The public half, as a credential carries it.
pub fn signing_public(key: &NodePrivateKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(signing_keypair(key).pk.as_ref());
    out
}

/// Is (epoch, seqno) `a` newer than `b`? Epoch first, then seqno modulo 2^16.
pub fn newer(a: (u32, SeqNo), b: (u32, SeqNo)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1.newer_than(b.1))
}

/// The TLVs that carry a set: itself when it fits one, else its chunks.
pub fn set_tlvs(router_id: RouterId, bytes: &[u8]) -> Vec<super::tlv::MeshTlv> {
    if bytes.len() <= ONE_TLV {
        return vec![super::tlv::MeshTlv::Set(bytes.to_vec())];
    }
    super::tlv::chunks(bytes)
        .into_iter()
        .map(|(index, count, data)| super::tlv::MeshTlv::SetChunk { router_id, index, count, data })
        .collect()
}

/// A decoded set whose signature has not been checked yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub router_id: RouterId,
    pub epoch: u32,
    pub seqno: SeqNo,
    pub prefixes: Vec<Prefix>,
    /// The origin's end-to-end WireGuard port, if it speaks end to end
    /// (signed: a relay cannot switch end to end off for an origin).
    pub e2e_port: Option<u16>,
    /// The exact bytes, signature included (what is passed on).
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetError {
    Malformed(&'static str),
    TooLarge(usize),
}

impl std::fmt::Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetError::Malformed(why) => write!(f, "malformed announcement set: {why}"),
            SetError::TooLarge(n) => {
                write!(
                    f,
                    "announcement set of {n} bytes: at most {MAX_PREFIXES} prefixes, {MAX_SET_LEN} bytes"
                )
            }
        }
    }
}

/// The canonical order: by family, address bytes, length.
fn sort_key(p: &Prefix) -> (u8, Vec<u8>, u8) {
    match p.addr() {
        IpAddr::V4(a) => (1, a.octets().to_vec(), p.len()),
        IpAddr::V6(a) => (2, a.octets().to_vec(), p.len()),
    }
}

impl Set {
    /// Signs what `router_id` originates at (epoch, seqno), without end to end.
    pub fn sign(
        keys: &KeyPair,
        router_id: RouterId,
        epoch: u32,
        seqno: SeqNo,
        prefixes: &[Prefix],
    ) -> Result<Set, SetError> {
        Set::sign_e2e(keys, router_id, epoch, seqno, prefixes, None)
    }

    /// Signs what `router_id` originates at (epoch, seqno), and the port it
    /// takes end-to-end WireGuard on, if any.
    pub fn sign_e2e(
        keys: &KeyPair,
        router_id: RouterId,
        epoch: u32,
        seqno: SeqNo,
        prefixes: &[Prefix],
        e2e_port: Option<u16>,
    ) -> Result<Set, SetError> {
        let mut sorted = prefixes.to_vec();
        sorted.sort_by_key(sort_key);
        sorted.dedup();
        let mut b = vec![VERSION];
        b.extend_from_slice(&router_id.0);
        b.extend_from_slice(&epoch.to_be_bytes());
        b.extend_from_slice(&seqno.0.to_be_bytes());
        b.push(if e2e_port.is_some() { FLAG_E2E } else { 0 });
        b.extend_from_slice(&e2e_port.unwrap_or(0).to_be_bytes());
        b.push(sorted.len().min(255) as u8);
        for p in &sorted {
            // The credential's prefix encoding (CREDENTIALS.md, field 0x05).
            b.extend_from_slice(&wire::encode_prefix(p));
        }
        if b.len() + SIG > MAX_SET_LEN || sorted.len() > MAX_PREFIXES {
            return Err(SetError::TooLarge(b.len() + SIG));
        }
        let sig = keys.sk.sign([CONTEXT, &b[..]].concat(), None);
        b.extend_from_slice(sig.as_ref());
        Ok(Set { router_id, epoch, seqno, prefixes: sorted, e2e_port, bytes: b })
    }

    /// Parses the structure (not the signature): canonical order, lengths,
    /// host bits clear, so that one set has exactly one encoding.
    pub fn decode(b: &[u8]) -> Result<Set, SetError> {
        if b.len() > MAX_SET_LEN {
            return Err(SetError::TooLarge(b.len()));
        }
        if b.len() < HEADER + SIG {
            return Err(SetError::Malformed("too short"));
        }
        if b[0] != VERSION {
            return Err(SetError::Malformed("unknown version"));
        }
        let router_id = RouterId(b[1..9].try_into().expect("length checked"));
        let epoch = u32::from_be_bytes(b[9..13].try_into().expect("length checked"));
        let seqno = SeqNo(u16::from_be_bytes([b[13], b[14]]));
        let port = u16::from_be_bytes([b[16], b[17]]);
        let e2e_port = match (b[15] & FLAG_E2E != 0, port) {
            (true, 0) => return Err(SetError::Malformed("end-to-end flag without a port")),
            (true, p) => Some(p),
            (false, 0) => None,
            (false, _) => return Err(SetError::Malformed("a port without the end-to-end flag")),
        };
        let n = b[18] as usize;
        let body = &b[HEADER..b.len() - SIG];
        let mut at = 0;
        let mut prefixes: Vec<Prefix> = Vec::with_capacity(n);
        for _ in 0..n {
            // AE and length, then ⌈length/8⌉ address bytes: as in credentials.
            let plen = *body.get(at + 1).ok_or(SetError::Malformed("truncated prefix"))?;
            let end = at + 2 + (plen as usize).div_ceil(8);
            let field = body.get(at..end).ok_or(SetError::Malformed("truncated prefix"))?;
            let p = wire::decode_prefix(field).map_err(|_| SetError::Malformed("bad prefix"))?;
            at = end;
            if prefixes.last().is_some_and(|q| sort_key(q) >= sort_key(&p)) {
                return Err(SetError::Malformed("prefixes not in canonical order"));
            }
            prefixes.push(p);
        }
        if at != body.len() {
            return Err(SetError::Malformed("trailing bytes"));
        }
        Ok(Set { router_id, epoch, seqno, prefixes, e2e_port, bytes: b.to_vec() })
    }

    /// Checks the signature against the origin's signing key.
    pub fn verify(&self, signing_key: &[u8; 32]) -> bool {
        let (signed, sig) = self.bytes.split_at(self.bytes.len() - SIG);
        let Ok(sig) = <&[u8; 64]>::try_from(sig) else { return false };
        crate::trust::keys::ed25519_verify(signing_key, &[CONTEXT, signed].concat(), sig)
    }

    pub fn version(&self) -> (u32, SeqNo) {
        (self.epoch, self.seqno)
    }
}

/// A verified set as the route filter reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginRecord {
    pub router_id: RouterId,
    pub epoch: u32,
    pub seqno: SeqNo,
    /// Shared: the filter's snapshot of all records is copied at each new
    /// set, and copying N prefix lists each time would cost N² per node.
    pub prefixes: Arc<[Prefix]>,
    pub e2e_port: Option<u16>,
}

/// Finds an origin's entry in a slice sorted by router-id. (Sorted vectors,
/// not a `BTreeMap` per key and value type: each map type costs kilobytes
/// of flash on a router.)
pub fn find<T>(sorted: &[T], rid: &RouterId, key: impl Fn(&T) -> RouterId) -> Result<usize, usize> {
    sorted.binary_search_by(|x| key(x).cmp(rid))
}

/// The newest verified set of each origin, sorted by router-id, and the
/// filter's view of them in the same order.
#[derive(Clone, Debug, Default)]
pub struct Sets {
    sets: Vec<Set>,
    records: Arc<Vec<OriginRecord>>,
}

impl Sets {
    pub fn get(&self, rid: &RouterId) -> Option<&Set> {
        find(&self.sets, rid, |s| s.router_id).ok().map(|i| &self.sets[i])
    }

    pub fn insert(&mut self, set: Set) {
        let record = OriginRecord {
            router_id: set.router_id,
            epoch: set.epoch,
            seqno: set.seqno,
            prefixes: set.prefixes.as_slice().into(),
            e2e_port: set.e2e_port,
        };
        let records = Arc::make_mut(&mut self.records);
        match find(&self.sets, &set.router_id, |s| s.router_id) {
            Ok(i) => {
                self.sets[i] = set;
                records[i] = record;
            }
            Err(i) => {
                self.sets.insert(i, set);
                records.insert(i, record);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The filter's view, in the same order.
    pub fn records(&self) -> Arc<Vec<OriginRecord>> {
        self.records.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> NodePrivateKey {
        NodePrivateKey::from_random([n; 32])
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn a_set_round_trips_verifies_and_has_one_encoding() {
        let k = signing_keypair(&key(1));
        let pk = signing_public(&key(1));
        let rid = RouterId([1, 2, 3, 4, 5, 6, 7, 8]);
        let prefixes = [p("fd42:77:1::5/128"), p("10.0.5.0/24"), p("10.0.5.0/24"), p("2001:db8::/32")];
        let s = Set::sign(&k, rid, 7, SeqNo(300), &prefixes).unwrap();
        assert_eq!(s.prefixes, vec![p("10.0.5.0/24"), p("2001:db8::/32"), p("fd42:77:1::5/128")]);
        // 19 header + (2+3) + (2+4) + (2+16) + 64 signature.
        assert_eq!(s.bytes.len(), 19 + 5 + 6 + 18 + 64);
        let d = Set::decode(&s.bytes).unwrap();
        assert_eq!(d, s);
        assert!(d.verify(&pk));
        // Another node's key, or one flipped bit anywhere: refused.
        assert!(!d.verify(&signing_public(&key(2))));
        for i in 0..s.bytes.len() {
            let mut b = s.bytes.clone();
            b[i] ^= 0x01;
            if let Ok(x) = Set::decode(&b) {
                assert!(!x.verify(&pk), "bit flip at {i} still verifies");
            }
        }
        // The same key signs the same set the same way (deterministic).
        assert_eq!(Set::sign(&k, rid, 7, SeqNo(300), &prefixes).unwrap().bytes, s.bytes);
    }

    #[test]
    fn malformed_sets_are_refused_with_a_reason() {
        let k = signing_keypair(&key(1));
        let rid = RouterId([9; 8]);
        let s = Set::sign(&k, rid, 1, SeqNo(1), &[p("10.0.1.0/24"), p("10.0.2.0/24")]).unwrap();
        let mut unsorted = s.bytes.clone();
        // Swap the two prefixes' address bytes: out of order.
        unsorted[HEADER + 4] = 2;
        unsorted[HEADER + 9] = 1;
        assert_eq!(Set::decode(&unsorted), Err(SetError::Malformed("prefixes not in canonical order")));
        assert!(Set::decode(&s.bytes[..40]).is_err());
        assert!(Set::decode(&s.bytes[..HEADER + SIG - 1]).is_err());
        let mut v = s.bytes.clone();
        v[0] = 1;
        assert_eq!(Set::decode(&v), Err(SetError::Malformed("unknown version")));
        let mut count = s.bytes.clone();
        count[18] = 3;
        assert!(Set::decode(&count).is_err());
        let mut flag = s.bytes.clone();
        flag[15] = 0x04;
        assert_eq!(Set::decode(&flag), Err(SetError::Malformed("end-to-end flag without a port")));
        let mut port = s.bytes.clone();
        port[17] = 1;
        assert_eq!(Set::decode(&port), Err(SetError::Malformed("a port without the end-to-end flag")));
        // More than 64 prefixes: a clear error when signing; 64 /128s fit.
        let many: Vec<Prefix> = (0..65).map(|i| p(&format!("fd00::{i:x}/128"))).collect();
        assert!(matches!(Set::sign(&k, rid, 1, SeqNo(1), &many), Err(SetError::TooLarge(_))));
        let set = Set::sign(&k, rid, 1, SeqNo(1), &many[..64]).unwrap();
        assert!(set.bytes.len() <= MAX_SET_LEN && set.bytes.len() > ONE_TLV);
        assert_eq!(Set::decode(&set.bytes).unwrap().prefixes.len(), 64);
    }

    #[test]
    fn the_end_to_end_port_is_signed() {
        let k = signing_keypair(&key(1));
        let pk = signing_public(&key(1));
        let rid = RouterId([9; 8]);
        let s = Set::sign_e2e(&k, rid, 1, SeqNo(1), &[p("10.0.1.0/24")], Some(6699)).unwrap();
        assert_eq!(&s.bytes[15..18], &[0x04, 0x1a, 0x2b]);
        let d = Set::decode(&s.bytes).unwrap();
        assert_eq!(d.e2e_port, Some(6699));
        assert!(d.verify(&pk));
        // A relay that clears the flag (switching end to end off) breaks the signature.
        let mut b = s.bytes.clone();
        b[15..18].copy_from_slice(&[0, 0, 0]);
        let off = Set::decode(&b).unwrap();
        assert_eq!(off.e2e_port, None);
        assert!(!off.verify(&pk));
    }

    #[test]
    fn versions_order_by_epoch_then_seqno_modulo() {
        assert!(newer((2, SeqNo(0)), (1, SeqNo(60000))));
        assert!(newer((1, SeqNo(5)), (1, SeqNo(65530))));
        assert!(!newer((1, SeqNo(5)), (1, SeqNo(5))));
        assert!(!newer((0, SeqNo(9)), (1, SeqNo(1))));
    }

    #[test]
    fn the_signing_key_is_derived_from_the_wireguard_key() {
        assert_eq!(signing_public(&key(3)), signing_public(&key(3)));
        assert_ne!(signing_public(&key(3)), signing_public(&key(4)));
        assert_ne!(&signing_public(&key(3)), key(3).public_key().as_bytes());
    }
}
