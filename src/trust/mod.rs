//! Keys, credentials, revocation and prefix authorisation (pure).
//!
//! - [`keys`]: WireGuard (X25519) node keys, Ed25519 network CA keys.
//! - [`derive`]: router-id and mesh address from a node's public key.
//! - [`credential`], [`revocation`]: the CA-signed objects, in a compact
//!   versioned binary form ([`wire`]) with a text armour ([`armour`]) for
//!   files. `docs/CREDENTIALS.md` specifies the formats.
//! - [`store`]: the verifier ([`TrustStore`]) and prefix authorisation.
//! - [`cli`]: `weft genkey|pubkey|ca …|cert show` (the only part that touches
//!   files, the clock and the OS random source).
//!
//! Nothing outside `cli` reads a clock or draws randomness: times are Unix
//! seconds passed in, and key generation takes the random bytes.

pub mod armour;
pub mod cli;
pub mod credential;
pub mod derive;
pub mod keys;
pub mod revocation;
pub mod store;
pub mod time;
pub mod wire;

#[cfg(test)]
mod tests;

pub use credential::{Credential, CredentialBody, Validity};
pub use derive::{mesh_interface_id, router_id, MeshPrefix};
pub use keys::{CaKeyId, CaPublicKey, CaSecretKey, KeyError, NodePrivateKey, PublicKey};
pub use revocation::RevocationList;
pub use store::{
    authorise_prefix, check_window, AllowEntry, Authority, RevocationUpdate, TrustError, TrustStore,
    TrustTime, VerifiedNode,
};
pub use wire::{DecodeError, ValueError};
