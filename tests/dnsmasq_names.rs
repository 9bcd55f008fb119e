//! Node names in DNS, proved with the real dnsmasq (Debian's dnsmasq-base)
//! on a namespace mesh of three credentialed weft daemons: node 0's daemon
//! writes its hosts file into the directory dnsmasq reads (`--addn-hosts`,
//! as OpenWrt's /tmp/hosts) and finds dnsmasq as it would on OpenWrt, by its
//! pid file in /var/run/dnsmasq/ (a private tmpfs in the daemon's mount
//! namespace, where dnsmasq is started too). `node2.mesh` resolves to node
//! 2's mesh address, dnsmasq re-reads the file exactly when weft rewrites
//! it, which is only when its content changes, and after node 2 is revoked
//! its name stops resolving; a clean stop removes the names.
//!
//! Needs root, wireguard-go, dnsmasq and dig (scripts/install-deps.sh).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::mesh::{mesh_address_of, Ca, Mesh, NodeConf, NodeId};
use common::netns::Net;
use weft::sim::Topology;

const CONVERGE: Duration = Duration::from_secs(40);

/// `dig AAAA NAME` against node `i`'s dnsmasq: the status and the addresses.
fn lookup(m: &Mesh, i: usize, name: &str) -> (String, Vec<String>) {
    let out = m.net.exec(i, &["dig", "@127.0.0.1", "-p", "53", "+time=1", "+tries=1", "AAAA", name]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_else(|| format!("no answer: {text}"));
    let addrs = text
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[3] == "AAAA").then(|| f[4].to_string())
        })
        .collect();
    (status, addrs)
}

/// How often dnsmasq has read the hosts file (it logs each read).
fn reads(log: &str, file: &Path) -> usize {
    let needle = format!("read {} - ", file.display());
    log.lines().filter(|l| l.contains(&needle)).count()
}

fn await_or_fail(m: &Mesh, timeout: Duration, what: &str, nodes: &[usize], cond: impl FnMut() -> bool) {
    if Net::wait_until(timeout, cond).is_none() {
        let logs: Vec<String> = nodes.iter().map(|&i| m.log_tail(i, 40)).collect();
        panic!("timed out after {timeout:?}: {what}\n{}", logs.join("\n"));
    }
}

#[test]
fn dnsmasq_resolves_node_names_until_revocation() {
    require_mesh_tools!();
    for tool in ["dnsmasq", "dig"] {
        assert!(common::netns::have(tool), "{tool} is needed: run scripts/install-deps.sh");
    }
    // The mount point of the private pid-file directory.
    std::fs::create_dir_all("/run/dnsmasq").expect("/run/dnsmasq");
    let mut m = Mesh::new(&Topology::line(3));
    let ca = Ca::init(m.net.root.join("ca"));
    let hosts_dir = m.dir(0).join("hosts");
    std::fs::create_dir_all(&hosts_dir).unwrap();
    let hosts_file = hosts_dir.join("weft");
    let mut ids = Vec::new();
    let mut creds = Vec::new();
    for i in 0..3 {
        let id = NodeId::new(m.dir(i), &format!("node{i}"));
        let cred = ca.sign(&id, &[], None);
        let ifaces: Vec<String> = match i {
            0 => vec![m.net.dev(0, 1)],
            1 => vec![m.net.dev(1, 0), m.net.dev(1, 2)],
            _ => vec![m.net.dev(2, 1)],
        };
        let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        let mut conf = NodeConf::new(&ca, &id, &cred, &ifaces);
        if i == 0 {
            conf.hosts_file = Some(hosts_file.clone());
        }
        m.write_conf(i, &conf);
        ids.push(id);
        creds.push(cred);
    }
    let mesh: Vec<String> = creds.iter().map(|c| mesh_address_of(c)).collect();
    let dns_log = m.dir(0).join("dnsmasq.log");
    // dnsmasq as OpenWrt runs it: its pid file in /var/run/dnsmasq, extra
    // hosts files from a directory, and the mesh domain answered locally.
    let dnsmasq = format!(
        "mount -t tmpfs tmpfs /run/dnsmasq && dnsmasq --port=53 --listen-address=127.0.0.1 --bind-interfaces \
         --no-resolv --no-hosts --no-negcache --local=/mesh/ --user=root --group=root \
         --addn-hosts={} --pid-file=/var/run/dnsmasq/dnsmasq.cfg01411c.pid --log-facility={}",
        hosts_dir.display(),
        dns_log.display()
    );
    m.start_with(0, &dnsmasq);
    for i in 1..3 {
        m.start(i);
    }
    let dns = || std::fs::read_to_string(&dns_log).unwrap_or_default();
    assert!(dns().contains("started, version"), "dnsmasq did not start:\n{}", dns());

    await_or_fail(&m, CONVERGE, "node2.mesh resolves to node 2's mesh address at node 0", &[0, 1, 2], || {
        lookup(&m, 0, "node2.mesh").1 == [mesh[2].clone()]
    });
    for (k, addr) in mesh.iter().enumerate() {
        assert_eq!(
            lookup(&m, 0, &format!("node{k}.mesh")),
            ("NOERROR".to_string(), vec![addr.clone()]),
            "node{k}"
        );
    }
    assert_eq!(lookup(&m, 0, "node9.mesh").0, "NXDOMAIN");
    let text = std::fs::read_to_string(&hosts_file).unwrap();
    let mut want: Vec<String> = (0..3).map(|k| format!("{} node{k}.mesh", mesh[k])).collect();
    want.sort_by(|a, b| a.split(' ').nth(1).cmp(&b.split(' ').nth(1)));
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, want, "hosts file:\n{text}");

    // dnsmasq started before the file existed, and read it once for each
    // write weft made (each found dnsmasq through the pid file).
    let writes: Vec<String> = m
        .log(0)
        .lines()
        .filter(|l| l.contains(&format!("{}: ", hosts_file.display())))
        .map(str::to_string)
        .collect();
    assert!(!writes.is_empty(), "no hosts file write logged:\n{}", m.log_tail(0, 40));
    assert!(writes.iter().all(|l| l.contains("told 1 dnsmasq")), "{writes:#?}");
    await_or_fail(&m, Duration::from_secs(5), "dnsmasq re-read the file for every write", &[0], || {
        reads(&dns(), &hosts_file) == writes.len()
    });

    // A reload that changes nothing re-checks every node and rewrites
    // nothing: the file stays the same inode, dnsmasq is not disturbed.
    let inode = std::fs::metadata(&hosts_file).unwrap().ino();
    let reads_before = reads(&dns(), &hosts_file);
    let reloads = m.log(0).matches("reloading").count();
    m.reload(0);
    await_or_fail(&m, Duration::from_secs(5), "node 0 reloads", &[0], || {
        m.log(0).matches("reloading").count() > reloads
    });
    m.status(0); // answered after the reload's work is done
    assert_eq!(std::fs::metadata(&hosts_file).unwrap().ino(), inode, "unchanged names rewrote the file");
    assert_eq!(reads(&dns(), &hosts_file), reads_before, "dnsmasq was told without a change");

    // Node 2 is revoked: its name goes, the others stay.
    let revoked = ids[0].dir.join("revoked");
    ca.revoke(&ids[2].public, &revoked);
    std::fs::copy(&revoked, ids[1].dir.join("revoked")).unwrap();
    m.reload(0);
    m.reload(1);
    await_or_fail(
        &m,
        Duration::from_secs(10),
        "node2.mesh stops resolving after the revocation",
        &[0],
        || lookup(&m, 0, "node2.mesh").0 == "NXDOMAIN",
    );
    for (k, addr) in mesh.iter().enumerate().take(2) {
        assert_eq!(
            lookup(&m, 0, &format!("node{k}.mesh")).1,
            vec![addr.clone()],
            "node{k} after the revocation"
        );
    }
    let text = std::fs::read_to_string(&hosts_file).unwrap();
    assert!(!text.contains("node2") && !text.contains(&mesh[2]), "{text}");
    assert_eq!(reads(&dns(), &hosts_file), reads_before + 1, "one re-read for the one change");

    // A clean stop takes the names away.
    m.stop(0);
    assert!(!hosts_file.exists(), "the hosts file outlives the daemon");
    await_or_fail(&m, Duration::from_secs(5), "names go with the daemon", &[0], || {
        lookup(&m, 0, "node1.mesh").0 == "NXDOMAIN"
    });
}
