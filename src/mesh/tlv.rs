//! weft's own Babel TLV (type 224, which babeld and BIRD skip): the
//! credentials of distant nodes travel in it, hop by hop.
//!
//! A body starts with a kind byte. Credential request: the router-id whose
//! credential is wanted. Credential chunk: router-id, index, count, and up
//! to 240 bytes of the credential (Babel TLV bodies are at most 255 bytes).
//! Announcement sets too large for one body travel the same way (kind 5,
//! see [`super::origin`]).

use crate::babel::{IfIndex, RouterId};

/// Kinds of weft TLV bodies (first byte).
pub const KIND_CREDENTIAL_REQUEST: u8 = 1;
pub const KIND_CREDENTIAL_CHUNK: u8 = 2;
/// Babel TLV bodies are at most 255 bytes: 8 (router-id) + 3 of header.
const CHUNK_DATA: usize = 240;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshTlv {
    /// "Send me the credential of this origin."
    CredentialRequest { router_id: RouterId },
    /// Part `index` of `count` of the credential of `router_id`.
    CredentialChunk { router_id: RouterId, index: u8, count: u8, data: Vec<u8> },
    /// An origin's signed announcement set (see [`super::origin`]).
    Set(Vec<u8>),
    /// "Send me the set of this origin you hold."
    SetRequest { router_id: RouterId },
    /// Part `index` of `count` of a set too large for one TLV.
    SetChunk { router_id: RouterId, index: u8, count: u8, data: Vec<u8> },
}

impl MeshTlv {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            MeshTlv::CredentialRequest { router_id } => {
                let mut b = vec![KIND_CREDENTIAL_REQUEST];
                b.extend_from_slice(&router_id.0);
                b
            }
            MeshTlv::CredentialChunk { router_id, index, count, data }
            | MeshTlv::SetChunk { router_id, index, count, data } => {
                let kind = match self {
                    MeshTlv::SetChunk { .. } => super::origin::KIND_SET_CHUNK,
                    _ => KIND_CREDENTIAL_CHUNK,
                };
                let mut b = vec![kind];
                b.extend_from_slice(&router_id.0);
                b.push(*index);
                b.push(*count);
                b.extend_from_slice(data);
                b
            }
            MeshTlv::Set(bytes) => {
                let mut b = vec![super::origin::KIND_SET];
                b.extend_from_slice(bytes);
                b
            }
            MeshTlv::SetRequest { router_id } => {
                let mut b = vec![super::origin::KIND_SET_REQUEST];
                b.extend_from_slice(&router_id.0);
                b
            }
        }
    }

    /// `None` for anything that is not a well-formed weft TLV of a kind we
    /// know (future kinds are ignored, not errors).
    pub fn decode(b: &[u8]) -> Option<MeshTlv> {
        let rid = |b: &[u8]| -> Option<RouterId> { Some(RouterId(b.get(1..9)?.try_into().ok()?)) };
        match *b.first()? {
            KIND_CREDENTIAL_REQUEST if b.len() == 9 => {
                Some(MeshTlv::CredentialRequest { router_id: rid(b)? })
            }
            kind @ (KIND_CREDENTIAL_CHUNK | super::origin::KIND_SET_CHUNK) if b.len() > 11 => {
                let (index, count) = (b[9], b[10]);
                let (router_id, data) = (rid(b)?, b[11..].to_vec());
                let tlv = match kind {
                    KIND_CREDENTIAL_CHUNK => MeshTlv::CredentialChunk { router_id, index, count, data },
                    _ => MeshTlv::SetChunk { router_id, index, count, data },
                };
                (count > 0 && index < count).then_some(tlv)
            }
            super::origin::KIND_SET if b.len() > 1 => Some(MeshTlv::Set(b[1..].to_vec())),
            super::origin::KIND_SET_REQUEST if b.len() == 9 => {
                Some(MeshTlv::SetRequest { router_id: rid(b)? })
            }
            _ => None,
        }
    }
}

/// `bytes` cut for chunk TLVs: (index, count, data).
pub fn chunks(bytes: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    let parts: Vec<&[u8]> = bytes.chunks(CHUNK_DATA).collect();
    let count = parts.len().min(255) as u8;
    parts.iter().take(255).enumerate().map(|(i, d)| (i as u8, count, d.to_vec())).collect()
}

/// The TLVs that carry one credential.
pub fn credential_chunks(router_id: RouterId, cred: &[u8]) -> Vec<MeshTlv> {
    chunks(cred)
        .into_iter()
        .map(|(index, count, data)| MeshTlv::CredentialChunk { router_id, index, count, data })
        .collect()
}

/// Chunks received so far of one credential: the announced count, and
/// each part once it arrives.
type Parts = (u8, Vec<Option<Vec<u8>>>);

/// Reassembles credentials and sets from chunks, per sender; bounded. (A
/// Vec: at most 64 partial objects, and every map type costs flash.)
#[derive(Default)]
pub struct Reassembly {
    partial: Vec<((IfIndex, RouterId), Parts)>,
}

const MAX_PARTIAL: usize = 64;

impl Reassembly {
    /// Adds a chunk; returns the whole object once complete.
    pub fn add(
        &mut self,
        ifindex: IfIndex,
        router_id: RouterId,
        index: u8,
        count: u8,
        data: Vec<u8>,
    ) -> Option<Vec<u8>> {
        if count == 1 {
            return Some(data);
        }
        let key = (ifindex, router_id);
        let i = match self.partial.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                if self.partial.len() >= MAX_PARTIAL {
                    self.partial.clear();
                }
                self.partial.push((key, (count, vec![None; count as usize])));
                self.partial.len() - 1
            }
        };
        let e = &mut self.partial[i].1;
        if e.0 != count {
            *e = (count, vec![None; count as usize]);
        }
        e.1[index as usize] = Some(data);
        if e.1.iter().all(Option::is_some) {
            let (_, (_, parts)) = self.partial.swap_remove(i);
            return Some(parts.into_iter().flatten().flatten().collect());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlvs_round_trip_and_chunks_reassemble() {
        let rid = RouterId([2, 3, 4, 5, 6, 7, 8, 9]);
        let cred: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let chunks = credential_chunks(rid, &cred);
        assert_eq!(chunks.len(), 3);
        let mut r = Reassembly::default();
        let mut done = None;
        for c in chunks.iter().rev() {
            let enc = c.encode();
            assert!(enc.len() <= 255);
            let MeshTlv::CredentialChunk { router_id, index, count, data } = MeshTlv::decode(&enc).unwrap()
            else {
                panic!()
            };
            done = r.add(7, router_id, index, count, data);
        }
        assert_eq!(done.unwrap(), cred);
        let req = MeshTlv::CredentialRequest { router_id: rid };
        assert_eq!(MeshTlv::decode(&req.encode()), Some(req));
        assert_eq!(MeshTlv::decode(&[9, 1, 2]), None);
        assert_eq!(MeshTlv::decode(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 5, 3, 1]), None, "index beyond count");
        assert_eq!(MeshTlv::decode(&[]), None);
    }
}
