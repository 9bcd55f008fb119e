//! `weft check-config` as the init script and users run it: the real
//! binary on real files, checking exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/weft.config");

/// A directory unique to one test (process id and test name), removed on
/// every exit path, including a failed assertion.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("weft-check-config-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft")).args(args).output().expect("run weft")
}

fn check(path: &Path) -> Output {
    weft(&["check-config", "-c", path.to_str().unwrap()])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn fixture_is_valid_without_warnings() {
    let out = check(Path::new(FIXTURE));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no warnings expected");
    assert_eq!(
        text(&out.stdout),
        format!(
            "{FIXTURE}: valid: 2 interfaces (1 with WireGuard), 1 announce, 3 peers, \
             2 CA keys, 1 trusted key\n"
        )
    );
}

#[test]
fn long_option_forms() {
    let joined = format!("--config={FIXTURE}");
    for args in [vec!["check-config", "--config", FIXTURE], vec!["check-config", joined.as_str()]] {
        let out = weft(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(": valid: "), "{args:?}");
    }
}

#[test]
fn warnings_go_to_stderr_and_still_exit_0() {
    let dir = TempDir::new("warnings");
    let p = dir.file(
        "weft",
        "config weft 'main'\n\toption helo_interval 2\n\
         config interface 'mesh'\n\toption ifname mesh0\n\
         config babel\n",
    );
    let out = check(&p);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = p.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "{shown}:2: warning: unknown option 'helo_interval' in weft 'main' is ignored (did you mean 'hello_interval'?)\n\
             {shown}:5: warning: unknown section type 'babel' is ignored\n"
        )
    );
    assert_eq!(
        text(&out.stdout),
        format!(
            "{shown}: valid: 1 interface (0 with WireGuard), 0 announces, 0 peers, \
             no trust material (2 warnings)\n"
        )
    );
}

#[test]
fn wrong_value_exits_1_naming_file_line_and_option() {
    let dir = TempDir::new("wrong-value");
    let p = dir.file(
        "weft",
        "config weft 'main'\n\
         \n\
         config interface 'mesh'\n\
         \toption ifname mesh0\n\
         \toption hello_interval 'fast'\n",
    );
    let out = check(&p);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:5: option 'hello_interval': expected seconds between 0.01 and 655.35 \
             with at most 2 decimals (e.g. 4 or 0.5), got \"fast\" (in interface 'mesh')\n",
            p.display()
        )
    );
}

#[test]
fn other_errors_exit_1() {
    let dir = TempDir::new("errors");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "syntax",
            b"config weft 'main'\n\toption hello_interval '4\n".to_vec(),
            ":2:24: unterminated ' quote (the file ends before it is closed)",
        ),
        (
            "missing",
            b"config interface 'mesh'\n\toption type wired\n".to_vec(),
            ":1: interface 'mesh': required option 'ifname' is missing",
        ),
        (
            "duplicate",
            b"config interface\n\toption ifname a\nconfig interface\n\toption ifname a\n".to_vec(),
            ":4: duplicate interface with ifname 'a' (first at line 2)",
        ),
        (
            "two-mains",
            b"config weft 'main'\nconfig weft 'again'\n".to_vec(),
            ":2: duplicate 'config weft' section: only one is allowed (first at line 1)",
        ),
        ("not-utf8", b"config weft 'main'\n\toption log_level '\xff'\n".to_vec(), ":2: not valid UTF-8 text"),
    ];
    for (name, contents, expected) in cases {
        let p = dir.file(name, contents);
        let out = check(&p);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert_eq!(err, format!("{}{expected}\n", p.display()), "{name}");
        assert_eq!(text(&out.stdout), "", "{name}");
    }
}

#[test]
fn unreadable_and_oversized_files_exit_1() {
    let dir = TempDir::new("unreadable");
    let missing = dir.0.join("absent");
    let out = check(&missing);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!("{}: cannot read: ", missing.display())),
        "{}",
        text(&out.stderr)
    );

    let out = check(&dir.0);
    assert_eq!(out.status.code(), Some(1), "a directory");
    assert!(text(&out.stderr).contains("cannot read"), "{}", text(&out.stderr));

    let big = dir.file("big", vec![b'#'; (1 << 20) + 1]);
    let out = check(&big);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("larger than 1048576 bytes"), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["check-config", "-c"],
        vec!["check-config", "--bogus"],
        vec!["check-config", "stray-file"],
        vec!["check-config", "-c", "a", "-c", "b"],
    ] {
        let out = weft(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("usage: weft check-config"), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "");
    }
}

#[test]
fn help_exits_0() {
    let out = weft(&["check-config", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("usage: weft check-config"));
}

#[test]
fn default_path_is_etc_config_weft() {
    let out = weft(&["check-config"]);
    // Whatever this machine has there, the message names the default file.
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("/etc/config/weft"), "{all}");
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{:?}", out.status);
}

/// The configuration the .ipk installs as /etc/config/weft must start the
/// daemon on a fresh router: valid, with WireGuard on the mesh interface
/// and, until a CA or trusted key is added, one warning that nobody will be
/// admitted (never plain Babel on the mesh).
#[test]
fn shipped_openwrt_config_is_valid() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/openwrt-package/files/weft.config");
    let out = check(Path::new(shipped));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 interface (1 with WireGuard)"), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one warning expected: {stderr}");
    assert!(stderr.contains("no neighbour will be admitted"), "{stderr}");

    // With a CA key added, as docs/OPENWRT.md tells, no warning is left.
    let dir = TempDir::new("shipped");
    let ca = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let with_ca = std::fs::read_to_string(shipped)
        .unwrap()
        .replace("config weft 'main'\n", &format!("config weft 'main'\n\tlist ca_public_key '{ca}'\n"));
    let out = check(&dir.file("weft", with_ca));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "no warnings expected");
}
