//! `weft::wg::rtnl::Rtnl` (the WireGuard backends' link work, on weft's own
//! rtnetlink codec) against the real kernel, in a private network namespace
//! per test (root required). Each result is checked with iproute2, so the
//! test does not trust the code it tests to read back what it wrote.

// The one skip rule (require_netns!, require_cmd!, cannot_run!).
#[path = "common/require.rs"]
#[macro_use]
mod require;

use std::net::IpAddr;

use weft::kernel::netns::Netns;
use weft::wg::rtnl::Rtnl;
use weft::wg::WgError;

fn ns() -> Netns {
    Netns::new().expect("private network namespace (tests must run as root)")
}

const EOPNOTSUPP: i32 = 95;
const EEXIST: i32 = 17;

#[test]
fn lookups_mtu_up_addresses_and_delete() {
    require_netns!();
    let ns = ns();
    let v0 = ns.add_veth("v0").unwrap();
    ns.ip("link set v0 down").unwrap();
    let path = ns.path();
    ns.block_on(|| async {
        let rt = Rtnl::connect(Some(path.as_ref())).await.expect("connect into the namespace");

        assert_eq!(rt.index_of("lo").await.unwrap(), Some(1));
        assert_eq!(rt.index_of("v0").await.unwrap(), Some(v0));
        assert_eq!(rt.index_of("nosuch0").await.unwrap(), None);
        assert!(matches!(rt.index_of("bad name").await, Err(WgError::BadInterfaceName(_))));

        let all = rt.link_indices().await.unwrap();
        assert_eq!(all.get("lo"), Some(&1));
        assert_eq!(all.get("v0"), Some(&v0));
        assert_eq!(all.get("v0p").copied(), rt.index_of("v0p").await.unwrap());
        assert_eq!(all.len(), 3, "{all:?}");

        // A clone shares the socket.
        let rt2 = rt.clone();
        rt2.set_mtu_up("v0", 1400).await.unwrap();
        let link = ns.ip("-o link show dev v0").unwrap();
        assert!(link.contains("mtu 1400") && link.contains("<BROADCAST,MULTICAST,UP"), "{link}");

        let ll: IpAddr = "fe80::77:1".parse().unwrap();
        rt.add_address("v0", ll, 64).await.unwrap();
        let a6 = ns.ip("-6 -o addr show dev v0").unwrap();
        // (The kernel's own EUI-64 address next to it is still tentative.)
        let ours = a6.lines().find(|l| l.contains("fe80::77:1/64")).unwrap_or_else(|| panic!("{a6}"));
        assert!(
            ours.contains("nodad") && !ours.contains("tentative"),
            "no duplicate address detection: {ours}"
        );

        rt.add_address("v0", "192.0.2.7".parse().unwrap(), 24).await.unwrap();
        let a4 = ns.ip("-4 -o addr show dev v0").unwrap();
        assert!(a4.contains("inet 192.0.2.7/24 brd 192.0.2.255"), "{a4}");

        match rt.add_address("v0", ll, 64).await {
            Err(WgError::Netlink { errno, .. }) => assert_eq!(errno, EEXIST),
            other => panic!("adding an address twice: {other:?}"),
        }
        assert!(matches!(
            rt.add_address("nosuch0", ll, 64).await,
            Err(WgError::NoSuchInterface(n)) if n == "nosuch0"
        ));
        assert!(matches!(rt.set_mtu_up("nosuch0", 1400).await, Err(WgError::NoSuchInterface(_))));

        // A bad MTU is the kernel's refusal, with its errno.
        assert!(matches!(rt.set_mtu_up("v0", 10).await, Err(WgError::Netlink { .. })));

        rt.delete("v0").await.unwrap();
        assert_eq!(rt.index_of("v0").await.unwrap(), None);
        assert!(ns.ip("link show dev v0").is_err(), "v0 is gone");
        assert!(matches!(rt.delete("v0").await, Err(WgError::NoSuchInterface(n)) if n == "v0"));
    });
}

#[test]
fn create_wireguard_link_or_a_clear_refusal() {
    require_netns!();
    let ns = ns();
    let path = ns.path();
    ns.block_on(|| async {
        let rt = Rtnl::connect(Some(path.as_ref())).await.unwrap();
        match rt.create_wireguard("wgt0").await {
            // A kernel with WireGuard (the VM test covers it fully).
            Ok(()) => {
                let link = ns.ip("-d -o link show dev wgt0").unwrap();
                assert!(link.contains("wireguard"), "{link}");
                match rt.create_wireguard("wgt0").await {
                    Err(WgError::Netlink { errno, .. }) => assert_eq!(errno, EEXIST),
                    other => panic!("creating twice: {other:?}"),
                }
                rt.set_mtu_up("wgt0", 1420).await.unwrap();
                rt.delete("wgt0").await.unwrap();
            }
            // This machine's kernel: no WireGuard module. The kernel says so
            // in its extended ack, which the error carries.
            Err(WgError::Netlink { what, errno }) => {
                assert_eq!(errno, EOPNOTSUPP, "{what}");
                assert!(what.contains("wgt0") && what.contains("Unknown device type"), "{what}");
                assert!(ns.ip("link show dev wgt0").is_err(), "nothing was created");
            }
            Err(e) => panic!("unexpected error creating a wireguard link: {e}"),
        }
    });
}
