//! The local control socket and JSON views of the daemon's state.
