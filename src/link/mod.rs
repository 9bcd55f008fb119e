//! Neighbour discovery and the tunnel handshake on raw interfaces (pure).
