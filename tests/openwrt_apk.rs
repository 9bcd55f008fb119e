//! Builds the x86_64 .apk with `make apk ARCH=x86_64` and checks it with the
//! real apk-tools 3 (built once from the OpenWrt component sources and cached
//! outside the repository by tests/openwrt/apk-tools.sh): `apk adbdump` shows
//! the metadata and scripts the .ipk has, and `apk add --root SCRATCH
//! --allow-untrusted` installs it (beside stub `libc` and `kmod-wireguard`
//! packages, so that its dependencies resolve) into a scratch root whose
//! files are then compared with the .ipk's; the maintainer scripts run there
//! against a recording stand-in for /lib/functions.sh; an upgrade keeps a
//! changed configuration and a removal runs the pre-deinstall script.
//!
//! Needs root (apk runs the scripts chrooted), a static busybox, and what
//! building apk-tools needs (scripts/install-deps.sh installs all of it).
//! The first run builds the release binary (a minute or two) and apk-tools
//! (~15 s); later runs reuse both.

// The one skip rule (fails under CI=true).
#[path = "common/require.rs"]
#[macro_use]
mod require;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const ARCH: &str = "x86_64";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn version() -> String {
    format!("{}-r1", env!("CARGO_PKG_VERSION"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Skips the calling test unless it runs as root: apk runs the maintainer
/// scripts chrooted into the scratch root.
macro_rules! require_root {
    () => {
        if unsafe { geteuid() } != 0 {
            cannot_run!("needs root (apk runs the package's scripts chrooted)");
        }
    };
}

extern "C" {
    fn geteuid() -> u32;
}

/// `make apk ARCH=x86_64` once for all tests of this binary, with the
/// cached apk-tools 3: the apk binary and the package.
fn built() -> &'static (String, PathBuf) {
    static BUILT: OnceLock<Result<(String, PathBuf), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let tools = Command::new("sh").arg(repo().join("tests/openwrt/apk-tools.sh")).output();
        let tools = tools.map_err(|e| format!("cannot run tests/openwrt/apk-tools.sh: {e}"))?;
        if !tools.status.success() {
            return Err(format!("building apk-tools failed:\n{}", String::from_utf8_lossy(&tools.stderr)));
        }
        let apk = stdout(&tools).trim().to_string();
        let out = Command::new("make")
            .args(["apk", &format!("ARCH={ARCH}"), &format!("APK={apk}")])
            .current_dir(repo())
            .output()
            .map_err(|e| format!("cannot run make: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "make apk ARCH={ARCH} failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok((apk, repo().join(format!("dist/{ARCH}/weft-{}.apk", version()))))
    });
    match built {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// The cached apk-tools 3 binary.
fn apk() -> &'static str {
    &built().0
}

/// The package `make apk` built.
fn built_apk() -> &'static Path {
    &built().1
}

/// A directory removed when the test ends, whatever way it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("weft-apk-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `apk adbdump` of a package: its `info:` fields (lists joined by ","),
/// and its scripts by type.
struct Dump {
    info: BTreeMap<String, String>,
    scripts: BTreeMap<String, String>,
}

fn adbdump(pkg: &Path) -> Dump {
    let text = stdout(&run(Command::new(apk()).arg("adbdump").arg(pkg)));
    let mut info = BTreeMap::new();
    let mut scripts = BTreeMap::new();
    let mut section = String::new();
    let mut key: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.trim_end_matches(':').to_string();
            key = None;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        match section.as_str() {
            "info" if indent == 2 => {
                let (k, v) = t.split_once(':').unwrap_or((t, ""));
                let v = v.trim();
                // "depends: # 2 items" and "description: |" continue below.
                let v = if v.starts_with('#') || v == "|" { "" } else { v };
                info.insert(k.to_string(), v.to_string());
                key = Some(k.to_string());
            }
            "info" if indent > 2 => {
                let k = key.clone().expect("continuation after a key");
                let e = info.entry(k).or_default();
                let item = t.strip_prefix("- ").unwrap_or(t);
                if !e.is_empty() {
                    e.push(',');
                }
                e.push_str(item);
            }
            "scripts" if indent == 2 => {
                let k = t.trim_end_matches([':', ' ', '|']).to_string();
                scripts.insert(k.clone(), String::new());
                key = Some(k);
            }
            "scripts" if indent > 2 => {
                let s = scripts.get_mut(key.as_ref().expect("script body after its type")).expect("script");
                s.push_str(&line[4..]);
                s.push('\n');
            }
            _ => {}
        }
    }
    Dump { info, scripts }
}

/// The .ipk of the same binary, built into a temporary directory.
fn ipk_control_and_data(dir: &Path) -> (String, PathBuf) {
    run(Command::new("sh")
        .arg(repo().join("scripts/build-ipk.sh"))
        .arg(ARCH)
        .env("DIST", dir)
        .env("WEFT_BIN", repo().join(format!("dist/{ARCH}/weft"))));
    let ipk = dir.join(format!("weft_{}_{ARCH}.ipk", version()));
    let x = dir.join("x");
    std::fs::create_dir_all(x.join("data")).unwrap();
    run(Command::new("tar").arg("-xzf").arg(&ipk).arg("-C").arg(&x));
    let control =
        stdout(&run(Command::new("tar").arg("-xzOf").arg(x.join("control.tar.gz")).arg("./control")));
    run(Command::new("tar").arg("-xzf").arg(x.join("data.tar.gz")).arg("-C").arg(x.join("data")));
    (control, x.join("data"))
}

fn control_field<'a>(control: &'a str, key: &str) -> &'a str {
    control
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in control:\n{control}"))
}

/// What a file-system entry is: mode, owner, group, and a file's contents.
type Entry = (u32, u32, u32, Option<Vec<u8>>);

/// Every file, link and directory under `root` (relative, "/"-rooted).
fn tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let p = e.expect("entry").path();
            let m = std::fs::symlink_metadata(&p).expect("stat");
            let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
            let data = m.is_file().then(|| std::fs::read(&p).expect("read"));
            out.insert(rel, (m.permissions().mode() & 0o7777, m.uid(), m.gid(), data));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn metadata_and_scripts_match_the_ipk() {
    require_root!();
    let dump = adbdump(built_apk());
    let tmp = TempDir::new("meta");
    let (control, _) = ipk_control_and_data(&tmp.0);
    let info = &dump.info;
    let get = |k: &str| info.get(k).map(String::as_str).unwrap_or_else(|| panic!("no {k} in {info:#?}"));
    assert_eq!(get("name"), "weft");
    assert_eq!(get("name"), control_field(&control, "Package"));
    assert_eq!(get("version"), version());
    assert_eq!(get("version"), control_field(&control, "Version"));
    assert_eq!(get("arch"), ARCH);
    assert_eq!(get("arch"), control_field(&control, "Architecture"));
    assert_eq!(get("license"), env!("CARGO_PKG_LICENSE"));
    assert_eq!(get("license"), control_field(&control, "License"));
    assert_eq!(get("origin"), control_field(&control, "Source"));
    assert_eq!(get("maintainer"), control_field(&control, "Maintainer"));
    // The same dependencies (apk sorts them).
    let mut ipk_deps: Vec<&str> = control_field(&control, "Depends").split(", ").collect();
    ipk_deps.sort_unstable();
    assert_eq!(get("depends"), ipk_deps.join(","));
    assert_eq!(get("depends"), "kmod-wireguard,libc");
    // OpenWrt's packages provide NAME-any.
    assert_eq!(get("provides"), "weft-any");
    let description = get("description");
    assert!(description.starts_with("weft is a Babel (RFC 8966)"), "{description}");
    assert!(description.contains("(/etc/config/weft)"), "the whole description: {description}");
    assert!(get("installed-size").parse::<u64>().expect("installed-size") > 500_000);

    // The scripts package-pack.mk gives a package without its own.
    let types: Vec<&str> = dump.scripts.keys().map(String::as_str).collect();
    assert_eq!(types, ["post-install", "post-upgrade", "pre-deinstall"], "{:#?}", dump.scripts);
    let post = &dump.scripts["post-install"];
    assert!(post.starts_with("#!/bin/sh\n"), "{post}");
    for line in [
        r#"[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0"#,
        r#"[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0"#,
        r#"export pkgname="weft""#,
        "add_group_and_user",
        "default_postinst",
    ] {
        assert!(post.lines().any(|l| l == line), "post-install lacks {line:?}:\n{post}");
    }
    let upgrade = &dump.scripts["post-upgrade"];
    assert!(upgrade.starts_with("#!/bin/sh\nexport PKG_UPGRADE=1\n"), "{upgrade}");
    assert!(
        upgrade.ends_with(post.strip_prefix("#!/bin/sh\n").unwrap()),
        "post-upgrade is post-install with PKG_UPGRADE"
    );
    assert!(dump.scripts["pre-deinstall"].lines().any(|l| l == "default_prerm"));
    for (name, body) in &dump.scripts {
        let mut child = Command::new("sh").arg("-n").stdin(Stdio::piped()).spawn().expect("sh -n");
        child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "{name} is not valid sh:\n{body}");
    }
}

/// A scratch root with a static busybox as /bin/sh (apk runs the scripts
/// chrooted there) and a /lib/functions.sh that records what the scripts
/// call; stub `libc` and `kmod-wireguard` packages beside it.
fn scratch(tag: &str) -> (TempDir, PathBuf, Vec<PathBuf>) {
    let dir = TempDir::new(tag);
    let root = dir.0.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("lib")).unwrap();
    let busybox =
        String::from_utf8(run(Command::new("sh").args(["-c", "command -v busybox"])).stdout).unwrap();
    let file = stdout(&run(Command::new("file").arg("-L").arg(busybox.trim())));
    assert!(file.contains("statically linked"), "busybox must be static (busybox-static): {file}");
    std::fs::copy(busybox.trim(), root.join("bin/sh")).unwrap();
    std::fs::write(
        root.join("lib/functions.sh"),
        "add_group_and_user() { echo \"add_group_and_user $pkgname\" >>/scripts.log; }\n\
         default_postinst() { echo \"default_postinst $pkgname upgrade=${PKG_UPGRADE:-0} args=$#\" >>/scripts.log; }\n\
         default_prerm() { echo \"default_prerm $pkgname\" >>/scripts.log; }\n",
    )
    .unwrap();
    let empty = dir.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let stubs: Vec<PathBuf> = ["libc", "kmod-wireguard"]
        .iter()
        .map(|name| {
            let out = dir.0.join(format!("{name}.apk"));
            run(Command::new(apk())
                .arg("mkpkg")
                .args(["--info", &format!("name:{name}"), "--info", "version:1-r1"])
                .args(["--info", &format!("arch:{ARCH}"), "--info", "description:stand-in"])
                .arg("--files")
                .arg(&empty)
                .arg("--output")
                .arg(&out));
            out
        })
        .collect();
    (dir, root, stubs)
}

fn apk_in(root: &Path) -> Command {
    let mut c = Command::new(apk());
    c.arg("--root").arg(root).args(["--no-network", "--no-cache"]);
    c
}

fn scripts_log(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("scripts.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn installs_the_files_of_the_ipk_into_a_scratch_root() {
    require_root!();
    let pkg = built_apk();
    let (dir, root, stubs) = scratch("install");
    let out = run(apk_in(&root).args(["add", "--initdb", "--allow-untrusted"]).args(&stubs).arg(pkg));
    assert!(stdout(&out).contains("Executing weft-"), "{}", stdout(&out));
    assert_eq!(scripts_log(&root), ["add_group_and_user weft", "default_postinst weft upgrade=0 args=0"]);

    // The installed files are the .ipk's files, with their modes, owners
    // and contents, plus apk's own list of them.
    let (_, ipk_data) = ipk_control_and_data(&dir.0.join("ipk"));
    let ipk = tree(&ipk_data);
    let installed = tree(&root);
    for (path, (mode, _, _, data)) in &ipk {
        let got = installed.get(path).unwrap_or_else(|| panic!("{path} is not installed"));
        assert_eq!(got.0, *mode, "{path}: mode {:o}, the .ipk has {mode:o}", got.0);
        assert_eq!((got.1, got.2), (0, 0), "{path}: owner");
        assert!(got.3 == *data, "{path}: contents differ from the .ipk's");
    }
    let extra: Vec<&String> = installed
        .keys()
        .filter(|p| !ipk.contains_key(*p))
        .filter(|p| !p.starts_with("/lib/apk") && !p.starts_with("/etc/apk") && !p.starts_with("/var"))
        .filter(|p| {
            !["/bin", "/bin/sh", "/lib/functions.sh", "/scripts.log", "/dev", "/proc"].contains(&p.as_str())
        })
        .collect();
    assert!(extra.is_empty(), "installed beyond the .ipk's files: {extra:?}");
    // Files and symlinks (the rpcd plugin), as OpenWrt's package-pack.mk lists them.
    let is_link = |p: &str| {
        std::fs::symlink_metadata(ipk_data.join(p.trim_start_matches('/')))
            .is_ok_and(|m| m.file_type().is_symlink())
    };
    let files: Vec<&String> =
        ipk.iter().filter(|(p, v)| v.3.is_some() || is_link(p)).map(|(p, _)| p).collect();
    let list = std::fs::read_to_string(root.join("lib/apk/packages/weft.list")).expect("weft.list");
    let listed: Vec<&str> = list.lines().collect();
    assert_eq!(listed, files, "weft.list names every file of the package");
    assert_eq!(
        std::fs::read_to_string(root.join("lib/apk/packages/weft.conffiles")).unwrap(),
        "/etc/config/weft\n/etc/weft/\n",
        "the Makefile's conffiles"
    );
    let config = std::fs::read(root.join("etc/config/weft")).unwrap();
    let sum = stdout(&run(Command::new("sha256sum").arg(root.join("etc/config/weft"))));
    assert_eq!(
        std::fs::read_to_string(root.join("lib/apk/packages/weft.conffiles_static")).unwrap(),
        format!("/etc/config/weft {}\n", sum.split_whitespace().next().unwrap())
    );
    assert!(config == std::fs::read(repo().join("openwrt-package/files/weft.config")).unwrap());
    assert_eq!(std::fs::read_to_string(root.join("lib/upgrade/keep.d/weft")).unwrap(), "/etc/weft/\n");
    // apk's database knows the package and its files.
    let owned = stdout(&run(apk_in(&root).args(["info", "-L", "weft"])));
    assert!(owned.lines().any(|l| l == "usr/sbin/weft"), "{owned}");
    let v = run(Command::new(root.join("usr/sbin/weft")).arg("--version"));
    assert_eq!(stdout(&v).trim(), format!("weft {}", env!("CARGO_PKG_VERSION")));
    // Nothing of the package's files is left over in dist/ by the build.
    assert!(pkg.parent().unwrap().read_dir().unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

/// A copy of the packaging inputs with PKG_RELEASE 2, packed by the copy's
/// own script, for an upgrade.
fn release_2(dir: &Path) -> PathBuf {
    let copy = dir.join("checkout");
    std::fs::create_dir_all(&copy).unwrap();
    for d in ["scripts", "openwrt-package", "init.d", "uci-defaults"] {
        run(Command::new("cp").arg("-a").arg(repo().join(d)).arg(copy.join(d)));
    }
    let mk = copy.join("openwrt-package/Makefile");
    let text = std::fs::read_to_string(&mk).unwrap();
    assert!(text.contains("\nPKG_RELEASE:=1\n"), "the Makefile's release is 1");
    std::fs::write(&mk, text.replace("\nPKG_RELEASE:=1\n", "\nPKG_RELEASE:=2\n")).unwrap();
    let dist = dir.join("dist2");
    run(Command::new("sh")
        .arg(copy.join("scripts/build-apk.sh"))
        .arg(ARCH)
        .env("DIST", &dist)
        .env("APK", apk())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("WEFT_BIN", repo().join(format!("dist/{ARCH}/weft"))));
    dist.join(format!("{ARCH}/weft-{}-r2.apk", env!("CARGO_PKG_VERSION")))
}

#[test]
fn an_upgrade_keeps_a_changed_configuration_and_removal_runs_pre_deinstall() {
    require_root!();
    let (dir, root, stubs) = scratch("upgrade");
    run(apk_in(&root).args(["add", "--initdb", "--allow-untrusted"]).args(&stubs).arg(built_apk()));
    let conf = root.join("etc/config/weft");
    let mut mine = std::fs::read_to_string(&conf).unwrap();
    mine.push_str("\n# changed on the router\n");
    std::fs::write(&conf, &mine).unwrap();

    let r2 = release_2(&dir.0);
    let out = run(apk_in(&root).args(["add", "--allow-untrusted"]).arg(&r2));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Upgrading weft ({} -> {}-r2)", version(), env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), mine, "the changed configuration is kept");
    assert!(root.join("etc/config/weft.apk-new").exists(), "the new default is put beside it");
    assert_eq!(
        scripts_log(&root),
        [
            "add_group_and_user weft",
            "default_postinst weft upgrade=0 args=0",
            "add_group_and_user weft",
            "default_postinst weft upgrade=1 args=0",
        ]
    );

    run(apk_in(&root).args(["del", "weft"]));
    assert_eq!(scripts_log(&root).last().map(String::as_str), Some("default_prerm weft"));
    for gone in ["usr/sbin/weft", "etc/init.d/weft", "etc/uci-defaults/90-weft", "lib/apk/packages/weft.list"]
    {
        assert!(!root.join(gone).exists(), "{gone} is left after removal");
    }
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), mine, "a changed configuration outlives removal");
}

#[test]
fn apk_is_reproducible() {
    require_root!();
    let first = std::fs::read(built_apk()).expect("read apk");
    let dist = TempDir::new("repro");
    run(Command::new("sh")
        .arg(repo().join("scripts/build-apk.sh"))
        .arg(ARCH)
        .env("DIST", &dist.0)
        .env("APK", apk())
        .env("WEFT_BIN", repo().join(format!("dist/{ARCH}/weft"))));
    let again = std::fs::read(dist.0.join(format!("{ARCH}/weft-{}.apk", version()))).expect("rebuilt apk");
    assert!(again == first, "a second build of the same inputs differs");
}
