//! The command line as a whole: every command answers `--help` and `-h` with
//! its usage (exit 0, stdout), and the views find the daemon's control
//! socket through `control_socket` in /etc/config/weft when `-s` is not
//! given: checked for real in a chroot whose /etc/config/weft names a socket
//! bind-mounted from a running daemon (root and a network namespace needed
//! for that part).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::netns::Net;
use weft::sim::Topology;

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

fn weft(args: &[&str]) -> Output {
    Command::new(WEFT).args(args).output().expect("run weft")
}

/// Every command, as typed before `--help`.
const COMMANDS: &[&[&str]] = &[
    &["--version"],
    &["version"],
    &["help"],
    &["check-config"],
    &["daemon"],
    &["status"],
    &["neighbours"],
    &["neighbors"],
    &["routes"],
    &["nodes"],
    &["metrics"],
    &["simulate"],
    &["genkey"],
    &["pubkey"],
    &["ca"],
    &["ca", "init"],
    &["ca", "sign"],
    &["ca", "revoke"],
    &["cert"],
    &["cert", "show"],
    &["rpcd"],
];

#[test]
fn every_command_answers_help_with_its_usage() {
    for cmd in COMMANDS {
        for flag in ["--help", "-h"] {
            let mut args = cmd.to_vec();
            args.push(flag);
            let out = weft(&args);
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "weft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(
                out.stderr.is_empty(),
                "weft {args:?} wrote to stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.to_lowercase().contains("usage"), "weft {args:?}:\n{text}");
            let name = match cmd.iter().find(|c| !c.starts_with('-')).copied() {
                Some("neighbors") => "neighbours", // the alias shows the real name
                Some(n) => n,
                None => "--version",
            };
            assert!(text.contains(name), "weft {args:?} does not name {name}:\n{text}");
        }
    }
    // Help comes first, even among other options or before missing ones.
    let out = weft(&["ca", "sign", "--name", "x", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--public-key KEY"));
    // The usage text lists no command this test does not try.
    let usage = String::from_utf8(weft(&["help"]).stdout).unwrap();
    for line in usage.lines().filter(|l| l.starts_with("  ") && !l.starts_with("   ")) {
        let first = line.split_whitespace().next().unwrap();
        for name in first.split('|') {
            assert!(
                COMMANDS.iter().any(|c| c[0] == name),
                "`weft help` lists {name:?}, which this test does not check"
            );
        }
    }
    // A wrong option is still a usage error.
    let out = weft(&["metrics", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: weft metrics"));
}

/// A root holding the (dynamically linked) test build of weft and the
/// libraries it needs, so it runs chrooted.
fn root_with_weft(root: &Path) {
    let bin = root.join("weft");
    std::fs::create_dir_all(root).unwrap();
    std::fs::copy(WEFT, &bin).unwrap();
    let ldd = Command::new("ldd").arg(WEFT).output().expect("ldd");
    for lib in String::from_utf8_lossy(&ldd.stdout).split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
}

/// `weft ARGS` chrooted into `root`, with `sock_dir` bind-mounted at
/// /sockets inside (in a private mount namespace).
fn chrooted(root: &Path, sock_dir: &Path, args: &str) -> Output {
    let script = format!(
        "mount --bind {} {}/sockets && exec chroot {} /weft {args}",
        sock_dir.display(),
        root.display(),
        root.display()
    );
    Command::new("unshare").args(["-m", "sh", "-c", &script]).output().expect("unshare")
}

#[test]
fn views_find_the_socket_in_etc_config_weft() {
    require_netns!();
    let mut net = Net::new(&Topology { names: vec!["solo".into()], links: Vec::new() });
    net.start_all();
    let direct = net.weft_json(0, "status");
    let sock_dir: PathBuf = net.socket(0).parent().unwrap().to_path_buf();
    let sock_name = net.socket(0).file_name().unwrap().to_string_lossy().into_owned();
    let root = net.root.join("chroot");
    root_with_weft(&root);
    std::fs::create_dir_all(root.join("sockets")).unwrap();

    // No /etc/config/weft: the default socket, which is not there.
    let out = chrooted(&root, &sock_dir, "status --json");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/var/run/weft.sock"), "{out:?}");

    // /etc/config/weft names the daemon's socket: status, metrics work.
    std::fs::create_dir_all(root.join("etc/config")).unwrap();
    std::fs::write(
        root.join("etc/config/weft"),
        format!("config weft 'main'\n\toption control_socket '/sockets/{sock_name}'\n"),
    )
    .unwrap();
    let out = chrooted(&root, &sock_dir, "status --json");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(v["router_id"], direct["router_id"], "the same daemon");
    let out = chrooted(&root, &sock_dir, "metrics");
    assert!(String::from_utf8_lossy(&out.stdout).contains("weft_build_info{"), "{out:?}");
    // -s still wins over the file.
    let out = chrooted(&root, &sock_dir, "status -s /sockets/absent.sock");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/sockets/absent.sock"));
    // -c names another file.
    std::fs::write(root.join("other"), "config weft 'main'\n\toption control_socket '/sockets/x.sock'\n")
        .unwrap();
    let out = chrooted(&root, &sock_dir, "routes -c /other");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/sockets/x.sock"), "{out:?}");
    // A file with a syntax error: a warning, then the default socket.
    std::fs::write(root.join("etc/config/weft"), "config weft 'main\n").unwrap();
    let out = chrooted(&root, &sock_dir, "status");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ignoring /etc/config/weft") && err.contains("/var/run/weft.sock"), "{err}");
}

/// A reader that stops early (`weft routes | head`, `| grep -q`) ends the
/// command quietly, as with other tools: no panic on the broken pipe.
#[test]
fn a_reader_that_stops_early_gets_no_panic() {
    let mut child = Command::new(WEFT)
        .arg("help")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "weft help into a closed pipe: {err}");
}
