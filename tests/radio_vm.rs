//! weft on real 802.11s radios with real kernel WireGuard, beside babeld and
//! batman-adv on the same radios (issue 8, "Real radios").
//!
//! `radios_in_vm` (host) makes a network CA, five node keys and credentials
//! with weft's own CLI and each node's UCI config (`type 'wireless'`,
//! `wireguard '1'` on the radio `mesh0`, kernel WireGuard backend), then
//! boots Debian's kernel with `tests/vm/run.sh`. The guest,
//! `tests/vm/radio/run`, gives each of five `mac80211_hwsim` radios its own
//! network namespace, joins them to one 802.11s mesh and shapes a topology
//! by blocking the peer links of non-neighbours with 802.11s forwarding off
//! (a line a-b-c-d-e, then a small mesh). On each topology, from a cold
//! start each: weft, babeld and batman-adv. The guest prints `PASS`/`FAIL`
//! lines (every node routes to every other, end-to-end pings over the
//! multi-hop path, clean stops) and `FIG` lines (time to full routes,
//! control bytes per node per second on the air, per-hop costs, ping
//! delivery, also with one radio losing frames), which this test asserts
//! and prints as a table (docs/BENCHMARKS.md, "Real radios").
//!
//! The whole comparison takes about 12 minutes under TCG, too long for
//! `make test`: `radios_in_vm` is ignored there and run by `make test-vm`
//! (env `WEFT_RADIO_DAEMONS` and `WEFT_RADIO_TOPOLOGIES` pick a subset, e.g.
//! `weft`, `line`; `WEFT_RADIO_COLD_STARTS` sets the cold starts per daemon
//! and topology, default 3). `make test` runs `weft_on_radio_line_in_vm`: weft alone
//! on the line with short windows, about 2 minutes.

// The one skip rule (require_netns!, require_cmd!, cannot_run!).
#[path = "common/require.rs"]
#[macro_use]
mod require;

// The weft binary and its output, shared with the other VM test.
#[path = "common/weft_cli.rs"]
mod weft_cli;
use weft_cli::{text, weft, WEFT};

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use weft::trust::{MeshPrefix, PublicKey};

const MESH_PREFIX: &str = "fd88:7777:1::/48";
const NODES: &[&str] = &["a", "b", "c", "d", "e"];
/// Topologies as edge lists; pairs not listed cannot hear each other.
const TOPOLOGIES: &[(&str, &str)] = &[("line", "a-b b-c c-d d-e"), ("mesh", "a-b a-c b-c b-d c-d d-e")];
const DAEMONS: &[&str] = &["weft", "babeld", "batman"];
/// End-to-end pings go from FROM to TO (three hops on both topologies).
const FROM: &str = "a";
const TO: &str = "e";
/// Pings per series, and the share that must be answered on lossless radios.
const PINGS: u32 = 100;
const MIN_DELIVERY_PCT: u32 = 90;
/// On the line, node c's radio then drops this share of what it receives.
const LOSS_NODE: &str = "c";
const LOSS_PCT: u32 = 20;
/// Host programs the guest needs (copied into the VM with their libraries).
const GUEST_BINS: &[&str] = &[
    "/usr/sbin/ip",
    "/usr/bin/ping",
    "/usr/sbin/iw",
    "/usr/sbin/batctl",
    "/usr/sbin/babeld",
    "/usr/sbin/nft",
    "/usr/bin/socat",
];

/// A scratch directory, removed on drop (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("radio-vm-{tag}-{}", std::process::id()));
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

/// Key, credential and config of node `tag` in `dir/tag`; returns its mesh
/// address (the route every other node must learn).
fn make_node(dir: &Path, ca: &Path, ca_pub: &str, tag: &str) -> String {
    let d = dir.join(tag);
    std::fs::create_dir_all(&d).unwrap();
    let private = weft(&["genkey"], "");
    let public = weft(&["pubkey"], &private).trim().to_string();
    // Origin signatures on the kernel-WireGuard path too.
    let signing = weft(&["pubkey", "--signing"], &private).trim().to_string();
    let key_file = d.join("key");
    std::fs::write(&key_file, &private).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cred = d.join("cred");
    weft(
        &[
            "ca",
            "sign",
            "--ca",
            ca.to_str().unwrap(),
            "--name",
            tag,
            "--public-key",
            &public,
            "--signing-key",
            &signing,
            "--valid-for",
            "1d",
            "--out",
            cred.to_str().unwrap(),
        ],
        "",
    );
    // Paths as the guest sees them: the payload is unpacked at /payload.
    let config = format!(
        "config weft 'main'\n\
         \toption hello_interval '1'\n\
         \toption state_file '/tmp/{tag}/state'\n\
         \toption control_socket '/tmp/{tag}/weft.sock'\n\
         \toption log_level 'info'\n\
         \toption private_key_file '/payload/{tag}/key'\n\
         \toption credential_file '/payload/{tag}/cred'\n\
         \tlist ca_public_key '{ca_pub}'\n\
         \toption mesh_prefix '{MESH_PREFIX}'\n\
         \toption wireguard_backend 'kernel'\n\
         \toption end_to_end '0'\n\
         config interface 'mesh'\n\
         \toption ifname 'mesh0'\n\
         \toption type 'wireless'\n\
         \toption wireguard '1'\n"
    );
    let config_file = d.join("weft.config");
    std::fs::write(&config_file, config).unwrap();
    let check =
        Command::new(WEFT).args(["check-config", "-c", config_file.to_str().unwrap()]).output().unwrap();
    assert!(check.status.success(), "check-config: {}", text(&check));
    let key: PublicKey = public.parse().unwrap();
    let prefix: MeshPrefix = MESH_PREFIX.parse().unwrap();
    prefix.address_for(&key).to_string()
}

/// A subset from env `var` (space- or comma-separated), else all of `all`.
fn chosen(var: &str, all: &[&str]) -> Vec<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            let picked: Vec<String> =
                v.split([' ', ',']).filter(|s| !s.is_empty()).map(String::from).collect();
            for p in &picked {
                assert!(all.contains(&p.as_str()), "{var}: unknown {p:?}, expected some of {all:?}");
            }
            picked
        }
        _ => all.iter().map(|s| s.to_string()).collect(),
    }
}

/// What one VM boot runs and how long it measures.
struct Plan {
    daemons: Vec<String>,
    topologies: Vec<String>,
    /// Seconds of steady state before and while control bytes are counted.
    settle_s: u32,
    window_s: u32,
    pings: u32,
    /// Loss on LOSS_NODE's radio for the second measurement on the line (0: none).
    loss_pct: u32,
    /// Cold starts per daemon and topology, taken in turns (the last one
    /// is the measured run).
    cold_starts: u32,
    /// In-VM watchdog.
    timeout_s: u32,
}

fn vars(meshes: &[(String, String)], plan: &Plan) -> String {
    let mut s = String::new();
    s.push_str(&format!("NODES='{}'\n", NODES.join(" ")));
    for (tag, mesh) in meshes {
        s.push_str(&format!("{}_MESH='{mesh}'\n", tag.to_uppercase()));
    }
    s.push_str(&format!(
        "TOPOLOGIES='{}'\nDAEMONS='{}'\n",
        plan.topologies.join(" "),
        plan.daemons.join(" ")
    ));
    for (name, edges) in TOPOLOGIES {
        s.push_str(&format!("EDGES_{name}='{edges}'\n"));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    s.push_str(&format!(
        "FROM={FROM}\nTO={TO}\nHELLO=1\nPINGS={}\nPING_INTERVAL=0.1\nMIN_DELIVERY={MIN_DELIVERY_PCT}\n\
         SETTLE={}\nWINDOW={}\nCONVERGE_LIMIT=90\nFIRST_PING_LIMIT=60\n\
         LOSS_TOPO=line\nLOSS_NODE={LOSS_NODE}\nLOSS_PCT={}\nLOSS_SETTLE=20\nHOST_EPOCH={now}\nCOLD_STARTS={}\n",
        plan.pings, plan.settle_s, plan.window_s, plan.loss_pct, plan.cold_starts
    ));
    s
}

/// `key=value` pairs of one `FIG ...` line.
fn fig_fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// The FIG lines as a Markdown table, for docs/BENCHMARKS.md.
fn table(figs: &[BTreeMap<String, String>]) -> String {
    let cols = [
        ("topo", "topology"),
        ("daemon", "daemon"),
        ("loss", "loss %"),
        ("cold_starts", "cold starts"),
        ("converge_s", "full routes s"),
        ("converge_range", "(min-max)"),
        ("first_ping_s", "first ping s"),
        ("tunnels_s", "all tunnels s"),
        ("full_pct", "full tables %"),
        ("air_Bps_node", "air B/node/s"),
        ("tunnel_Bps_node", "in tunnels B/node/s"),
        ("ping", "pings answered"),
        ("rtt_ms", "rtt ms"),
    ];
    let metric = format!("metric_{FROM}_{TO}");
    let mut s = String::from("|");
    for (_, h) in cols {
        s.push_str(&format!(" {h} |"));
    }
    s.push_str(&format!(" metric {FROM}->{TO} | per-hop costs |\n|"));
    for _ in 0..cols.len() + 2 {
        s.push_str("---|");
    }
    s.push('\n');
    let get = |f: &BTreeMap<String, String>, k: &str| f.get(k).cloned().unwrap_or_else(|| "-".into());
    for f in figs {
        s.push('|');
        for (k, _) in cols {
            s.push_str(&format!(" {} |", get(f, k)));
        }
        s.push_str(&format!(" {} | {} |\n", get(f, &metric), get(f, "hop_costs").replace(',', " ")));
    }
    s
}

/// weft alone on the line, short windows: the CI-sized proof that weft
/// routes over real 802.11s radios through kernel WireGuard (about 2 min).
#[test]
fn weft_on_radio_line_in_vm() {
    run_plan(&Plan {
        daemons: vec!["weft".into()],
        topologies: vec!["line".into()],
        settle_s: 2,
        window_s: 5,
        pings: 50,
        loss_pct: 0,
        cold_starts: 1,
        timeout_s: 400,
    });
}

/// Every daemon on every topology, with loss on the line: the figures of
/// docs/BENCHMARKS.md, "Real radios" (about 12 min).
#[test]
#[ignore = "boots a VM for about 12 minutes: run by `make test-vm`"]
fn radios_in_vm() {
    let all_topos: Vec<&str> = TOPOLOGIES.iter().map(|(n, _)| *n).collect();
    run_plan(&Plan {
        daemons: chosen("WEFT_RADIO_DAEMONS", DAEMONS),
        topologies: chosen("WEFT_RADIO_TOPOLOGIES", &all_topos),
        settle_s: 5,
        window_s: 15,
        pings: PINGS,
        loss_pct: LOSS_PCT,
        cold_starts: std::env::var("WEFT_RADIO_COLD_STARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(3),
        timeout_s: 1500,
    });
}

fn run_plan(plan: &Plan) {
    // Root: the VM image build installs packages, the guest runs namespaces.
    require_netns!();
    for b in GUEST_BINS {
        require_cmd!(b);
    }
    require_cmd!("qemu-system-x86_64");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run_sh = repo.join("tests/vm/run.sh");
    let vm_env = |c: &mut Command| {
        c.env("WEFT_VM_MODULES", "crc32c_generic wireguard mac80211 batman-adv nft_numgen")
            .env("WEFT_VM_EXTRA_MODULES", "mac80211_hwsim")
            .env("WEFT_VM_BINS", GUEST_BINS.join(" "));
    };
    let mut build = Command::new(&run_sh);
    build.arg("--build-only");
    vm_env(&mut build);
    let build = build.output().expect("tests/vm/run.sh");
    if !build.status.success() {
        cannot_run!("the test VM cannot be built here:\n{}", text(&build));
    }

    let scratch = Scratch::new("ca");
    let ca = scratch.0.join("ca");
    weft(&["ca", "init", "--out", ca.to_str().unwrap()], "");
    let ca_pub = std::fs::read_to_string(ca.join("ca.pub")).unwrap().trim().to_string();
    let payload = Scratch::new("payload");
    let meshes: Vec<(String, String)> =
        NODES.iter().map(|t| (t.to_string(), make_node(&payload.0, &ca, &ca_pub, t))).collect();
    std::fs::write(payload.0.join("vars"), vars(&meshes, plan)).unwrap();
    std::fs::copy(repo.join("tests/vm/radio/run"), payload.0.join("run")).unwrap();
    std::fs::set_permissions(payload.0.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The daemon in the VM: the test build, or (env WEFT_RADIO_BIN, as
    // `make test-vm` does) the release build that routers run: under TCG
    // the test build's size and opt-level 1 slow weft's start.
    let bin = std::env::var("WEFT_RADIO_BIN").unwrap_or_else(|_| WEFT.to_string());
    assert!(Path::new(&bin).is_file(), "WEFT_RADIO_BIN={bin}: no such file");
    eprintln!("weft in the VM: {bin}");
    // Debug info is most of the test build: leave it out of the initramfs.
    let guest_weft = payload.0.join("weft");
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&guest_weft)
        .arg(&bin)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(&bin, &guest_weft).unwrap();
    }

    // Under TCG every figure depends on how much CPU the host leaves the VM.
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    let t = Instant::now();
    let mut run = Command::new(&run_sh);
    run.arg(&payload.0).env("WEFT_VM_TIMEOUT", plan.timeout_s.to_string()).env("WEFT_VM_MEM", "768");
    vm_env(&mut run);
    let out = run.output().expect("tests/vm/run.sh");
    let wall = t.elapsed();
    let console = String::from_utf8_lossy(&out.stdout);
    eprintln!("{console}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!(
        "VM run took {:.1} s wall; host load average before: {}, after: {}",
        wall.as_secs_f64(),
        load_before.trim(),
        load().trim()
    );

    let figs: Vec<BTreeMap<String, String>> =
        console.lines().filter(|l| l.starts_with("FIG ")).map(fig_fields).collect();
    let md = table(&figs);
    eprintln!("{md}");
    let _ = std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join("radio-vm-figures.md"), &md);

    let failed: Vec<&str> = console.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(failed.is_empty(), "guest checks failed:\n{}", failed.join("\n"));
    let mut expected = vec!["radios-peered".to_string()];
    for topo in &plan.topologies {
        expected.push(format!("radios-{topo}"));
        expected.push(format!("radios-{topo}-one-hop"));
        for d in &plan.daemons {
            for check in ["routes", "ping", "stop"] {
                expected.push(format!("{d}-{topo}-{check}"));
            }
            if d == "weft" {
                expected.push(format!("weft-{topo}-tunnels"));
            }
        }
    }
    for c in &expected {
        assert!(
            console.lines().any(|l| l.starts_with(&format!("PASS {c} "))),
            "guest did not report PASS {c}"
        );
    }
    for topo in &plan.topologies {
        for d in &plan.daemons {
            assert!(
                figs.iter().any(|f| f.get("topo") == Some(topo) && f.get("daemon") == Some(d)),
                "no figures for {d} on {topo}"
            );
        }
    }
    assert!(out.status.success(), "VM payload failed: {:?}", out.status);
}

/// The guest script is BusyBox ash: it must parse there and pass shellcheck
/// (scripts/install-deps.sh installs both).
#[test]
fn radio_guest_script_parses_and_lints() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/radio/run");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "{} must be executable", script.display());
    require_cmd!("sh", "busybox", "shellcheck");
    for sh in [&["sh"][..], &["busybox", "sh"], &["shellcheck"]] {
        let mut c = Command::new(sh[0]);
        c.args(&sh[1..]);
        if sh[0] != "shellcheck" {
            c.arg("-n");
        }
        let o = c.arg(&script).output().unwrap();
        assert!(o.status.success(), "{}: {}", sh.join(" "), text(&o));
    }
}

#[test]
fn figures_table_has_every_run() {
    let line = "FIG daemon=weft topo=line loss=20 cold_starts=3 converge_s=4.10 converge_range=3.90-5.20 \
                first_ping_s=4.50 air_Bps_node=900 \
                tunnel_Bps_node=300 full_pct=100 ping=97/100 rtt_ms=3.1 metric_a_e=800 hop_costs=a>b:256,b>a:300";
    let f = fig_fields(line);
    assert_eq!(f["daemon"], "weft");
    assert_eq!(f["hop_costs"], "a>b:256,b>a:300");
    let t = table(&[f]);
    assert!(
        t.contains(
            "| line | weft | 20 | 3 | 4.10 | 3.90-5.20 | 4.50 | - | 100 | 900 | 300 | 97/100 | 3.1 | 800 | a>b:256 b>a:300 |"
        ),
        "{t}"
    );
}
