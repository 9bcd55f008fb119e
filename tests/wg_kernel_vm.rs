//! Kernel WireGuard backend against a real kernel, under qemu.
//!
//! `kernel_backend_in_vm` (host) copies this very test executable into a VM
//! payload and boots Debian's kernel with `tests/vm/run.sh`; inside, the
//! payload runs the ignored test `guest_probe`, which drives kernel WireGuard
//! only through weft's backend (rtnetlink + generic netlink): two namespaces,
//! a veth, one `wg0` in each, a ping across, handshake and counters read back,
//! a minimal update, 1,000 peers split over many messages and read back,
//! removal. Each check prints a `PASS name` line that the host asserts.
//!
//! Needs root on the host (apt-get, first run downloads the kernel package).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use weft::wg::model::{AllowedIp, DeviceConfig, Key, PeerConfig, PrivateKey};
use weft::wg::netlink::KernelBackend;
use weft::wg::rtnl::Rtnl;
use weft::wg::uapi_socket::UserspaceOptions;
use weft::wg::{reconcile, sync_device, AnyBackend, WgBackend, WgError};

mod wg_common;
use wg_common::{key, ll, ping_until, run, Topology, PRIV, PUB};

/// Every check the guest must report.
const CHECKS: &[&str] = &[
    "auto-selects-kernel",
    "create-in-two-namespaces",
    "public-key-derived",
    "configured-state-read-back",
    "ping-over-tunnel",
    "handshake-and-counters",
    "minimal-update-keeps-session",
    "thousand-peers-set-and-read-back",
    "replace-peers-empties",
    "delete",
];

fn pass(name: &str, detail: impl std::fmt::Display) {
    assert!(CHECKS.contains(&name), "unknown check {name}");
    println!("PASS {name} {detail}");
}

#[test]
fn kernel_backend_in_vm() {
    // Root: installs qemu, downloads the kernel package.
    require_netns!();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().expect("test executable");
    let payload = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vm-payload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&payload);
    std::fs::create_dir_all(&payload).unwrap();
    let guest = payload.join("wg_kernel_vm");
    // Debug info is most of a test binary: leave it out of the initramfs.
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&guest)
        .arg(&exe)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !stripped {
        std::fs::copy(&exe, &guest).unwrap();
    }
    std::fs::write(
        payload.join("run"),
        "#!/bin/sh\nRUST_BACKTRACE=1 exec ./wg_kernel_vm guest_probe --ignored --exact \
         --nocapture --test-threads=1\n",
    )
    .unwrap();
    run(&["chmod", "+x", payload.join("run").to_str().unwrap()]).unwrap();

    let t = Instant::now();
    let out = Command::new(repo.join("tests/vm/run.sh")).arg(&payload).output().expect("tests/vm/run.sh");
    let wall = t.elapsed();
    let _ = std::fs::remove_dir_all(&payload);
    let console = String::from_utf8_lossy(&out.stdout);
    eprintln!("{console}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("VM run took {:.1} s wall", wall.as_secs_f64());
    for c in CHECKS {
        assert!(
            // libtest's "test guest_probe ... " may precede the first one.
            console.contains(&format!("PASS {c} ")),
            "guest did not report PASS {c}"
        );
    }
    assert!(out.status.success(), "VM payload failed: {:?}", out.status);
    assert!(wall < Duration::from_secs(300), "VM run took {wall:?}");
}

fn peer_key(i: u32) -> Key {
    // Distinct, non-trivial 32-byte values: the kernel accepts any public key.
    let mut k = [0u8; 32];
    for (j, b) in k.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761).rotate_left(j as u32) >> 3) as u8 ^ j as u8;
    }
    k[0..4].copy_from_slice(&i.to_be_bytes());
    Key(k)
}

#[test]
#[ignore = "runs inside the VM that kernel_backend_in_vm boots"]
fn guest_probe() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let topo = Topology::new("k").expect("topology");
        let nsp = [topo.netns_path(0), topo.netns_path(1)];

        let auto = AnyBackend::auto(UserspaceOptions {
            netns: Some(nsp[0].clone()),
            ..UserspaceOptions::wireguard_go()
        })
        .await
        .unwrap();
        assert_eq!(auto.kind(), "kernel");
        pass("auto-selects-kernel", "");

        // The same name in both namespaces: kernel devices are per namespace.
        let name = "wg0";
        let mut be = Vec::new();
        let mut desired = Vec::new();
        for i in 0..2 {
            let mut b = KernelBackend::new(Some(&nsp[i])).await.expect("kernel backend");
            b.create_interface(name, 1420).await.expect("create");
            b.add_address(name, IpAddr::V6(ll(1 + i as u16)), 64).await.expect("address");
            let veth_idx =
                Rtnl::connect(Some(&nsp[i])).await.unwrap().index_of(&topo.veth[i]).await.unwrap().unwrap();
            desired.push(DeviceConfig {
                private_key: PrivateKey(key(PRIV[i])),
                listen_port: Some(51820 + i as u16),
                fwmark: None,
                peers: vec![PeerConfig {
                    public_key: key(PUB[1 - i]),
                    endpoint: Some(SocketAddr::V6(SocketAddrV6::new(
                        ll(0xa + 1 - i as u16),
                        51820 + 1 - i as u16,
                        0,
                        veth_idx,
                    ))),
                    allowed_ips: vec![AllowedIp::any_v6(), AllowedIp::any_v4()],
                    persistent_keepalive: None,
                }],
            });
            be.push(b);
        }
        let link = run(&["ip", "-n", &topo.ns[1], "-o", "link", "show", name]).unwrap();
        assert!(link.contains("mtu 1420") && link.contains(",UP"), "{link}");
        pass("create-in-two-namespaces", "");

        for i in 0..2 {
            let up = sync_device(&mut be[i], name, &desired[i]).await.expect("sync").0;
            assert!(!up.replace_peers && up.private_key.is_some());
            let got = be[i].get(name).await.expect("get");
            assert_eq!(got.public_key, Some(key(PUB[i])), "kernel-derived public key");
            assert!(reconcile(&desired[i], &got).is_empty(), "{got:?}");
            assert_eq!(got.peers[0].last_handshake, None);
        }
        pass("public-key-derived", "");
        pass("configured-state-read-back", "");

        let tries = ping_until(&topo.ns[0], &format!("fe80::2%{name}"), 10).unwrap();
        pass("ping-over-tunnel", format!("after {tries} tries"));

        let got = be[0].get(name).await.unwrap();
        let p = &got.peers[0];
        let hs = p.last_handshake.expect("handshake after ping");
        let age = SystemTime::now().duration_since(hs).unwrap_or_default();
        assert!(age < Duration::from_secs(60), "handshake {age:?} ago");
        assert!(p.rx_bytes > 0 && p.tx_bytes > 0, "{p:?}");
        pass("handshake-and-counters", format!("rx {} tx {} bytes", p.rx_bytes, p.tx_bytes));

        desired[0].peers[0].persistent_keepalive = Some(15);
        let up = sync_device(&mut be[0], name, &desired[0]).await.unwrap().0;
        assert_eq!(up.peers.len(), 1);
        assert!(up.peers[0].update_only && up.peers[0].endpoint.is_none());
        let got = be[0].get(name).await.unwrap();
        assert_eq!(got.peers[0].persistent_keepalive, 15);
        assert_eq!(got.peers[0].last_handshake, Some(hs), "session kept");
        assert!(sync_device(&mut be[0], name, &desired[0]).await.unwrap().0.is_empty());
        pass("minimal-update-keeps-session", "");

        // 1,000 peers with two prefixes each: the update is split over many
        // messages and the kernel's answer over many dump parts.
        let big = "wgbig";
        be[0].create_interface(big, 1420).await.unwrap();
        let many = DeviceConfig {
            private_key: PrivateKey(Key([0x42; 32])),
            listen_port: Some(51900),
            fwmark: Some(0x51),
            peers: (0..1000u32)
                .map(|i| PeerConfig {
                    public_key: peer_key(i),
                    endpoint: Some(SocketAddr::V6(SocketAddrV6::new(
                        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, i as u16),
                        51820,
                        0,
                        1,
                    ))),
                    allowed_ips: vec![
                        AllowedIp::new(IpAddr::V6(Ipv6Addr::new(0xfd00, i as u16, 0, 0, 0, 0, 0, 0)), 32)
                            .unwrap(),
                        AllowedIp::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), 24).unwrap(),
                    ],
                    persistent_keepalive: Some(25),
                })
                .collect(),
        };
        let t = Instant::now();
        let up = sync_device(&mut be[0], big, &many).await.unwrap().0;
        let set_time = t.elapsed();
        assert_eq!(up.peers.len(), 1000);
        let t = Instant::now();
        let got = be[0].get(big).await.unwrap();
        let get_time = t.elapsed();
        assert_eq!(got.peers.len(), 1000);
        assert_eq!(got.peers.iter().map(|p| p.allowed_ips.len()).sum::<usize>(), 2000);
        let diff = reconcile(&many, &got);
        assert!(
            diff.is_empty(),
            "1000-peer device differs: key {} port {:?} mark {:?} replace {} {} peers, first {:?}, read {:?}",
            diff.private_key.is_some(),
            diff.listen_port,
            diff.fwmark,
            diff.replace_peers,
            diff.peers.len(),
            diff.peers.first(),
            diff.peers.first().and_then(|p| got.peer(&p.public_key)),
        );
        pass("thousand-peers-set-and-read-back", format!("set {set_time:?} get {get_time:?}"));

        let empty = DeviceConfig { peers: Vec::new(), ..many.clone() };
        let up = sync_device(&mut be[0], big, &empty).await.unwrap().0;
        assert!(up.replace_peers && up.peers.is_empty());
        assert!(be[0].get(big).await.unwrap().peers.is_empty());
        pass("replace-peers-empties", "");

        for n in [big, name] {
            be[0].delete_interface(n).await.unwrap();
            assert!(matches!(be[0].get(n).await, Err(WgError::NoSuchInterface(_))));
        }
        be[1].delete_interface(name).await.unwrap();
        assert!(matches!(be[0].delete_interface(name).await, Err(WgError::NoSuchInterface(_))));
        pass("delete", "");
    });
}
