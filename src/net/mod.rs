//! The Babel UDP socket edge: port 6696, ff02::1:6 per interface, with the
//! receiving interface index and source address of every datagram.
