//! Zero-trust mesh test beds on top of [`super::netns`]: a network CA, node
//! keys and credentials made with the real `weft` CLI, daemon configurations,
//! daemons started in private mount namespaces (wireguard-go always puts its
//! UAPI socket in /run/wireguard, which every namespace shares otherwise),
//! the daemon's views read over its control socket, and packet captures
//! classified frame by frame.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netns::Net;
use weft::sim::Topology;

/// The weft binary under test.
pub fn weft() -> &'static str {
    env!("CARGO_BIN_EXE_weft")
}

/// Runs `weft ARGS`, panics with its stderr unless it succeeds.
pub fn run_weft(args: &[&str]) -> Output {
    let out = Command::new(weft()).args(args).output().expect("run weft");
    assert!(
        out.status.success(),
        "weft {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Ends the calling test unless it can run: root for namespaces and the
/// tools the mesh beds use (the one rule of [`super::require`]).
#[macro_export]
macro_rules! require_mesh_tools {
    () => {
        $crate::require_netns!();
        $crate::require_cmd!("wireguard-go", "dumpcap", "tshark", "nft", "ping");
    };
}

/// A network CA made with `weft ca init`.
pub struct Ca {
    pub dir: PathBuf,
    /// Its public key, as `list ca_public_key` takes it.
    pub public: String,
}

impl Ca {
    pub fn init(dir: PathBuf) -> Ca {
        run_weft(&["ca", "init", "--out", path_str(&dir)]);
        let public = std::fs::read_to_string(dir.join("ca.pub")).expect("ca.pub").trim().to_string();
        Ca { dir, public }
    }

    /// `weft ca sign` for `id`, granting `prefixes`; `valid_for` as the CLI
    /// takes it (default one year). Returns the credential file.
    pub fn sign(&self, id: &NodeId, prefixes: &[&str], valid_for: Option<&str>) -> PathBuf {
        self.sign_in_groups(id, prefixes, &[], valid_for)
    }

    /// [`Self::sign`], the credential carrying `groups`.
    pub fn sign_in_groups(
        &self,
        id: &NodeId,
        prefixes: &[&str],
        groups: &[&str],
        valid_for: Option<&str>,
    ) -> PathBuf {
        let out = id.dir.join(format!("{}.cred", id.name));
        let mut args = vec!["ca", "sign", "--ca", path_str(&self.dir), "--name", &id.name];
        args.extend(["--public-key", &id.public, "--signing-key", &id.signing, "--out", path_str(&out)]);
        for p in prefixes {
            args.extend(["--prefix", p]);
        }
        for g in groups {
            args.extend(["--group", g]);
        }
        if let Some(v) = valid_for {
            args.extend(["--valid-for", v]);
        }
        run_weft(&args);
        out
    }

    /// `weft ca revoke`: adds `public` to the revocation list `out`.
    pub fn revoke(&self, public: &str, out: &Path) {
        run_weft(&[
            "ca",
            "revoke",
            "--ca",
            path_str(&self.dir),
            "--public-key",
            public,
            "--out",
            path_str(out),
        ]);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// A node's WireGuard identity, made with `weft genkey` and `weft pubkey`.
#[derive(Clone, Debug)]
pub struct NodeId {
    pub name: String,
    pub dir: PathBuf,
    pub key_file: PathBuf,
    pub public: String,
    /// Its key for origin-signed announcements (`weft pubkey --signing`).
    pub signing: String,
}

impl NodeId {
    pub fn new(dir: &Path, name: &str) -> NodeId {
        std::fs::create_dir_all(dir).expect("key dir");
        let key = stdout_line(&run_weft(&["genkey"]));
        let key_file = dir.join(format!("{name}.key"));
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_file)
                .expect("key file");
            writeln!(f, "{key}").expect("write key");
        }
        let pubkey = |extra: &[&str]| {
            let mut child = Command::new(weft())
                .arg("pubkey")
                .args(extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("weft pubkey");
            {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(key.as_bytes()).expect("write stdin");
            }
            let out = child.wait_with_output().expect("weft pubkey");
            assert!(out.status.success(), "weft pubkey {extra:?} failed");
            stdout_line(&out)
        };
        let (public, signing) = (pubkey(&[]), pubkey(&["--signing"]));
        NodeId { name: name.to_string(), dir: dir.to_path_buf(), key_file, public, signing }
    }
}

/// `weft cert show --json FILE` (no signature check).
pub fn cert_info(file: &Path) -> Value {
    let out = run_weft(&["cert", "show", "--json", path_str(file)]);
    serde_json::from_slice(&out.stdout).expect("cert show --json is JSON")
}

/// A static peer (`config peer`).
#[derive(Clone, Debug)]
pub struct PeerConf {
    pub name: String,
    pub public_key: String,
    /// `host:port`, the port being the remote weft's discovery port 6698.
    pub endpoint: String,
}

/// What one node's daemon is configured with.
#[derive(Clone, Debug)]
pub struct NodeConf {
    pub key_file: PathBuf,
    /// Absent file: the node has no credential.
    pub credential_file: PathBuf,
    pub ca_keys: Vec<String>,
    pub revocation_file: PathBuf,
    pub mesh_prefix: Option<String>,
    /// Raw interfaces with `wireguard '1'` (discovery, one tunnel per neighbour).
    pub mesh_ifaces: Vec<String>,
    /// Interfaces with plain Babel (`wireguard '0'`, babeld/BIRD compatible).
    pub plain_ifaces: Vec<String>,
    pub announces: Vec<String>,
    pub peers: Vec<PeerConf>,
    /// Seconds; the update interval is four of them.
    pub hello_interval: u32,
    /// The hosts file for dnsmasq; `None`: off (the default one is global).
    pub hosts_file: Option<PathBuf>,
    /// More `config weft 'main'` lines, e.g. "option end_to_end '0'".
    pub main_extra: Vec<String>,
}

/// The mesh prefix the tests' nodes derive their addresses in.
pub const MESH_PREFIX: &str = "fd42:77:1::/48";

impl NodeConf {
    /// A node of the network of `ca` with identity `id` and credential
    /// `cred` (a path that need not exist), discovering on `ifaces`.
    pub fn new(ca: &Ca, id: &NodeId, cred: &Path, ifaces: &[&str]) -> NodeConf {
        NodeConf {
            key_file: id.key_file.clone(),
            credential_file: cred.to_path_buf(),
            ca_keys: vec![ca.public.clone()],
            revocation_file: id.dir.join("revoked"),
            mesh_prefix: Some(MESH_PREFIX.to_string()),
            mesh_ifaces: ifaces.iter().map(|s| s.to_string()).collect(),
            plain_ifaces: Vec::new(),
            announces: Vec::new(),
            peers: Vec::new(),
            hello_interval: 1,
            hosts_file: None,
            main_extra: Vec::new(),
        }
    }

    /// The UCI text, with the node's state and control socket in `dir`.
    pub fn render(&self, dir: &Path) -> String {
        let mut s = String::new();
        let p = |p: &Path| path_str(p).to_string();
        writeln!(s, "config weft 'main'").unwrap();
        writeln!(s, "\toption hello_interval '{}'", self.hello_interval).unwrap();
        writeln!(s, "\toption state_file '{}'", p(&dir.join("state"))).unwrap();
        writeln!(s, "\toption control_socket '{}'", p(&dir.join("weft.sock"))).unwrap();
        writeln!(s, "\toption log_level 'debug'").unwrap();
        writeln!(s, "\toption metrics_file '{}'", p(&dir.join("weft.prom"))).unwrap();
        match &self.hosts_file {
            Some(h) => writeln!(s, "\toption hosts_file '{}'", p(h)).unwrap(),
            None => writeln!(s, "\toption hosts_file '0'").unwrap(),
        }
        writeln!(s, "\toption wireguard_backend 'userspace'").unwrap();
        writeln!(s, "\toption private_key_file '{}'", p(&self.key_file)).unwrap();
        writeln!(s, "\toption credential_file '{}'", p(&self.credential_file)).unwrap();
        writeln!(s, "\toption revocation_file '{}'", p(&self.revocation_file)).unwrap();
        for k in &self.ca_keys {
            writeln!(s, "\tlist ca_public_key '{k}'").unwrap();
        }
        if let Some(m) = &self.mesh_prefix {
            writeln!(s, "\toption mesh_prefix '{m}'").unwrap();
        }
        for l in &self.main_extra {
            writeln!(s, "\t{l}").unwrap();
        }
        for i in &self.mesh_ifaces {
            writeln!(s, "config interface '{i}'\n\toption ifname '{i}'\n\toption wireguard '1'").unwrap();
        }
        for i in &self.plain_ifaces {
            writeln!(s, "config interface '{i}'\n\toption ifname '{i}'\n\toption wireguard '0'").unwrap();
        }
        for a in &self.announces {
            writeln!(s, "config announce\n\toption prefix '{a}'").unwrap();
        }
        for peer in &self.peers {
            writeln!(
                s,
                "config peer '{}'\n\toption public_key '{}'\n\toption endpoint '{}'",
                peer.name, peer.public_key, peer.endpoint
            )
            .unwrap();
        }
        s
    }
}

/// Namespaces running weft daemons in zero-trust mode.
pub struct Mesh {
    pub net: Net,
}

impl Mesh {
    pub fn new(topo: &Topology) -> Mesh {
        // wireguard-go's socket directory must exist to mount a private
        // tmpfs over it in each daemon's mount namespace.
        std::fs::create_dir_all("/run/wireguard").expect("/run/wireguard");
        Mesh { net: Net::new(topo) }
    }

    /// Daemons on a test bed built some other way (e.g.
    /// [`Net::with_kernel_addresses`]).
    pub fn on(net: Net) -> Mesh {
        std::fs::create_dir_all("/run/wireguard").expect("/run/wireguard");
        Mesh { net }
    }

    /// A mesh of `names` nodes and no links (add segments or links later).
    pub fn with_nodes(names: &[&str]) -> Mesh {
        let topo = Topology { names: names.iter().map(|s| s.to_string()).collect(), links: Vec::new() };
        Mesh::new(&topo)
    }

    pub fn dir(&self, i: usize) -> &Path {
        self.net.dir(i)
    }

    pub fn sock(&self, i: usize) -> PathBuf {
        self.dir(i).join("weft.sock")
    }

    pub fn conf_path(&self, i: usize) -> PathBuf {
        self.dir(i).join("weft.conf")
    }

    pub fn write_conf(&self, i: usize, conf: &NodeConf) {
        std::fs::write(self.conf_path(i), conf.render(self.dir(i))).expect("write config");
    }

    /// Starts node `i`'s daemon in a private mount namespace and waits
    /// until its control socket answers.
    pub fn start(&mut self, i: usize) {
        self.start_with(i, "true");
    }

    /// As [`Mesh::start`], running the shell command `prelude` first in the
    /// daemon's mount namespace (e.g. to start a program beside it).
    pub fn start_with(&mut self, i: usize, prelude: &str) {
        self.start_wrapped(i, prelude, "");
    }

    /// As [`Mesh::start_with`], the daemon run by the command `wrapper`
    /// (e.g. `faketime ...`; empty: run directly).
    pub fn start_wrapped(&mut self, i: usize, prelude: &str, wrapper: &str) {
        assert!(self.net.nodes[i].daemon.is_none(), "node {i} already runs a daemon");
        let conf = self.conf_path(i);
        let script = format!(
            "mount -t tmpfs tmpfs /run/wireguard && {prelude} && exec {wrapper} {} daemon -c {}",
            weft(),
            path_str(&conf)
        );
        let child = self.net.spawn(i, &["sh", "-c", &script], "weft.log");
        self.net.nodes[i].daemon = Some(child);
        let mut exited = None;
        let ready = Net::wait_until(Duration::from_secs(20), || {
            exited = self.net.nodes[i].daemon.as_mut().and_then(|c| c.try_wait().ok().flatten());
            exited.is_some() || self.try_query(i, "status").is_some()
        });
        if let Some(status) = exited {
            self.net.nodes[i].daemon = None;
            panic!("daemon {i} exited ({status}):\n{}", self.log_tail(i, 30));
        }
        assert!(
            ready.is_some(),
            "daemon {i} did not answer on its control socket:\n{}",
            self.log_tail(i, 30)
        );
    }

    fn daemon_pid(&self, i: usize) -> i32 {
        self.net.nodes[i].daemon.as_ref().unwrap_or_else(|| panic!("node {i} runs no daemon")).id() as i32
    }

    /// Sends `sig` to node `i`'s daemon.
    pub fn signal(&self, i: usize, sig: i32) {
        let r = unsafe { libc::kill(self.daemon_pid(i), sig) };
        assert_eq!(r, 0, "kill({sig}) of daemon {i}");
    }

    /// SIGHUP: reload the configuration and trust material.
    pub fn reload(&self, i: usize) {
        self.signal(i, libc::SIGHUP);
    }

    /// SIGKILL (a crash), and waits (bounded) for the daemon to be gone.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, libc::SIGKILL);
        let mut child = self.net.nodes[i].daemon.take().expect("daemon");
        let gone = Net::wait_until(Duration::from_secs(10), || child.try_wait().ok().flatten().is_some());
        assert!(gone.is_some(), "daemon {i} outlived SIGKILL");
    }

    /// SIGTERM, and waits (bounded) for the daemon to exit.
    pub fn stop(&mut self, i: usize) {
        self.signal(i, libc::SIGTERM);
        let mut child = self.net.nodes[i].daemon.take().expect("daemon");
        let exited = Net::wait_until(Duration::from_secs(10), || child.try_wait().ok().flatten().is_some());
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("daemon {i} did not stop on SIGTERM:\n{}", self.log_tail(i, 30));
        }
    }

    /// `weft WHAT --json -s SOCK`, parsed; `None` if the daemon does not answer.
    pub fn try_query(&self, i: usize, what: &str) -> Option<Value> {
        let sock = self.sock(i);
        let out = Command::new(weft()).args([what, "--json", "-s", path_str(&sock)]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn query(&self, i: usize, what: &str) -> Value {
        self.try_query(i, what)
            .unwrap_or_else(|| panic!("weft {what} of node {i} failed:\n{}", self.log_tail(i, 30)))
    }

    pub fn status(&self, i: usize) -> Value {
        self.query(i, "status")
    }

    /// weft's per-hop tunnel interfaces in node `i` (not the end-to-end
    /// interface `weft-e2e`): name → ifindex.
    pub fn tunnels(&self, i: usize) -> BTreeMap<String, u64> {
        let out = self.net.exec_ok(i, &["ip", "-j", "link", "show"]);
        let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
        links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| Some((l["ifname"].as_str()?.to_string(), l["ifindex"].as_u64()?)))
            .filter(|(n, _)| n.starts_with("weft") && n != "weft-e2e")
            .collect()
    }

    /// Destinations of weft's forwarding routes (protocol 119) in node `i`,
    /// both families, with the device each goes through.
    pub fn routes(&self, i: usize) -> BTreeMap<String, String> {
        super::peers::kernel_routes(&self.net, i, "119")
            .into_iter()
            .map(|r| {
                // `ip -j` writes a host route without its length.
                let dst = match (r.dst.contains('/'), r.dst.contains(':')) {
                    (true, _) => r.dst,
                    (false, true) => format!("{}/128", r.dst),
                    (false, false) => format!("{}/32", r.dst),
                };
                (dst, r.dev)
            })
            .collect()
    }

    /// Node `i`'s transport address (end to end; from `weft status`).
    pub fn transport_address(&self, i: usize) -> String {
        let st = self.status(i);
        st["end_to_end"]["transport_address"]
            .as_str()
            .unwrap_or_else(|| panic!("node {i} has no transport address (end to end off?): {st:#}"))
            .to_string()
    }

    /// Node `i`'s mesh address (from `weft status`).
    pub fn mesh_address(&self, i: usize) -> String {
        self.status(i)["trust"]["mesh_address"].as_str().expect("mesh_address in status").to_string()
    }

    pub fn log(&self, i: usize) -> String {
        self.net.log(i, "weft.log")
    }

    /// The last `n` lines of node `i`'s daemon log, for failure messages.
    pub fn log_tail(&self, i: usize, n: usize) -> String {
        let log = self.log(i);
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- {} log (last {n} lines) ---\n{}",
            self.net.nodes[i].name,
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }
}

/// The mesh address a node with `public` gets in [`MESH_PREFIX`].
pub fn mesh_address_of(cred: &Path) -> String {
    let out = run_weft(&["cert", "show", "--json", "--mesh-prefix", MESH_PREFIX, path_str(cred)]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("cert show --json");
    v["mesh_address"].as_str().expect("mesh_address").to_string()
}

/// One captured frame, as tshark dissects it.
#[derive(Clone, Debug)]
pub struct Frame {
    pub number: u64,
    pub iface: String,
    pub protocols: String,
    /// Source IP address (either family).
    pub src: String,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmpv6_type: Option<u8>,
    pub icmp_type: Option<u8>,
    pub payload: Vec<u8>,
    /// Undissected data (e.g. an ICMP echo's payload), in hex.
    pub data_hex: String,
}

/// What a frame on a raw mesh link is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// weft's discovery or handshake (UDP 6698, "WEFT" magic).
    Discovery,
    /// A WireGuard message of this type (1-3 handshake, 4 transport data).
    WireGuard(u8),
    /// ARP, IPv6 neighbour discovery or multicast listener messages.
    LinkControl,
    /// An ICMPv6 error (e.g. port unreachable: a WireGuard handshake that
    /// arrived before its tunnel existed) quoting a datagram of this kind.
    IcmpErrorAbout(String),
    /// Anything else: must not appear on a raw mesh link.
    Other(String),
}

/// The first WireGuard listen port (weft's default) and how many follow.
pub const WG_PORT_BASE: u16 = 51820;
pub const WG_PORT_COUNT: u16 = 80;

impl Frame {
    pub fn kind(&self) -> FrameKind {
        let layers: Vec<&str> = self.protocols.split(':').collect();
        let has = |l: &str| layers.contains(&l);
        if has("arp") {
            return FrameKind::LinkControl;
        }
        if has("icmpv6") {
            // MLD (130-132, 143), router and neighbour discovery (133-137);
            // an ICMPv6 message quoting a UDP datagram is not link control.
            return match self.icmpv6_type {
                Some(130..=137 | 143) if !has("udp") => FrameKind::LinkControl,
                // Errors (types 1-4) quote the offending datagram: allowed
                // only about discovery or WireGuard, which leak nothing.
                Some(1..=4) if has("udp") => match self.udp_kind() {
                    FrameKind::Discovery => FrameKind::IcmpErrorAbout("discovery".into()),
                    FrameKind::WireGuard(t) => FrameKind::IcmpErrorAbout(format!("wireguard-{t}")),
                    _ => FrameKind::Other(self.describe()),
                },
                _ => FrameKind::Other(self.describe()),
            };
        }
        if has("icmp") {
            // IPv4's destination unreachable, likewise.
            return match self.icmp_type {
                Some(3) if has("udp") => match self.udp_kind() {
                    FrameKind::Discovery => FrameKind::IcmpErrorAbout("discovery".into()),
                    FrameKind::WireGuard(t) => FrameKind::IcmpErrorAbout(format!("wireguard-{t}")),
                    _ => FrameKind::Other(self.describe()),
                },
                _ => FrameKind::Other(self.describe()),
            };
        }
        if !(has("ipv6") || has("ip")) || !has("udp") {
            return FrameKind::Other(self.describe());
        }
        self.udp_kind()
    }

    /// The kind of the (last) UDP datagram in the frame, by ports and payload.
    fn udp_kind(&self) -> FrameKind {
        let p = &self.payload;
        if self.src_port == Some(6698) && self.dst_port == Some(6698) && p.starts_with(b"WEFT") {
            return FrameKind::Discovery;
        }
        let wg_port =
            |p: Option<u16>| p.is_some_and(|p| (WG_PORT_BASE..WG_PORT_BASE + WG_PORT_COUNT).contains(&p));
        if wg_port(self.src_port) && wg_port(self.dst_port) && p.len() >= 32 && p[1..4] == [0, 0, 0] {
            // Sizes fixed by the WireGuard protocol; transport data is a
            // 16-byte header, the ciphertext padded to 16 bytes, a 16-byte tag.
            let size_ok = match p[0] {
                1 => p.len() == 148,
                2 => p.len() == 92,
                3 => p.len() == 64,
                4 => p.len() % 16 == 0,
                _ => false,
            };
            if size_ok {
                return FrameKind::WireGuard(p[0]);
            }
        }
        FrameKind::Other(self.describe())
    }

    pub fn describe(&self) -> String {
        format!(
            "#{} on {} from {}: {} ports {:?}->{:?} icmp {:?} icmpv6 {:?} payload {} bytes",
            self.number,
            self.iface,
            self.src,
            self.protocols,
            self.src_port,
            self.dst_port,
            self.icmp_type,
            self.icmpv6_type,
            self.payload.len()
        )
    }
}

/// A packet capture (dumpcap) on interfaces of one namespace, bracketed by
/// marker frames: `start` returns once a start marker sent on every device
/// is in the file, so the capture is live everywhere, and `stop` sends an
/// end marker and stops dumpcap only once that is in the file on every
/// device, so nothing sent before it is lost in the kernel's ring or
/// dumpcap's buffers. The markers are ICMPv6 echo requests to ff02::1 with
/// a pattern that also marks their replies; they and everything outside the
/// brackets are left out of the frames returned.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    ns: String,
    devs: Vec<String>,
    marker: String,
}

/// How long a marker may take to reach the capture file (dumpcap flushes
/// about twice a second; tshark is slow on a loaded machine).
const MARKER_WAIT: Duration = Duration::from_secs(20);

impl Capture {
    /// Starts capturing on `devs` of node `i`; returns once the start
    /// marker is in the file on every device.
    pub fn start(net: &Net, i: usize, devs: &[&str], name: &str) -> Capture {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let file = net.dir(i).join(format!("{name}.pcapng"));
        let log = format!("{name}.dumpcap.log");
        let mut cmd = vec!["dumpcap", "-q"];
        for d in devs {
            cmd.extend(["-i", d]);
        }
        cmd.extend(["-w", path_str(&file)]);
        let child = net.spawn(i, &cmd, &log);
        // 8 bytes "WEFTCAPT", then 4 that tell captures of one process
        // apart; the last byte is the phase (0 start, 1 end).
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let marker = format!("5745465443415054{:04x}{:04x}", std::process::id() as u16, n as u16);
        let cap = Capture {
            child: Some(child),
            file,
            ns: net.nodes[i].ns.clone(),
            devs: devs.iter().map(|d| d.to_string()).collect(),
            marker,
        };
        let ready = Net::wait_until(Duration::from_secs(15), || {
            net.log(i, &log).contains("File:") || net.log(i, &log).contains("dumpcap:")
        });
        assert!(
            ready.is_some() && !net.log(i, &log).contains("dumpcap:"),
            "dumpcap did not start: {}",
            net.log(i, &log)
        );
        cap.await_marker(0, &|| net.log(i, &log));
        cap
    }

    fn mark(&self, phase: u8) -> String {
        format!("{}{phase:02x}", self.marker)
    }

    /// Sends the marker of `phase` on every device, then waits until the
    /// capture file holds it on each of them.
    fn await_marker(&self, phase: u8, log: &dyn Fn() -> String) {
        let mark = self.mark(phase);
        let mut sent_at = Vec::new();
        let found = Net::wait_until(MARKER_WAIT, || {
            // Resent every 2 s: a marker can be lost like any frame.
            if sent_at.last().is_none_or(|t: &std::time::Instant| t.elapsed() > Duration::from_secs(2)) {
                sent_at.push(std::time::Instant::now());
                for d in &self.devs {
                    let _ = Command::new("ip")
                        .args([
                            "netns", "exec", &self.ns, "ping", "-6", "-n", "-q", "-c1", "-W1", "-p", &mark,
                            "-I", d,
                        ])
                        .arg("ff02::1")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
            let frames = tshark_frames(&self.file, false);
            self.devs.iter().all(|d| frames.iter().any(|f| &f.iface == d && f.data_hex.contains(&mark)))
        });
        assert!(
            found.is_some(),
            "the capture on {:?} did not see its {} marker within {MARKER_WAIT:?} ({} sends): {}",
            self.devs,
            ["start", "end"][phase as usize],
            sent_at.len(),
            log()
        );
    }

    /// Stops the capture once everything sent before now is in the file;
    /// returns the frames between the markers.
    pub fn stop(mut self) -> Vec<Frame> {
        let file = self.file.clone();
        self.await_marker(1, &|| format!("capture file {}", file.display()));
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let done = Net::wait_until(Duration::from_secs(10), || child.try_wait().ok().flatten().is_some());
        if done.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (start, end) = (self.mark(0), self.mark(1));
        let mut state: BTreeMap<String, u8> = BTreeMap::new();
        tshark_frames(&self.file, true)
            .into_iter()
            .filter(|f| {
                // 0: before the start marker, 1: between, 2: after the end.
                let st = state.entry(f.iface.clone()).or_insert(0);
                if f.data_hex.contains(&start) && *st == 0 {
                    *st = 1;
                } else if f.data_hex.contains(&end) {
                    *st = 2;
                }
                *st == 1 && !f.data_hex.contains(&start)
            })
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every frame of a capture file, dissected by tshark.
pub fn read_frames(file: &Path) -> Vec<Frame> {
    tshark_frames(file, true)
}

/// The frames of a capture file; unless `strict`, also of one still being
/// written (tshark fails on its cut-short last frame).
fn tshark_frames(file: &Path, strict: bool) -> Vec<Frame> {
    if !strict && !file.exists() {
        return Vec::new();
    }
    let out = Command::new("tshark")
        .args(["-r", path_str(file), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"])
        .args(["-e", "frame.number", "-e", "frame.interface_name", "-e", "frame.protocols"])
        .args(["-e", "udp.srcport", "-e", "udp.dstport", "-e", "icmpv6.type", "-e", "udp.payload"])
        .args(["-e", "ipv6.src", "-e", "ip.src", "-e", "icmp.type", "-e", "data.data"])
        .output()
        .expect("tshark");
    assert!(
        !strict || out.status.success(),
        "tshark -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // A field that occurs more than once (an ICMP error quoting a
            // datagram) lists every value: the outer header's first, the
            // quoted datagram's last.
            let f: Vec<&str> = l.split('\t').collect();
            let first = |k: usize| f.get(k).and_then(|v| v.split(',').next()).unwrap_or("");
            let last = |k: usize| f.get(k).and_then(|v| v.split(',').next_back()).unwrap_or("");
            Frame {
                number: first(0).parse().unwrap_or(0),
                iface: first(1).to_string(),
                protocols: first(2).to_string(),
                src_port: last(3).parse().ok(),
                dst_port: last(4).parse().ok(),
                icmpv6_type: first(5).parse().ok(),
                payload: unhex(last(6)),
                src: if first(7).is_empty() { first(8).to_string() } else { first(7).to_string() },
                icmp_type: first(9).parse().ok(),
                data_hex: f.get(10).unwrap_or(&"").to_string(),
            }
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
}

/// A sending loop on a thread that entered node `i`'s network namespace
/// (only that thread moves): `setup` opens the socket there, then `send`
/// runs until stopped and counts what it sent. Stops on [`NsSender::stop`]
/// (which returns the count) or drop.
pub struct NsSender {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl NsSender {
    fn start<S: 'static>(
        net: &Net,
        i: usize,
        setup: impl FnOnce() -> Result<S, String> + Send + 'static,
        mut send: impl FnMut(&S) -> u64 + Send + 'static,
    ) -> NsSender {
        use std::sync::atomic::{AtomicBool, Ordering};
        let ns_path = format!("/run/netns/{}", net.nodes[i].ns);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let thread = std::thread::spawn(move || {
            let entered = std::fs::File::open(&ns_path)
                .map_err(|e| format!("{ns_path}: {e}"))
                .and_then(|f| {
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("setns: {e}"))
                })
                .and_then(|()| setup());
            let sock = match entered {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return 0;
                }
            };
            let mut sent = 0;
            while !flag.load(Ordering::Relaxed) {
                sent += send(&sock);
            }
            sent
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("sender in node {i}: {e}"),
            Err(e) => panic!("sender in node {i} did not start: {e}"),
        }
        NsSender { stop, thread: Some(thread) }
    }

    /// Stops sending; returns how many datagrams were sent.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().map(|t| t.join().unwrap_or(0)).unwrap_or(0)
    }
}

impl Drop for NsSender {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends one datagram again and again, every `interval`, from UDP port 6698
/// to ff02::114 on a device of node `i`: a forged or replayed discovery
/// beacon, as an attacker on the segment would send it.
pub struct Replayer;

impl Replayer {
    pub fn start(net: &Net, i: usize, dev: &str, data: Vec<u8>, interval: Duration) -> NsSender {
        let dev = dev.to_string();
        let setup = move || -> Result<(std::net::UdpSocket, std::net::SocketAddr), String> {
            let ifindex = nix::net::if_::if_nametoindex(dev.as_str()).map_err(|e| format!("{dev}: {e}"))?;
            let sock = std::net::UdpSocket::bind("[::]:6698").map_err(|e| format!("bind: {e}"))?;
            let dst = std::net::SocketAddrV6::new("ff02::114".parse().unwrap(), 6698, 0, ifindex);
            Ok((sock, dst.into()))
        };
        NsSender::start(net, i, setup, move |(sock, dst)| {
            let sent = u64::from(sock.send_to(&data, *dst).is_ok());
            std::thread::sleep(interval);
            sent
        })
    }
}

/// Sends small UDP datagrams from `bind` to `dst` at about `rate` per
/// second from node `i`: a flood as a member, or an attacker behind it,
/// would send it.
pub struct UdpFlood;

impl UdpFlood {
    pub fn start(
        net: &Net,
        i: usize,
        bind: std::net::SocketAddr,
        dst: std::net::SocketAddr,
        rate: u32,
    ) -> NsSender {
        let setup = move || std::net::UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"));
        // Paced in bursts of 20 (a sleep per datagram would cap the rate).
        let (start, mut n) = (Instant::now(), 0u64);
        NsSender::start(net, i, setup, move |sock| {
            let mut sent = 0;
            for _ in 0..20 {
                n += 1;
                sent += u64::from(sock.send_to(&[0x5a; 64], dst).is_ok());
            }
            let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            sent
        })
    }
}
