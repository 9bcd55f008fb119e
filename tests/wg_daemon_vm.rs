//! The whole daemon with the kernel WireGuard backend, against a real kernel
//! under qemu (issue 4: "two namespaces inside running weft with the kernel
//! backend, tunnels up and a ping along weft's routes").
//!
//! `daemon_with_kernel_wireguard_in_vm` (host) makes a CA, two node keys and
//! two credentials with weft's own CLI, writes each node's UCI config
//! (`wireguard_backend 'kernel'`, a `wireguard '1'` interface on a veth, a
//! mesh prefix, a granted IPv4 prefix; node b also announces a prefix its
//! credential does not grant), and boots Debian's kernel with
//! `tests/vm/run.sh`, whose guest runs `tests/vm/wg_daemon/run`: both
//! daemons in their namespaces, bounded waits for the kernel WireGuard
//! tunnels and the protocol-119 routes, pings, the control socket's views,
//! a restart after SIGKILL (the kernel tunnel outlives the process), SIGTERM
//! and what it must leave behind. The guest prints one
//! `PASS name detail` / `FAIL name detail` line per check; every check in
//! `CHECKS` must pass.
//!
//! Skips (fails under `CI=true`) only when the VM cannot be built (first use needs
//! root for apt-get and downloads the kernel package; the cache is
//! `target/vm`, shared with `tests/wg_kernel_vm.rs`).

// The one skip rule: under CI=true a VM that cannot be built fails the run.
#[path = "common/require.rs"]
#[macro_use]
mod require;

// The weft binary and its output, shared with the other VM test.
#[path = "common/weft_cli.rs"]
mod weft_cli;
use weft_cli::{text, weft, WEFT};

use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weft::mesh::tunnel_link_local as link_local_for;
use weft::trust::{MeshPrefix, PublicKey};

const MESH_PREFIX: &str = "fd88:8888:8888::/48";
/// Announced by node b without a grant: node a must refuse it.
const ROGUE: &str = "10.99.2.0/24";

/// Every check the guest must report as passed.
const CHECKS: &[&str] = &[
    "daemons-running",
    "tunnel-kernel-wireguard",
    "tunnel-up-mtu-link-local",
    "routes-proto-119",
    "daemon-turned-on-forwarding",
    "ping-mesh-address",
    "ping-granted-prefix",
    "ungranted-prefix-refused",
    "neighbours-json",
    "nodes-json",
    "stop-a-clean",
    "peer-drops-routes",
    "stop-b-clean",
];
/// Reported when the host has `wg` (wireguard-tools), which run.sh then
/// copies into the VM.
const WG_CHECK: &str = "wg-show-peer";

/// A scratch directory, removed on drop (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wg-daemon-vm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One node of the test: what the host makes for it and tells the guest.
struct Node {
    tag: &'static str,
    name: String,
    public: String,
    mesh: Ipv6Addr,
    link_local: Ipv6Addr,
    /// The transport address (end to end).
    transport: Ipv6Addr,
    addr: String,
    prefix: String,
}

fn make_node(
    dir: &Path,
    ca: &str,
    tag: &'static str,
    n: u8,
    extra_announce: Option<&str>,
    e2e: bool,
    ifaces: &[&str],
) -> Node {
    let d = dir.join(tag);
    std::fs::create_dir_all(&d).unwrap();
    let private = weft(&["genkey"], "");
    let public = weft(&["pubkey"], &private).trim().to_string();
    // Origin signatures on the kernel-WireGuard path too.
    let signing = weft(&["pubkey", "--signing"], &private).trim().to_string();
    let key_file = d.join("key");
    std::fs::write(&key_file, &private).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let name = format!("node-{tag}");
    let prefix = format!("10.88.{n}.0/24");
    let cred = d.join("cred");
    weft(
        &[
            "ca",
            "sign",
            "--ca",
            ca,
            "--name",
            &name,
            "--public-key",
            &public,
            "--signing-key",
            &signing,
            "--prefix",
            &prefix,
            "--group",
            if tag == "a" { "guests" } else { "servers" },
            "--valid-for",
            "1d",
            "--out",
            cred.to_str().unwrap(),
        ],
        "",
    );
    let ca_pub = std::fs::read_to_string(Path::new(ca).join("ca.pub")).unwrap();
    // Paths as the guest sees them: the payload is unpacked at /payload.
    let mut config = format!(
        "config weft 'main'\n\
         \toption hello_interval '1'\n\
         \toption state_file '/tmp/{tag}/state'\n\
         \toption control_socket '/tmp/{tag}/weft.sock'\n\
         \toption log_level 'debug'\n\
         \toption private_key_file '/payload/{tag}/key'\n\
         \toption credential_file '/payload/{tag}/cred'\n\
         \tlist ca_public_key '{}'\n\
         \toption mesh_prefix '{MESH_PREFIX}'\n\
         \toption wireguard_backend 'kernel'\n\
         config announce\n\
         \toption prefix '{prefix}'\n",
        ca_pub.trim()
    );
    for (k, i) in ifaces.iter().enumerate() {
        config.push_str(&format!(
            "config interface 'mesh{k}'\n\toption ifname '{i}'\n\toption type 'wired'\n\toption wireguard '1'\n"
        ));
    }
    if let Some(p) = extra_announce {
        config.push_str(&format!("config announce\n\toption prefix '{p}'\n"));
    }
    // Explicit both ways: the per-hop run checks routes via the tunnel.
    let e2e_line = format!("config weft 'main'\n\toption end_to_end '{}'\n", u8::from(e2e));
    config = config.replacen("config weft 'main'\n", &e2e_line, 1);
    if e2e {
        // Group policy on the kernel path: guests may not open TCP 5001 on servers.
        config.push_str(
            "config policy 'guests_5001'\n\toption src_group 'guests'\n\toption dest_group 'servers'\n\
             \toption proto 'tcp'\n\tlist dest_port '5001'\n\toption action 'drop'\n",
        );
    }
    let config_file = d.join("weft.config");
    std::fs::write(&config_file, config).unwrap();
    let check =
        Command::new(WEFT).args(["check-config", "-c", config_file.to_str().unwrap()]).output().unwrap();
    assert!(check.status.success(), "check-config: {}", String::from_utf8_lossy(&check.stderr));

    let key: PublicKey = public.parse().unwrap();
    let mesh_prefix: MeshPrefix = MESH_PREFIX.parse().unwrap();
    Node {
        tag,
        name,
        mesh: mesh_prefix.address_for(&key),
        link_local: link_local_for(&key),
        transport: mesh_prefix.transport_address_for(&key).expect("a /48 has a transport prefix"),
        public,
        addr: format!("10.88.{n}.1"),
        prefix,
    }
}

fn vars(nodes: &[Node], e2e: bool) -> String {
    let mut s = String::new();
    for n in nodes {
        let t = n.tag.to_uppercase();
        s.push_str(&format!(
            "{t}_NAME='{}'\n{t}_PUB='{}'\n{t}_MESH='{}'\n{t}_LL='{}'\n{t}_ADDR='{}'\n{t}_PREFIX='{}'\n{t}_TADDR='{}'\n",
            n.name, n.public, n.mesh, n.link_local, n.addr, n.prefix, n.transport
        ));
    }
    s.push_str(&format!("E2E={}\n", u8::from(e2e)));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    s.push_str(&format!("B_ROGUE='{ROGUE}'\nHOST_EPOCH={now}\n"));
    s
}

/// Loaded at boot: veth, WireGuard, and nf_tables with conntrack for the
/// group policy's table (`ct state`, named counters; the rest is built in).
/// crc32c first: libcrc32c (under conntrack) asks the crypto API for it
/// at load time, a soft dependency modules.dep does not list.
const VM_MODULES: &str = "veth wireguard crc32c_generic nf_tables nft_ct nft_objref";

/// Programs copied into the VM: `nft` for the group policy (weft runs it).
fn vm_bins() -> String {
    let mut bins = vec!["/usr/sbin/ip", "/usr/bin/ping"];
    for p in ["/usr/bin/wg", "/usr/sbin/nft"] {
        if Path::new(p).exists() {
            bins.push(p);
        }
    }
    bins.join(" ")
}

fn have(prog: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {prog}")]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn daemon_with_kernel_wireguard_in_vm() {
    run_in_vm(false);
}

/// The same with `end_to_end '1'`: `weft-e2e` made and configured by the
/// kernel backend (rtnetlink link, generic netlink peers), the other node's
/// mesh address and granted prefix routed into it, pings through it, and
/// the same crash, restart and clean stops.
#[test]
fn daemon_end_to_end_with_kernel_wireguard_in_vm() {
    run_in_vm(true);
}

fn run_in_vm(e2e: bool) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run_sh = repo.join("tests/vm/run.sh");
    let build = Command::new(&run_sh).arg("--build-only").output().expect("tests/vm/run.sh");
    if !build.status.success() {
        cannot_run!("the test VM cannot be built here ({}):\n{}", build.status, text(&build));
    }

    let tag = if e2e { "e2e" } else { "hop" };
    let ca_dir = Scratch::new(&format!("ca-{tag}"));
    let ca = ca_dir.0.join("ca");
    weft(&["ca", "init", "--out", ca.to_str().unwrap()], "");
    let payload = Scratch::new(&format!("payload-{tag}"));
    let ca = ca.to_str().unwrap();
    let mesh = &["mesh0"][..];
    let nodes = [
        make_node(&payload.0, ca, "a", 1, None, e2e, mesh),
        make_node(&payload.0, ca, "b", 2, Some(ROGUE), e2e, mesh),
    ];
    std::fs::write(payload.0.join("vars"), vars(&nodes, e2e)).unwrap();
    let (console, out, wall) = boot(&payload.0, "wg_daemon");
    let console = console.as_str();

    let failed: Vec<&str> = console.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(failed.is_empty(), "guest checks failed:\n{}", failed.join("\n"));
    let mut expected = CHECKS.to_vec();
    if have("wg") {
        expected.push(WG_CHECK);
        if e2e {
            expected.push("e2e-kernel-device");
        }
    }
    if e2e && Path::new("/usr/sbin/nft").exists() {
        expected.extend(["policy-enforced", "policy-drops-by-group"]);
    }
    for c in expected {
        assert!(
            console.lines().any(|l| l.starts_with(&format!("PASS {c} "))),
            "guest did not report PASS {c}"
        );
    }
    assert!(out.status.success(), "VM payload failed: {:?}", out.status);
    assert!(wall < Duration::from_secs(270), "VM run took {wall:?}");
}

/// Puts the guest script `tests/vm/SCRIPT/run`, the shared `tests/vm/lib.sh`
/// and the weft binary into `payload` (which holds the nodes' files and
/// vars already) and boots the VM with it: its console, its exit, the wall
/// time.
fn boot(payload: &Path, script: &str) -> (String, std::process::Output, Duration) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join(format!("tests/vm/{script}/run")), payload.join("run")).unwrap();
    std::fs::set_permissions(payload.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(repo.join("tests/vm/lib.sh"), payload.join("lib.sh")).unwrap();
    // Debug info is most of the debug binary: leave it out of the initramfs.
    let guest_weft = payload.join("weft");
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&guest_weft)
        .arg(WEFT)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(WEFT, &guest_weft).unwrap();
    }
    let t = Instant::now();
    let out = Command::new(repo.join("tests/vm/run.sh"))
        .arg(payload)
        .env("WEFT_VM_BINS", vm_bins())
        .env("WEFT_VM_MODULES", VM_MODULES)
        .env("WEFT_VM_TIMEOUT", "200")
        .output()
        .expect("tests/vm/run.sh");
    let wall = t.elapsed();
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{console}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("VM run took {:.1} s wall", wall.as_secs_f64());
    (console, out, wall)
}

/// Issue 10 part 1 across the VM: a line a - r - b with kernel WireGuard
/// and end to end on, r the relay. a pings b's mesh address and granted
/// address with a marker in the payload; an nftables counter for that
/// marker in ICMPv6/ICMP sees nothing in r's forward path (what r's own
/// per-hop tunnels decrypted: the relay holds its private key and still
/// sees only end-to-end WireGuard datagrams, which another counter sees),
/// while the same counter in b's input path sees every echo (the control:
/// the match works).
#[test]
fn relay_sees_only_ciphertext_with_kernel_wireguard_in_vm() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let build =
        Command::new(repo.join("tests/vm/run.sh")).arg("--build-only").output().expect("tests/vm/run.sh");
    if !build.status.success() {
        cannot_run!("the test VM cannot be built here ({}):\n{}", build.status, text(&build));
    }
    if !Path::new("/usr/sbin/nft").exists() {
        cannot_run!("nft is not installed (scripts/install-deps.sh)");
    }
    let ca_dir = Scratch::new("ca-relay");
    let ca = ca_dir.0.join("ca");
    weft(&["ca", "init", "--out", ca.to_str().unwrap()], "");
    let payload = Scratch::new("payload-relay");
    let ca = ca.to_str().unwrap();
    let nodes = [
        make_node(&payload.0, ca, "a", 1, None, true, &["mesh0"]),
        make_node(&payload.0, ca, "r", 3, None, true, &["mesh0", "mesh1"]),
        make_node(&payload.0, ca, "b", 2, None, true, &["mesh0"]),
    ];
    std::fs::write(payload.0.join("vars"), vars(&nodes, true)).unwrap();
    let (console, out, wall) = boot(&payload.0, "wg_relay");
    let failed: Vec<&str> = console.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(failed.is_empty(), "guest checks failed:\n{}", failed.join("\n"));
    for c in [
        "relay-daemons-running",
        "relay-e2e-routes",
        "relay-pings",
        "relay-sees-no-marker",
        "relay-stops-clean",
    ] {
        assert!(
            console.lines().any(|l| l.starts_with(&format!("PASS {c} "))),
            "guest did not report PASS {c}"
        );
    }
    assert!(out.status.success(), "VM payload failed: {:?}", out.status);
    assert!(wall < Duration::from_secs(270), "VM run took {wall:?}");
}

/// The guest script is BusyBox ash: it must parse there, and pass
/// shellcheck when that is installed.
#[test]
fn guest_script_parses_and_lints() {
    for script in ["wg_daemon/run", "wg_relay/run", "lib.sh"] {
        lint(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm").join(script));
    }
}

fn lint(script: &Path) {
    if script.ends_with("run") {
        let mode = std::fs::metadata(script).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} must be executable", script.display());
    }
    for sh in [&["sh"][..], &["busybox", "sh"]] {
        if !have(sh[0]) {
            eprintln!("SKIP {}: not installed", sh.join(" "));
            continue;
        }
        let o = Command::new(sh[0]).args(&sh[1..]).arg("-n").arg(script).output().unwrap();
        assert!(o.status.success(), "{} -n: {}", sh.join(" "), text(&o));
    }
    if have("shellcheck") {
        // -x: follows `. ./lib.sh` (its source= path is from the crate root).
        let o = Command::new("shellcheck").arg("-x").arg(script).output().unwrap();
        assert!(o.status.success(), "shellcheck:\n{}", text(&o));
    } else {
        eprintln!("SKIP shellcheck: not installed");
    }
}
