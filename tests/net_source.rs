//! On a device with several link-local addresses, what weft sends comes
//! from the one the engine uses (set with `set_source`), not from whichever
//! the kernel picks, so neighbours know each node under the address it
//! announces and reports. Found by tests/daemon_netns.rs: before the engine
//! also took IHUs for any of its link-local addresses, neighbours addressed
//! their IHUs to the kernel's choice and no link ever came up.

// The one skip rule (require_netns!, require_cmd!, cannot_run!).
#[path = "common/require.rs"]
#[macro_use]
mod require;

use std::net::Ipv6Addr;
use std::time::Duration;

use weft::kernel::netns::Netns;
use weft::net::{BabelIo, BabelSocket, Dest, BABEL_PORT};

#[test]
fn datagrams_come_from_the_pinned_link_local_address() {
    require_netns!();
    let a = Netns::new().unwrap();
    let b = Netns::new().unwrap();
    a.ip(&format!("link add va type veth peer name vb netns {}", b.path())).unwrap();
    // Two link-local addresses on va; the kernel prefers the newer one.
    a.ip("addr add fe80::1/64 dev va nodad").unwrap();
    a.ip("addr add fe80::99/64 dev va nodad").unwrap();
    b.ip("addr add fe80::2/64 dev vb nodad").unwrap();
    a.ip("link set va up").unwrap();
    b.ip("link set vb up").unwrap();
    let (va, vb) = (a.ifindex("va").unwrap(), b.ifindex("vb").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let handle = rt.handle().clone();
    let mut sa = a.run(|| {
        let _g = handle.enter();
        BabelSocket::open(BABEL_PORT).unwrap()
    });
    let mut sb = b.run(|| {
        let _g = handle.enter();
        BabelSocket::open(BABEL_PORT).unwrap()
    });
    sa.join(va).unwrap();
    sb.join(vb).unwrap();
    let peer: Ipv6Addr = "fe80::2".parse().unwrap();
    for pinned in ["fe80::1", "fe80::99", "fe80::1"] {
        let pinned: Ipv6Addr = pinned.parse().unwrap();
        sa.set_source(va, pinned);
        for dest in [Dest::Multicast, Dest::Unicast(peer)] {
            let src = rt.block_on(async {
                let mut buf = vec![0u8; 2048];
                // UDP on a loaded machine may drop one; a few tries.
                for _ in 0..5 {
                    sa.send(va, dest, b"hello").await.unwrap();
                    if let Ok(m) = tokio::time::timeout(Duration::from_secs(1), sb.recv(&mut buf)).await {
                        return m.unwrap().source;
                    }
                }
                panic!("nothing arrived ({dest:?})");
            });
            assert_eq!(src, pinned, "{dest:?} left from {src}, not the pinned {pinned}");
        }
    }
}
