//! The Babel UDP socket edge: port 6696, ff02::1:6 per interface, with the
//! receiving interface index and source address of every datagram, behind
//! the [`BabelIo`] trait with an in-memory [`FakeBabelSocket`].

mod babel_socket;
mod discovery;
mod fake;

pub use babel_socket::{
    check_datagram, destination, is_link_local, BabelIo, BabelSocket, Dest, RecvMeta, SocketStats, Verdict,
    BABEL_GROUP, BABEL_PORT,
};
pub use discovery::{DiscoverySocket, Origin};
pub use fake::{FakeBabelHandle, FakeBabelSocket, IncomingDatagram, SentDatagram};
