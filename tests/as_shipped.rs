//! weft as shipped, on plain hosts: three namespaces in a line A – B – C
//! with the kernel's defaults (duplicate address detection on, forwarding
//! off, the MAC-derived link-local addresses), the shipped /etc/config/weft
//! with only the trust material and per-node paths filled in, and the
//! firewall that uci-defaults/90-weft configures, rendered into real
//! nftables rules (zone input reject except the opened ports). Then:
//! discovery, the tunnel handshake, Babel inside the tunnels, a ping from A
//! to C through B; Babel on the raw link refused by the firewall; and with
//! `set_forwarding '0'` node B says it will not route for others (and
//! does not).
//!
//! The firewall: 90-weft runs against the UCI stand-in of
//! tests/openwrt/fakes with its paths moved into a scratch root, over the
//! stock OpenWrt firewall config (tests/openwrt/fixtures/firewall); the
//! resulting zones and rules are rendered here the way fw4 does for these
//! options (a zone's input policy after its rules, established traffic
//! first).

mod common;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::mesh::{mesh_address_of, Ca, Mesh, NodeId, MESH_PREFIX};
use common::netns::Net;
use common::peers::link_locals;
use weft::config::uci::{Document, UciValue};
use weft::sim::Topology;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const CONVERGE: Duration = Duration::from_secs(60);

/// The shipped config with node-specific values: its interface section
/// once per raw device, trust material and per-node paths (several nodes
/// share one machine). Everything else stays as shipped.
fn shipped_config(dir: &Path, devices: &[String], key: &Path, cred: &Path, ca: &str) -> String {
    let shipped = std::fs::read_to_string(Path::new(REPO).join("openwrt-package/files/weft.config")).unwrap();
    let (main, rest) =
        shipped.split_at(shipped.find("\nconfig interface 'mesh'").expect("interface section"));
    let iface_end = rest[1..].find("\n# ").map(|i| i + 1).unwrap_or(rest.len());
    let (iface, tail) = rest.split_at(iface_end);
    let set = |text: &str, from: &str, to: String| {
        assert!(text.contains(from), "shipped config lacks {from:?}");
        text.replacen(from, &to, 1)
    };
    let mut main = main.to_string();
    let d = |f: &str| dir.join(f).display().to_string();
    main = set(&main, "'/var/lib/weft/state'", format!("'{}'", d("state")));
    main = set(&main, "'/var/run/weft.sock'", format!("'{}'", d("weft.sock")));
    main = set(&main, "'/etc/weft/private.key'", format!("'{}'", key.display()));
    main = set(
        &main,
        "#option credential_file '/etc/weft/node.cred'",
        format!("option credential_file '{}'", cred.display()),
    );
    main = set(&main, "#list ca_public_key 'BASE64-CA-PUBLIC-KEY'", format!("list ca_public_key '{ca}'"));
    main =
        set(&main, "#option mesh_prefix 'fd00:77:6566::/48'", format!("option mesh_prefix '{MESH_PREFIX}'"));
    main = set(
        &main,
        "#option revocation_file '/etc/weft/revoked'",
        format!("option revocation_file '{}'", d("revoked")),
    );
    let mut out = main;
    for dev in devices {
        out += &iface.replacen("'mesh'", &format!("'{dev}'"), 1).replacen("'mesh0'", &format!("'{dev}'"), 1);
    }
    out + tail
}

/// Runs uci-defaults/90-weft over the stock OpenWrt firewall in a scratch
/// root (paths moved there, the UCI stand-in on PATH) and returns the
/// resulting /etc/config/firewall.
fn firewall_after_uci_defaults(root: &Path) -> Document {
    let r = root.display().to_string();
    for d in ["etc/config", "etc/weft", "tmp", "bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(Path::new(REPO).join("tests/openwrt/fixtures/firewall"), root.join("etc/config/firewall"))
        .unwrap();
    let fake_uci = std::fs::read_to_string(Path::new(REPO).join("tests/openwrt/fakes/uci")).unwrap();
    let fake_uci = fake_uci.replacen("CONFDIR=/etc/config", &format!("CONFDIR={r}/etc/config"), 1).replacen(
        "SAVEDIR=/tmp/.uci",
        &format!("SAVEDIR={r}/tmp/.uci"),
        1,
    );
    assert!(fake_uci.contains(&format!("CONFDIR={r}")) && fake_uci.contains(&format!("SAVEDIR={r}")));
    let script = std::fs::read_to_string(Path::new(REPO).join("uci-defaults/90-weft")).unwrap();
    let script = script
        .replace("/usr/sbin/weft", common::mesh::weft())
        .replace("/etc/", &format!("{r}/etc/"))
        .replace("nft list table", "false");
    for (name, text) in [("uci", fake_uci.as_str()), ("logger", "#!/bin/sh\nexit 0\n")] {
        let p = root.join("bin").join(name);
        std::fs::write(&p, text).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    std::fs::write(root.join("90-weft"), script).unwrap();
    let out = Command::new("sh")
        .arg(root.join("90-weft"))
        .env("PATH", format!("{r}/bin:{}", std::env::var("PATH").unwrap_or_default()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "90-weft failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(root.join("etc/config/firewall")).unwrap();
    weft::config::uci::parse(&text, "firewall").expect("90-weft left a parsable firewall config").0
}

fn values(s: &weft::config::uci::Section, name: &str) -> Vec<String> {
    match s.option(name).map(|o| &o.value) {
        Some(UciValue::Single(v)) => v.split_whitespace().map(str::to_string).collect(),
        Some(UciValue::List(items)) => items.iter().map(|i| i.value.clone()).collect(),
        None => Vec::new(),
    }
}

fn single(s: &weft::config::uci::Section, name: &str) -> Option<String> {
    values(s, name).into_iter().next()
}

fn verdict(target: &str) -> &'static str {
    match target {
        "ACCEPT" => "accept",
        "DROP" => "drop",
        _ => "reject",
    }
}

/// fw4's ICMPv6 type names, as nft spells them.
fn icmpv6_type(t: &str) -> String {
    match t {
        "neighbour-solicitation" => "nd-neighbor-solicit".into(),
        "neighbour-advertisement" => "nd-neighbor-advert".into(),
        other => other.into(),
    }
}

/// The nftables ruleset fw4 would make of the zones that weft's devices are
/// in: `raw_devs` are this node's devices of network 'mesh'; a zone device
/// `weft+` is fw4's wildcard for weft's tunnels. Every input and forward
/// rule ends in a counter, so that a test can see what a chain refused.
fn render_fw4(doc: &Document, raw_devs: &[String]) -> String {
    let mut zones = Vec::new();
    for z in doc.sections_of("zone") {
        let mut devs: Vec<String> = Vec::new();
        for n in values(z, "network") {
            if n == "mesh" {
                devs.extend(raw_devs.iter().map(|d| format!("\"{d}\"")));
            }
        }
        for d in values(z, "device") {
            devs.push(format!("\"{}\"", d.replace('+', "*")));
        }
        if !devs.is_empty() {
            zones.push((single(z, "name").unwrap(), devs, z));
        }
    }
    assert!(zones.len() >= 2, "90-weft made no zones for the raw link and the tunnels");
    let nft = String::from("table inet fw4test {\n");
    let mut input = String::from(
        " chain input {\n  type filter hook input priority 0; policy accept;\n  ct state vmap { established : accept, related : accept, invalid : drop }\n  iifname \"lo\" accept\n",
    );
    let mut forward = String::from(
        " chain forward {\n  type filter hook forward priority 0; policy accept;\n  ct state vmap { established : accept, related : accept, invalid : drop }\n",
    );
    let mut chains = String::new();
    for (name, devs, z) in &zones {
        // One rule per device: a wildcard ("weft*") in a set needs a newer nft.
        for dev in devs {
            input += &format!("  iifname {dev} jump input_{name}\n");
            forward += &format!("  iifname {dev} jump forward_{name}\n");
        }
        chains += &format!(" chain input_{name} {{\n");
        for r in doc.sections_of("rule").filter(|r| single(r, "src").as_deref() == Some(name.as_str())) {
            if single(r, "dest").is_some() {
                continue; // a forward rule: none of weft's
            }
            let mut m = String::new();
            match single(r, "family").as_deref() {
                Some("ipv6") => m += "meta nfproto ipv6 ",
                Some("ipv4") => m += "meta nfproto ipv4 ",
                _ => {}
            }
            let proto = single(r, "proto").unwrap_or_default();
            let port = single(r, "dest_port");
            match (proto.as_str(), &port) {
                ("udp" | "tcp", Some(p)) => m += &format!("{proto} dport {p} "),
                ("icmp", _) => {
                    let types: Vec<String> = values(r, "icmp_type").iter().map(|t| icmpv6_type(t)).collect();
                    if types.is_empty() {
                        m += "meta l4proto ipv6-icmp ";
                    } else {
                        m += &format!("icmpv6 type {{ {} }} ", types.join(", "));
                    }
                }
                (p, _) => m += &format!("meta l4proto {p} "),
            }
            let target = single(r, "target").unwrap_or_else(|| "ACCEPT".into());
            chains += &format!("  {m}counter {}\n", verdict(&target));
        }
        let policy = single(z, "input").unwrap_or_else(|| "REJECT".into());
        chains += &format!("  udp dport 6696 counter name babel_refused_{name} {}\n", verdict(&policy));
        chains += &format!("  counter {}\n }}\n", verdict(&policy));
        // Intra-zone forwarding follows the zone's forward policy.
        let fpolicy = single(z, "forward").unwrap_or_else(|| "REJECT".into());
        chains += &format!(" chain forward_{name} {{\n");
        for dev in devs {
            chains += &format!("  oifname {dev} counter {}\n", verdict(&fpolicy));
        }
        chains += "  counter reject\n }\n";
    }
    input += "  counter reject\n }\n";
    forward += "  counter reject\n }\n";
    let counters: String =
        zones.iter().map(|(n, _, _)| format!(" counter babel_refused_{n} {{ }}\n")).collect();
    nft + &counters + &input + &forward + &chains + "}\n"
}

fn nft(net: &Net, i: usize, script: &str) {
    let mut c = net.in_ns(i, &["nft", "-f", "-"]);
    c.stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("nft");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "nft in node {i}: {}\n{script}", String::from_utf8_lossy(&out.stderr));
}

fn sysctl(net: &Net, i: usize, key: &str) -> String {
    String::from_utf8_lossy(&net.exec_ok(i, &["sysctl", "-n", key]).stdout).trim().to_string()
}

/// Sends one datagram to `dst` port 6696 from node `i`, on a connected
/// socket, and reports whether the destination refused it (ICMPv6 port
/// unreachable, as a REJECT answers): `Some(true)` refused, `Some(false)`
/// taken in silence (Babel answers nothing to garbage), `None` if sending
/// failed.
fn babel_refused(net: &Net, i: usize, dst: SocketAddrV6) -> Option<bool> {
    let ns_path = format!("/run/netns/{}", net.nodes[i].ns);
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).ok()?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        let sock = UdpSocket::bind("[::]:0").ok()?;
        sock.connect(dst).ok()?;
        sock.set_read_timeout(Some(Duration::from_millis(1500))).ok()?;
        // A Babel header announcing an empty body: harmless to a listener.
        sock.send(&[42, 2, 0, 0]).ok()?;
        let mut buf = [0u8; 64];
        match sock.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(true),
            _ => Some(false),
        }
    })
    .join()
    .ok()
    .flatten()
}

fn counter(net: &Net, i: usize, name: &str) -> u64 {
    let out = net.exec_ok(i, &["nft", "list", "counter", "inet", "fw4test", name]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split("packets ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name}: {text}"))
}

#[test]
fn shipped_config_and_firewall_on_plain_hosts() {
    require_mesh_tools!();
    let net = Net::with_kernel_addresses(&Topology::line(3));
    let mut m = Mesh::on(net);
    let (a, b, c) = (0, 1, 2);
    for i in 0..3 {
        assert_eq!(sysctl(&m.net, i, "net.ipv6.conf.all.forwarding"), "0", "node {i}: not a plain host");
        assert_eq!(sysctl(&m.net, i, "net.ipv4.conf.all.forwarding"), "0", "node {i}: not a plain host");
        assert_eq!(sysctl(&m.net, i, "net.ipv6.conf.default.accept_dad"), "1", "node {i}: DAD is off");
    }

    // The firewall, as uci-defaults leaves it, in every node.
    let fw = firewall_after_uci_defaults(&m.net.root.join("openwrt-root"));
    for i in 0..3 {
        let devs = m.net.devices(i);
        nft(&m.net, i, &render_fw4(&fw, &devs));
    }

    // The shipped configuration, with credentials from a network CA.
    let ca = Ca::init(m.net.root.join("ca"));
    let mut mesh_addr = Vec::new();
    for i in 0..3 {
        let id = NodeId::new(m.dir(i), &format!("node{i}"));
        let cred = ca.sign(&id, &[], None);
        mesh_addr.push(mesh_address_of(&cred));
        let text = shipped_config(m.dir(i), &m.net.devices(i), &id.key_file, &cred, &ca.public);
        std::fs::write(m.conf_path(i), &text).unwrap();
        let check = Command::new(common::mesh::weft())
            .args(["check-config", "-c"])
            .arg(m.conf_path(i))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "node {i}'s config:\n{text}\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    for i in 0..3 {
        m.start(i);
    }

    // Discovery, the handshakes and Babel in the tunnels: A reaches C's
    // mesh address through B, and a ping gets there and back.
    let routed = |i: usize, j: usize| m.routes(i).contains_key(&format!("{}/128", mesh_addr[j]));
    Net::wait_until(CONVERGE, || routed(a, c) && routed(c, a) && routed(a, b) && routed(b, c))
        .unwrap_or_else(|| {
            panic!(
                "no routes A<->C within {CONVERGE:?}: A {:?}, C {:?}\n{}\n{}",
                m.routes(a),
                m.routes(c),
                m.log_tail(a, 30),
                m.log_tail(b, 30)
            )
        });
    // As shipped, with trust material and a /48 mesh prefix, end to end is
    // on: C's mesh address goes into weft-e2e, C's transport address
    // through the tunnel to B.
    let e2e = m.routes(a)[&format!("{}/128", mesh_addr[c])].clone();
    assert_eq!(e2e, "weft-e2e", "A's route to C's mesh address is not end to end");
    let transport = |i: usize| -> String {
        let st = m.status(i);
        st["end_to_end"]["transport_address"]
            .as_str()
            .unwrap_or_else(|| panic!("node {i}: {st:#}"))
            .to_string()
    };
    let through_b = m.routes(a)[&format!("{}/128", transport(c))].clone();
    assert!(
        through_b.starts_with("weft") && through_b != e2e,
        "A's route to C is not through a tunnel: {through_b}"
    );
    Net::wait_until(Duration::from_secs(15), || m.net.ping_from(a, &mesh_addr[a], &mesh_addr[c]))
        .unwrap_or_else(|| panic!("A cannot ping C through B\n{}", m.log_tail(b, 30)));
    // Forwarding was off; weft turned IPv6 on and left IPv4 alone (this
    // mesh installs no IPv4 route).
    for i in 0..3 {
        assert_eq!(sysctl(&m.net, i, "net.ipv6.conf.all.forwarding"), "1", "node {i}");
        assert_eq!(sysctl(&m.net, i, "net.ipv4.conf.all.forwarding"), "0", "node {i}");
        let st = m.status(i);
        assert_eq!(st["forwarding"]["routes_for_others"], true, "node {i}: {:#}", st["forwarding"]);
        assert_eq!(st["forwarding"]["ipv4_routes"], false, "node {i}: {:#}", st["forwarding"]);
    }

    // Babel on the raw link is refused by the firewall, inside a tunnel it
    // is taken (weft listens on both).
    let raw_dev = m.net.dev(a, b);
    let b_raw = link_locals(&m.net, b, &m.net.dev(b, a));
    let ifindex = |i: usize, dev: &str| -> u32 {
        let v = m.net.ip_json(i, &["link", "show", "dev", dev]);
        v[0]["ifindex"].as_u64().expect("ifindex") as u32
    };
    let raw_ll: Ipv6Addr = b_raw.first().expect("B's raw link-local").parse().unwrap();
    let before = counter(&m.net, b, "babel_refused_mesh");
    let refused = babel_refused(&m.net, a, SocketAddrV6::new(raw_ll, 6696, 0, ifindex(a, &raw_dev)));
    assert_eq!(refused, Some(true), "Babel to B's raw link-local {raw_ll} was not refused");
    assert!(counter(&m.net, b, "babel_refused_mesh") > before, "B's mesh zone did not count the refusal");
    let tunnel = through_b;
    let b_tunnel_ll = m.net.ip_json(a, &["route", "get", &transport(b)]);
    let gw: Ipv6Addr =
        b_tunnel_ll[0]["gateway"].as_str().expect("a route to B via a gateway").parse().unwrap();
    let inside = babel_refused(&m.net, a, SocketAddrV6::new(gw, 6696, 0, ifindex(a, &tunnel)));
    assert_eq!(inside, Some(false), "Babel to B inside tunnel {tunnel} ({gw}) was refused");

    // set_forwarding '0' on B: weft puts forwarding back as it found it,
    // says once that B will not route for others, and B stops doing so.
    let conf = std::fs::read_to_string(m.conf_path(b)).unwrap();
    let conf = conf.replacen("config weft 'main'\n", "config weft 'main'\n\toption set_forwarding '0'\n", 1);
    std::fs::write(m.conf_path(b), conf).unwrap();
    m.reload(b);
    Net::wait_until(Duration::from_secs(10), || m.status(b)["forwarding"]["routes_for_others"] == false)
        .unwrap_or_else(|| {
            panic!("B still says it routes: {:#}\n{}", m.status(b)["forwarding"], m.log_tail(b, 20))
        });
    let fwd = m.status(b)["forwarding"].clone();
    assert_eq!(fwd["set_forwarding"], false, "{fwd:#}");
    assert_eq!(fwd["ipv6"], "off", "{fwd:#}");
    let note = fwd["note"].as_str().unwrap_or_default().to_string();
    assert!(note.starts_with("this node will not route packets for others"), "{fwd:#}");
    assert_eq!(sysctl(&m.net, b, "net.ipv6.conf.all.forwarding"), "0");
    let text = Command::new(common::mesh::weft()).args(["status", "-s"]).arg(m.sock(b)).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.starts_with(&format!("WARNING: {note}")), "weft status does not lead with it:\n{text}");
    assert_eq!(m.log(b).matches("will not route packets for others").count(), 1, "{}", m.log_tail(b, 20));
    Net::wait_until(Duration::from_secs(10), || !m.net.ping_from(a, &mesh_addr[a], &mesh_addr[c]))
        .expect("A still reaches C through a B that does not forward");
    eprintln!(
        "as shipped: A-B-C routed, transit ping, Babel refused on the raw link, B reports set_forwarding '0'"
    );
}
