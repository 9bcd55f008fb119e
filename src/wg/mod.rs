//! WireGuard desired state and its kernel (generic netlink) and userspace
//! (UAPI) backends.
