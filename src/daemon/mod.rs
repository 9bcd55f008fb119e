//! The daemon: the one event loop that wires the pure engine to the edges
//! (sockets, netlink, WireGuard, control socket, signals).

pub mod logger;
pub mod state_file;
