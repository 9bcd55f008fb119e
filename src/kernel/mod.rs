//! The FIB edge (rtnetlink routes in weft's own protocol number) and link /
//! address monitoring.
