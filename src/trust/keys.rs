//! Node keys (WireGuard X25519) and network CA keys (Ed25519).
//!
//! Randomness never enters here from a global source: key generation takes
//! the random bytes as an argument, and the CLI draws them from the OS.

use std::fmt;
use std::str::FromStr;

use ed25519_compact as ed;

use super::derive::sha512_domain;
use crate::base64::{self, Base64DecodeLenError};
pub use crate::key::PublicKey;

/// Length of every key in this module, in bytes.
pub const KEY_LEN: usize = crate::key::KEY_LEN;

/// Why a key text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Not base64 of exactly 32 bytes.
    Encoding(Base64DecodeLenError),
    /// The bytes are not a usable key of this kind (for example an Ed25519
    /// public key that is not a curve point, or X25519 giving a weak point).
    Invalid(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Encoding(e) => write!(f, "key is not base64 of 32 bytes: {e}"),
            KeyError::Invalid(why) => write!(f, "invalid key: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

fn parse_key_text(s: &str) -> Result<[u8; KEY_LEN], KeyError> {
    base64::decode_array::<KEY_LEN>(s.trim()).map_err(KeyError::Encoding)
}

/// A node's WireGuard private key. It never leaves the node: it has no
/// `Display`, its `Debug` is redacted, and its memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct NodePrivateKey([u8; KEY_LEN]);

impl NodePrivateKey {
    /// A private key from 32 random bytes, clamped as `wg genkey` clamps
    /// (RFC 7748 §5), so that the stored text matches WireGuard's own.
    pub fn from_random(mut bytes: [u8; KEY_LEN]) -> NodePrivateKey {
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        NodePrivateKey(bytes)
    }

    /// Takes the bytes as they are: WireGuard accepts unclamped private
    /// keys and clamps when it uses them, and so does [`Self::public_key`].
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> NodePrivateKey {
        NodePrivateKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The base64 text, as in a WireGuard private key file.
    pub fn to_base64(&self) -> String {
        base64::encode(&self.0)
    }

    /// X25519 scalar multiplication of the base point, as `wg pubkey` does.
    pub fn public_key(&self) -> PublicKey {
        let sk = ed::x25519::SecretKey::new(self.0);
        match sk.recover_public_key() {
            Ok(pk) => PublicKey(*pk),
            // The base point has prime order and a clamped scalar is never
            // zero modulo it, so the ladder cannot produce the identity.
            Err(_) => unreachable!("X25519 of the base point with a clamped scalar"),
        }
    }
}

impl NodePrivateKey {
    /// The X25519 shared secret with `peer` (the same on both sides), or
    /// `None` for a low-order peer key, which would give an all-zero secret
    /// that anyone can compute.
    pub fn shared_secret(&self, peer: &PublicKey) -> Option<[u8; KEY_LEN]> {
        let sk = ed::x25519::SecretKey::new(self.0);
        let pk = ed::x25519::PublicKey::new(peer.0);
        pk.dh(&sk).ok().map(|o| *o)
    }
}

impl FromStr for NodePrivateKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_key_text(s).map(NodePrivateKey)
    }
}

impl fmt::Debug for NodePrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodePrivateKey(<redacted>)")
    }
}

impl Drop for NodePrivateKey {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    // Keeps the compiler from removing the fill as a dead store.
    std::hint::black_box(bytes);
}

/// The short name of a CA key carried in credentials and revocation lists,
/// so that a verifier with several CAs (rotation) knows which key to try.
/// Derived from the CA public key (see `derive`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaKeyId(pub [u8; 8]);

impl fmt::Display for CaKeyId {
    /// Sixteen lower-case hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CaKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaKeyId({self})")
    }
}

impl serde::Serialize for CaKeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Domain string of the CA key id hash.
const CA_KEY_ID_DOMAIN: &str = "weft ca-key-id v1";

/// A network CA's Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaPublicKey([u8; KEY_LEN]);

impl CaPublicKey {
    /// Refuses bytes that are not the encoding of a usable curve point.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Result<CaPublicKey, KeyError> {
        let pk = ed::PublicKey::new(bytes);
        pk.validate().map_err(|_| KeyError::Invalid("not an Ed25519 public key"))?;
        Ok(CaPublicKey(bytes))
    }

    /// The CA key given as a plain key (configuration), once checked.
    pub fn from_key(key: PublicKey) -> Result<CaPublicKey, KeyError> {
        CaPublicKey::from_bytes(key.0)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// First 8 bytes of SHA-512("weft ca-key-id v1" ‖ 0x00 ‖ public key).
    pub fn key_id(&self) -> CaKeyId {
        let h = sha512_domain(CA_KEY_ID_DOMAIN, &[&self.0]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        CaKeyId(id)
    }

    /// Ed25519 verification of `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        ed25519_verify(&self.0, message, signature)
    }
}

/// Ed25519 verification: every signature weft checks (credentials,
/// revocation lists, announcement sets) goes through here.
pub fn ed25519_verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    #[cfg(feature = "simulator")]
    if let Some(v) = shared_verdicts::lookup(public, message, signature) {
        return v;
    }
    let ok = ed::PublicKey::new(*public).verify(message, &ed::Signature::new(*signature)).is_ok();
    #[cfg(feature = "simulator")]
    shared_verdicts::record(public, message, signature, ok);
    ok
}

/// The simulator runs every node in one process: the same bytes get the
/// same verdict at each of them, so one check serves all (a 1000-node run
/// would otherwise make about 2·10^6 checks). Each node still counts its
/// own checks and budgets them as a router would. Per thread, off unless a
/// simulation turns it on; never in router builds.
#[cfg(feature = "simulator")]
pub mod shared_verdicts {
    use std::cell::RefCell;
    use std::collections::HashMap;

    thread_local! {
        static VERDICTS: RefCell<Option<HashMap<Vec<u8>, bool>>> = const { RefCell::new(None) };
    }
    /// Beyond this many verdicts the memo starts again (memory stays bounded).
    const MAX: usize = 1 << 18;

    /// Turns sharing on (a fresh memo) or off (memo dropped) for this thread.
    pub fn share(on: bool) {
        VERDICTS.with(|v| *v.borrow_mut() = on.then(HashMap::new));
    }

    fn key(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Vec<u8> {
        [&public[..], &signature[..], message].concat()
    }

    pub(super) fn lookup(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Option<bool> {
        VERDICTS.with(|v| v.borrow().as_ref()?.get(&key(public, message, signature)).copied())
    }

    pub(super) fn record(public: &[u8; 32], message: &[u8], signature: &[u8; 64], ok: bool) {
        VERDICTS.with(|v| {
            if let Some(m) = v.borrow_mut().as_mut() {
                if m.len() >= MAX {
                    m.clear();
                }
                m.insert(key(public, message, signature), ok);
            }
        });
    }
}

impl fmt::Display for CaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::encode(&self.0))
    }
}

impl fmt::Debug for CaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaPublicKey({self})")
    }
}

impl FromStr for CaPublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaPublicKey::from_bytes(parse_key_text(s)?)
    }
}

/// A network CA's Ed25519 signing key, kept as its 32-byte seed.
pub struct CaSecretKey {
    seed: [u8; KEY_LEN],
    keypair: ed::KeyPair,
}

impl CaSecretKey {
    /// From a 32-byte seed (random bytes when generating). An all-zero seed
    /// is refused: it can only come from a broken random source.
    pub fn from_seed(seed: [u8; KEY_LEN]) -> Result<CaSecretKey, KeyError> {
        let keypair = ed::KeyPair::try_from_seed(ed::Seed::new(seed))
            .map_err(|_| KeyError::Invalid("all-zero CA seed"))?;
        Ok(CaSecretKey { seed, keypair })
    }

    pub fn seed(&self) -> &[u8; KEY_LEN] {
        &self.seed
    }

    pub fn public_key(&self) -> CaPublicKey {
        CaPublicKey(*self.keypair.pk)
    }

    pub fn key_id(&self) -> CaKeyId {
        self.public_key().key_id()
    }

    /// Deterministic Ed25519 (RFC 8032): the same message gives the same
    /// signature, so test vectors stay fixed.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        *self.keypair.sk.sign(message, None)
    }
}

impl fmt::Debug for CaSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaSecretKey(<redacted>, public {})", self.public_key())
    }
}

impl Drop for CaSecretKey {
    fn drop(&mut self) {
        wipe(&mut self.seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7748_x25519_public_key() {
        // RFC 7748 §6.1: Alice's private and public keys.
        let sk = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let pk = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(NodePrivateKey::from_bytes(sk).public_key().0, pk);
    }

    #[test]
    fn generated_keys_are_clamped() {
        let k = NodePrivateKey::from_random([0xFF; 32]);
        assert_eq!(k.as_bytes()[0] & 7, 0);
        assert_eq!(k.as_bytes()[31] & 0xC0, 0x40);
        assert_eq!(format!("{k:?}"), "NodePrivateKey(<redacted>)");
    }

    #[test]
    fn key_text_round_trips_and_refuses_bad_text() {
        let pk = NodePrivateKey::from_random([7; 32]).public_key();
        let text = pk.to_string();
        assert_eq!(text.len(), 44);
        assert_eq!(text.parse::<PublicKey>().unwrap(), pk);
        assert!(matches!(
            "Zm9v".parse::<PublicKey>(),
            Err(crate::key::KeyTextError::Base64(Base64DecodeLenError::WrongLength { .. }))
        ));
        assert!("not base64!".parse::<PublicKey>().is_err());
        assert!(matches!(" x".parse::<CaPublicKey>(), Err(KeyError::Encoding(_))));
    }

    #[test]
    fn rfc8032_ed25519_test_1() {
        // RFC 8032 §7.1 TEST 1: empty message.
        let seed = hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let ca = CaSecretKey::from_seed(seed).unwrap();
        assert_eq!(
            ca.public_key().0,
            hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let sig = ca.sign(b"");
        assert_eq!(
            hex(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(ca.public_key().verify(b"", &sig));
        assert!(!ca.public_key().verify(b"x", &sig));
        assert!(CaSecretKey::from_seed([0; 32]).is_err());
    }

    pub(crate) fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    pub(crate) fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }
}
