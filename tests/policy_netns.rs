//! Group policy, proved in network namespaces with the real daemon and
//! wireguard-go: a star around the relay n1 (a member with no group) with
//! n0 in `guests`, n2 in `servers` and n3 in `admins`. Every node has the
//! same policy sections (as a network's configuration would); only n2 is in
//! their `dest_group`, so only n2 enforces them:
//! guests -> servers TCP 443 dropped, guests -> servers TCP 80 accepted,
//! admins -> servers anything, anyone -> servers UDP 5000, and
//! `default_policy 'drop'`. A guest cannot open 443 but can open 80 (the
//! same path: the policy tells them apart), an admin can open both, over
//! IPv6 (mesh addresses) and IPv4 (granted prefixes). The relay n1 sending
//! from the admin's address through its per-hop tunnel gets nothing in
//! (counted as spoofed), while the same datagram from an address that is no
//! node's gets in (the control: the check can fail). A reload that changes
//! the rules takes effect without a restart; a clean stop removes the table.
//!
//! Needs root, wireguard-go, nft and socat (scripts/install-deps.sh).

mod common;

use std::time::Duration;

use common::mesh::{mesh_address_of, Ca, Mesh, NodeConf, NodeId, NsSender, UdpFlood};
use common::netns::Net;
use weft::babel::LinkType;
use weft::sim::Topology;

const CONVERGE: Duration = Duration::from_secs(40);
const GROUPS: [&str; 4] = ["guests", "", "servers", "admins"];

fn v4_prefix(i: usize) -> String {
    format!("10.88.{}.0/24", i + 1)
}

fn v4_host(i: usize) -> String {
    format!("10.88.{}.1", i + 1)
}

const POLICY: &str = "config policy 'guest_https'
\toption src_group 'guests'
\toption dest_group 'servers'
\toption proto 'tcp'
\tlist dest_port '443'
\toption action 'drop'
config policy 'guest_http'
\toption src_group 'guests'
\toption dest_group 'servers'
\toption proto 'tcp'
\tlist dest_port '80'
\toption action 'accept'
config policy 'admin'
\toption src_group 'admins'
\toption dest_group 'servers'
\toption action 'accept'
config policy 'drop_box'
\toption dest_group 'servers'
\toption proto 'udp'
\tlist dest_port '5000'
\toption action 'accept'
";

struct Star {
    m: Mesh,
    mesh: Vec<String>,
    confs: Vec<NodeConf>,
}

fn star() -> Star {
    star_wrapped(&["", "", "", ""])
}

/// As [`star`], node i's daemon run by `wrappers[i]` (e.g. `faketime ...`).
fn star_wrapped(wrappers: &[&str; 4]) -> Star {
    let mut t = Topology::default();
    for i in 0..4 {
        t.node(&format!("n{i}"));
    }
    for i in [0, 2, 3] {
        t.add_link(1, i, LinkType::Wired);
    }
    let mut m = Mesh::new(&t);
    let ca = Ca::init(m.net.root.join("ca"));
    let (mut mesh, mut confs) = (Vec::new(), Vec::new());
    for (i, group) in GROUPS.iter().enumerate() {
        let id = NodeId::new(m.dir(i), &format!("node{i}"));
        let groups: Vec<&str> = [*group].into_iter().filter(|g| !g.is_empty()).collect();
        let cred = ca.sign_in_groups(&id, &[&v4_prefix(i)], &groups, None);
        let ifaces: Vec<String> =
            if i == 1 { [0, 2, 3].iter().map(|&j| m.net.dev(1, j)).collect() } else { vec![m.net.dev(i, 1)] };
        let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        let mut conf = NodeConf::new(&ca, &id, &cred, &ifaces);
        conf.announces = vec![v4_prefix(i)];
        conf.main_extra = vec!["option default_policy 'drop'".into()];
        m.net.exec_ok(i, &["ip", "addr", "add", &format!("{}/32", v4_host(i)), "dev", "lo"]);
        write_conf(&m, i, &conf, POLICY);
        mesh.push(mesh_address_of(&cred));
        confs.push(conf);
    }
    for (i, w) in wrappers.iter().enumerate() {
        m.start_wrapped(i, "true", w);
    }
    Star { m, mesh, confs }
}

fn write_conf(m: &Mesh, i: usize, conf: &NodeConf, policy: &str) {
    let text = conf.render(m.dir(i)) + policy;
    std::fs::write(m.conf_path(i), text).expect("writing the configuration");
}

fn await_or_fail(m: &Mesh, timeout: Duration, what: &str, nodes: &[usize], cond: impl FnMut() -> bool) {
    if Net::wait_until(timeout, cond).is_none() {
        let logs: Vec<String> = nodes.iter().map(|&i| m.log_tail(i, 60)).collect();
        panic!("timed out after {timeout:?}: {what}\n{}", logs.join("\n"));
    }
}

/// n2 listens on TCP 80 and 443 (one dual-stack socket per port).
fn tcp_servers(m: &Mesh) -> Vec<std::process::Child> {
    [80, 443]
        .iter()
        .map(|port| {
            let listen = format!("TCP6-LISTEN:{port},fork,reuseaddr,ipv6only=0");
            m.net.spawn(2, &["socat", &listen, "SYSTEM:true"], &format!("tcp{port}.log"))
        })
        .collect()
}

/// Opens a TCP connection from node `i` to `addr`:`port` (3 s at most).
fn connects(m: &Mesh, i: usize, addr: &str, port: u16) -> bool {
    let target =
        if addr.contains(':') { format!("TCP6:[{addr}]:{port}") } else { format!("TCP4:{addr}:{port}") };
    let out = m.net.exec(i, &["timeout", "5", "socat", "/dev/null", &format!("{target},connect-timeout=3")]);
    out.status.success()
}

fn counter(st: &serde_json::Value, rule: &str) -> u64 {
    let rules = st["policy"]["rules"].as_array().expect("policy.rules");
    let r = rules.iter().find(|r| r["name"] == rule).unwrap_or_else(|| panic!("no rule {rule}: {st:#}"));
    r["matched"]["packets"].as_u64().unwrap_or(0)
}

#[test]
fn group_policy_decides_who_reaches_a_server() {
    require_mesh_tools!();
    require_cmd!("socat");
    let s = star();
    let m = &s.m;
    await_or_fail(m, CONVERGE, "every node has three end-to-end peers", &[0, 1, 2, 3], || {
        (0..4).all(|i| m.status(i)["end_to_end"]["peers"] == 3)
    });
    await_or_fail(m, Duration::from_secs(10), "n2's policy enforced", &[2], || {
        m.status(2)["policy"]["state"] == "enforced"
    });
    // TCP servers on n2 (one dual-stack socket per port), a UDP drop box on
    // its mesh address.
    let mut servers = tcp_servers(m);
    let inbox = m.net.dir(2).join("inbox");
    let recv = format!("UDP6-RECV:5000,bind=[{}]", s.mesh[2]);
    let append = format!("OPEN:{},creat,append", inbox.display());
    servers.push(m.net.spawn(2, &["socat", "-u", &recv, &append], "udp5000.log"));

    // The admin reaches both ports, both families: also waits for the listeners.
    for (dst, what) in [(s.mesh[2].clone(), "mesh address"), (v4_host(2), "IPv4 grant")] {
        for port in [443, 80] {
            await_or_fail(
                m,
                Duration::from_secs(20),
                &format!("admin n3 -> n2 {what} :{port}"),
                &[2, 3],
                || connects(m, 3, &dst, port),
            );
        }
        // The guest: 80 yes, 443 no (same path, same moment).
        assert!(connects(m, 0, &dst, 80), "guest n0 -> n2 {what} :80 refused");
        assert!(!connects(m, 0, &dst, 443), "guest n0 -> n2 {what} :443 got through");
        // The relay (a member with no group): the default, drop.
        assert!(!connects(m, 1, &dst, 80), "n1 (no group) -> n2 {what} :80 got through the default drop");
    }
    let st = m.status(2);
    assert!(counter(&st, "guest_https") >= 2, "{:#}", st["policy"]);
    // The transport address carries end-to-end UDP only: a guest cannot
    // reach the server's services through it (hop by hop, unattributed).
    let t2 = m.transport_address(2);
    assert!(!connects(m, 0, &t2, 443), "guest n0 reached n2's port 443 at its transport address");
    assert!(counter(&st, "guest_http") >= 2 && counter(&st, "admin") >= 4, "{:#}", st["policy"]);
    assert!(st["policy"]["drops"]["default"]["packets"].as_u64() >= Some(2), "{:#}", st["policy"]);
    // Rules for servers are not in force on the guest.
    let guest = m.status(0);
    assert_eq!(guest["policy"]["state"], "enforced");
    assert!(guest["policy"]["rules"].as_array().unwrap().iter().all(|r| r["active"] == false), "{guest:#}");
    // `weft nodes` shows each node's groups.
    let nodes = m.query(0, "nodes");
    let admin = nodes["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "node3").expect("node3");
    assert_eq!(admin["groups"], "admins", "{nodes:#}");

    // The relay n1 sends to n2's drop box through its per-hop tunnel, once
    // from the admin's address (a spoof) and once from an address that is
    // no node's (the control: it must arrive, so the spoof's absence means
    // something). Policy routing sends both into the tunnel towards n2.
    let tunnel =
        m.routes(1).get(&format!("{t2}/128")).cloned().expect("n1's route to n2's transport address");
    assert!(tunnel.starts_with("weft") && tunnel != "weft-e2e", "{tunnel}");
    let control = "fd77:5ec::1";
    // n1's own transport address as source: unattributable (it would slip
    // past src_group rules), refused per hop too.
    let t1 = m.transport_address(1);
    for src in [s.mesh[3].as_str(), control, t1.as_str()] {
        if src != t1 {
            m.net.exec_ok(1, &["ip", "-6", "addr", "add", &format!("{src}/128"), "dev", "lo", "nodad"]);
        }
        m.net.exec_ok(1, &["ip", "-6", "rule", "add", "from", src, "lookup", "77", "pref", "100"]);
    }
    m.net.exec_ok(
        1,
        &["ip", "-6", "route", "add", &format!("{}/128", s.mesh[2]), "dev", &tunnel, "table", "77"],
    );
    let spoofed_before = m.status(2)["policy"]["drops"]["spoofed"]["packets"].as_u64().unwrap_or(0);
    let send = |src: &str, text: &str| {
        let to = format!("UDP6-SENDTO:[{}]:5000,bind=[{src}]", s.mesh[2]);
        let mut c = m.net.in_ns(1, &["socat", "-u", "-", &to]);
        c.stdin(std::process::Stdio::piped());
        let mut child = c.spawn().expect("socat");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    };
    let read = || std::fs::read_to_string(&inbox).unwrap_or_default();
    await_or_fail(m, Duration::from_secs(10), "the control datagram arrives", &[1, 2], || {
        send(s.mesh[3].as_str(), "spoof\n");
        send(&t1, "transport\n");
        send(control, "control\n");
        read().contains("control")
    });
    assert!(!read().contains("spoof"), "the relay's spoof of the admin's address got in: {}", read());
    assert!(!read().contains("transport"), "a datagram from a transport address got in per hop: {}", read());
    let spoofed = m.status(2)["policy"]["drops"]["spoofed"]["packets"].as_u64().unwrap_or(0);
    assert!(spoofed > spoofed_before, "spoofed counter did not move: {spoofed_before} -> {spoofed}");

    // A reload that lets guests in on 443 takes effect at once.
    let open = POLICY.replace("\toption dest_port '443'\n", "").replace(
        "\tlist dest_port '443'\n\toption action 'drop'",
        "\tlist dest_port '443'\n\toption action 'accept'",
    );
    write_conf(m, 2, &s.confs[2], &open);
    m.reload(2);
    await_or_fail(m, Duration::from_secs(10), "guest n0 -> n2 :443 after the reload", &[2], || {
        connects(m, 0, &s.mesh[2], 443)
    });
    drop(servers);
}

#[test]
fn a_clean_stop_removes_the_table_and_a_crash_leftover_is_replaced() {
    require_mesh_tools!();
    let mut s = star();
    let m = &mut s.m;
    let has_table =
        |m: &Mesh, i: usize| m.net.exec(i, &["nft", "list", "table", "inet", "weft"]).status.success();
    await_or_fail(m, CONVERGE, "n2's policy enforced", &[2], || m.status(2)["policy"]["state"] == "enforced");
    assert!(has_table(m, 2));
    // The signing epoch is kept beside the key and rises with each start.
    let epoch_file = s.confs[2].key_file.with_file_name("epoch");
    let epoch =
        |f: &std::path::Path| std::fs::read_to_string(f).ok().and_then(|t| t.trim().parse::<u64>().ok());
    let first = epoch(&epoch_file).expect("no epoch file beside the key");
    m.kill(2);
    assert!(has_table(m, 2), "a crash leaves the table (the next start replaces it)");
    // A mark in the leftover table: the restart must replace it, not merge.
    m.net.exec_ok(2, &["nft", "add", "counter", "inet", "weft", "leftover_mark"]);
    // An epoch ahead of the wall clock (as a run that signed after a clock
    // jump would leave): only reading the file can take the next run above it.
    let ahead = first + 1_000_000;
    std::fs::write(&epoch_file, format!("{ahead}\n")).unwrap();
    m.start(2);
    await_or_fail(m, CONVERGE, "n2's policy enforced after the restart", &[2], || {
        m.status(2)["policy"]["state"] == "enforced" && m.status(2)["policy"]["applies"].as_u64() >= Some(1)
    });
    let counters = m.net.exec_ok(2, &["nft", "list", "counters", "table", "inet", "weft"]);
    assert!(
        !String::from_utf8_lossy(&counters.stdout).contains("leftover_mark"),
        "the leftover table was merged into, not replaced"
    );
    // (Above it by one, plus one per change of what it announces at one seqno.)
    let next = epoch(&epoch_file);
    assert!(
        next > Some(ahead) && next < Some(ahead + 100),
        "the next run did not sign above the kept epoch: {next:?}"
    );
    m.stop(2);
    assert!(!has_table(m, 2), "a clean stop leaves table inet weft behind");
}

/// The same decisions with 15 % of every datagram on the relay's raw links
/// lost, both ways: the admin gets in, the guest's 443 is dropped by its
/// rule (its counter moves: not a loss), 80 still opens.
#[test]
fn group_policy_holds_on_lossy_links() {
    require_mesh_tools!();
    require_cmd!("socat");
    let s = star();
    let m = &s.m;
    for peer in [0, 2, 3] {
        let dev = m.net.dev(1, peer);
        m.net.nft(
            1,
            &format!(
                "table inet loss_{dev} {{\n chain i {{ type filter hook input priority -5; iifname \"{dev}\" numgen random mod 100 < 15 drop; }}\n chain o {{ type filter hook output priority -5; oifname \"{dev}\" numgen random mod 100 < 15 drop; }}\n}}\n"
            ),
        );
    }
    await_or_fail(m, Duration::from_secs(90), "n0 and n3 have n2 as end-to-end peer", &[0, 2, 3], || {
        [0, 3]
            .iter()
            .all(|&i| m.routes(i).get(&format!("{}/128", s.mesh[2])).is_some_and(|d| d == "weft-e2e"))
    });
    let servers = tcp_servers(m);
    let dst = s.mesh[2].clone();
    await_or_fail(m, Duration::from_secs(60), "admin n3 -> n2 :443 through loss", &[2, 3], || {
        connects(m, 3, &dst, 443)
    });
    await_or_fail(m, Duration::from_secs(60), "guest n0 -> n2 :80 through loss", &[0, 2], || {
        connects(m, 0, &dst, 80)
    });
    // Loss can eat a whole attempt's SYNs (or a route for a moment), so the
    // guest keeps trying until a SYN reaches n2's rule; none may get through.
    await_or_fail(m, Duration::from_secs(60), "a guest SYN to :443 meets its rule at n2", &[0, 2], || {
        assert!(!connects(m, 0, &dst, 443), "guest n0 -> n2 :443 got through");
        counter(&m.status(2), "guest_https") >= 1
    });
    drop(servers);
}

/// The field's bad day for the enforcer: n2's wall clock reads 1970 (no RTC,
/// no NTP yet) and, once the mesh is up, three floods of 1 000 datagrams/s
/// each arrive at it: the guest n0 through its end-to-end session (UDP to a
/// port no rule opens: the default drop), the relay n1 per hop from the
/// admin's address (a spoof) and n1 per hop with junk to n2's end-to-end
/// WireGuard port. Throughout, the admin opens 443, the guest opens 80 and
/// not 443; the floods are counted where the policy says; n2 keeps its
/// end-to-end peers and answers its control socket.
#[test]
fn group_policy_holds_at_1970_under_a_flood() {
    require_mesh_tools!();
    require_cmd!("socat");
    require_cmd!("faketime");
    let s =
        star_wrapped(&["", "", "env FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f '@1970-01-01 00:00:00'", ""]);
    let m = &s.m;
    let clock = m.status(2)["trust"]["clock"].clone();
    assert!(clock["wall"].as_str().is_some_and(|w| w.starts_with("1970-")), "n2's clock: {clock:#}");
    await_or_fail(m, CONVERGE, "every node has three end-to-end peers", &[0, 1, 2, 3], || {
        (0..4).all(|i| m.status(i)["end_to_end"]["peers"] == 3)
    });
    await_or_fail(m, Duration::from_secs(10), "n2's policy enforced at 1970", &[2], || {
        m.status(2)["policy"]["state"] == "enforced"
    });
    let servers = tcp_servers(m);
    let dst = s.mesh[2].clone();
    await_or_fail(m, Duration::from_secs(20), "admin n3 -> n2 :443 at 1970", &[2, 3], || {
        connects(m, 3, &dst, 443)
    });
    assert!(!connects(m, 0, &dst, 443), "guest n0 -> n2 :443 got through (n2 at 1970)");

    // The relay's spoof: the admin's address on n1, routed into the per-hop
    // tunnel towards n2 (policy routing, as in the first test).
    let t2 = m.transport_address(2);
    let tunnel =
        m.routes(1).get(&format!("{t2}/128")).cloned().expect("n1's route to n2's transport address");
    m.net.exec_ok(1, &["ip", "-6", "addr", "add", &format!("{}/128", s.mesh[3]), "dev", "lo", "nodad"]);
    m.net.exec_ok(1, &["ip", "-6", "rule", "add", "from", &s.mesh[3], "lookup", "77", "pref", "100"]);
    m.net.exec_ok(
        1,
        &["ip", "-6", "route", "add", &format!("{}/128", s.mesh[2]), "dev", &tunnel, "table", "77"],
    );
    let sa = |a: &str, port: u16| std::net::SocketAddr::new(a.parse().unwrap(), port);
    let drops = |what: &str| m.status(2)["policy"]["drops"][what]["packets"].as_u64().unwrap_or(0);
    let (default_before, spoofed_before) = (drops("default"), drops("spoofed"));
    let flood_start = std::time::Instant::now();
    let floods = [
        UdpFlood::start(&m.net, 0, sa(&s.mesh[0], 0), sa(&dst, 9), 1000),
        UdpFlood::start(&m.net, 1, sa(&s.mesh[3], 0), sa(&dst, 5000), 1000),
        UdpFlood::start(&m.net, 1, sa(&m.transport_address(1), 0), sa(&t2, 6699), 1000),
    ];
    await_or_fail(m, Duration::from_secs(30), "admin n3 -> n2 :443 under the flood", &[2, 3], || {
        connects(m, 3, &dst, 443)
    });
    await_or_fail(m, Duration::from_secs(30), "guest n0 -> n2 :80 under the flood", &[0, 2], || {
        connects(m, 0, &dst, 80)
    });
    await_or_fail(
        m,
        Duration::from_secs(30),
        "a guest SYN to :443 meets its rule under the flood",
        &[0, 2],
        || {
            assert!(!connects(m, 0, &dst, 443), "guest n0 -> n2 :443 got through under the flood");
            counter(&m.status(2), "guest_https") >= 1
        },
    );
    // At least 10 s of flood: the admin keeps getting in, the guest not.
    while flood_start.elapsed() < Duration::from_secs(10) {
        await_or_fail(m, Duration::from_secs(10), "admin n3 -> n2 :443, flood going on", &[2, 3], || {
            connects(m, 3, &dst, 443)
        });
        assert!(!connects(m, 0, &dst, 443), "guest n0 -> n2 :443 got through under the flood");
    }
    let flood_time = flood_start.elapsed();
    let sent: Vec<u64> = floods.into_iter().map(NsSender::stop).collect();
    assert!(sent.iter().all(|n| *n >= 8000), "the floods sent too little: {sent:?} in {flood_time:?}");
    let (default, spoofed) = (drops("default") - default_before, drops("spoofed") - spoofed_before);
    eprintln!(
        "floods sent {sent:?} in {flood_time:?}; n2 dropped {default} by default and {spoofed} as spoofed"
    );
    // Most of each flood reaches n2 (wireguard-go may shed some under load).
    assert!(default >= sent[0] / 2, "the guest's flood was not dropped by default: {default} of {}", sent[0]);
    assert!(spoofed >= sent[1] / 2, "the spoofed flood was not counted: {spoofed} of {}", sent[1]);
    let st = m.status(2);
    assert_eq!(
        st["end_to_end"]["peers"], 3,
        "n2 lost end-to-end peers under the flood: {:#}",
        st["end_to_end"]
    );
    assert_eq!(st["policy"]["state"], "enforced", "{:#}", st["policy"]);
    drop(servers);
}
