//! Builds the x86_64 .ipk with `make ipk ARCH=x86_64` (a static musl release
//! binary and the SDK-less packaging script) and checks it the way opkg and a
//! reviewer would: the outer gzipped tar and its three members, every control
//! field, the maintainer scripts, every file of the data archive with its
//! mode and owner, and that two builds give the same bytes.
//!
//! The first build takes a minute or two (release, LTO); later ones reuse it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const ARCH: &str = "x86_64";
const BIN_BUDGET: usize = 1_500_000;
const IPK_BUDGET: usize = 700_000;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn version() -> String {
    format!("{}-r1", env!("CARGO_PKG_VERSION"))
}

fn ipk_path(dist: &Path) -> PathBuf {
    dist.join(format!("weft_{}_{ARCH}.ipk", version()))
}

/// Runs `make ipk ARCH=x86_64` once for all tests of this binary.
fn built_ipk() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = Command::new("make")
            .args(["ipk", &format!("ARCH={ARCH}")])
            .current_dir(repo())
            .output()
            .map_err(|e| format!("cannot run make: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "make ipk ARCH={ARCH} failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(ipk_path(&repo().join("dist")))
    });
    match built {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

/// A directory removed when the test ends, whatever way it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("weft-ipk-{tag}-{}", std::process::id()));
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

fn gunzip(data: &[u8]) -> Vec<u8> {
    // Deterministic gzip (gzip -n): no file name, no time stamp.
    assert!(data.len() > 18 && data[..3] == [0x1f, 0x8b, 8], "not gzip data");
    assert_eq!(data[3] & 0x08, 0, "gzip member carries a file name");
    assert_eq!(&data[4..8], &[0, 0, 0, 0], "gzip member carries a time stamp");
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip -dc");
    let mut stdin = child.stdin.take().expect("gzip stdin");
    let input = data.to_vec();
    // Written from another thread so a full stdout pipe cannot block us.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child.stdout.take().expect("gzip stdout").read_to_end(&mut out).expect("read gzip output");
    writer.join().expect("writer thread").expect("write to gzip");
    assert!(child.wait().expect("gzip status").success(), "gzip -dc failed");
    out
}

#[derive(Debug)]
struct Entry {
    name: String,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: String,
    gname: String,
    mtime: u64,
    /// Target of a symbolic link.
    link: String,
    data: Vec<u8>,
}

fn octal(field: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(field);
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    u64::from_str_radix(text, 8).unwrap_or_else(|_| panic!("bad octal field {text:?}"))
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// A small reader for the GNU tar archives ipkg-build writes, checking each
/// header's checksum as tar and opkg do.
fn untar(data: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let header = data.get(at..at + 512).unwrap_or_else(|| panic!("tar archive truncated at byte {at}"));
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) })
            .sum();
        assert_eq!(sum, octal(&header[148..156]), "bad header checksum at {at}");
        assert_eq!(&header[257..265], b"ustar  \0", "not a GNU tar header");
        let size = usize::try_from(octal(&header[124..136])).expect("size");
        let body = at + 512;
        let content =
            data.get(body..body + size).unwrap_or_else(|| panic!("tar member at {at} truncated")).to_vec();
        entries.push(Entry {
            name: cstr(&header[0..100]),
            kind: header[156],
            mode: u32::try_from(octal(&header[100..108])).expect("mode"),
            uid: octal(&header[108..116]),
            gid: octal(&header[116..124]),
            uname: cstr(&header[265..297]),
            gname: cstr(&header[297..329]),
            mtime: octal(&header[136..148]),
            link: cstr(&header[157..257]),
            data: content,
        });
        at = body + size.div_ceil(512) * 512;
    }
    entries
}

fn member<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in archive: {:?}", names(entries)))
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

struct Ipk {
    outer: Vec<Entry>,
    control: Vec<Entry>,
    data: Vec<Entry>,
    data_tar_len: usize,
}

fn open_ipk(path: &Path) -> Ipk {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let outer = untar(&gunzip(&bytes));
    let control = untar(&gunzip(&member(&outer, "./control.tar.gz").data));
    let data_tar = gunzip(&member(&outer, "./data.tar.gz").data);
    let data = untar(&data_tar);
    Ipk { outer, control, data, data_tar_len: data_tar.len() }
}

/// "Field: value" lines of a control file, with continuation lines joined.
fn control_fields(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(more) = line.strip_prefix(' ') {
            let last = fields.last_mut().expect("continuation before any field");
            last.1.push('\n');
            last.1.push_str(more);
        } else {
            let (key, value) = line.split_once(": ").unwrap_or_else(|| panic!("bad control line {line:?}"));
            fields.push((key.to_string(), value.to_string()));
        }
    }
    fields
}

fn all_owned_by_root(entries: &[Entry], what: &str) {
    for e in entries {
        assert_eq!((e.uid, e.gid), (0, 0), "{what}: {} not owned by 0:0", e.name);
        assert!(
            e.uname.is_empty() && e.gname.is_empty(),
            "{what}: {} carries owner names {}/{} (numeric owners expected)",
            e.name,
            e.uname,
            e.gname
        );
    }
}

fn one_mtime(entries: &[Entry], what: &str) -> u64 {
    let mtime = entries[0].mtime;
    for e in entries {
        assert_eq!(e.mtime, mtime, "{what}: {} has another mtime", e.name);
    }
    mtime
}

fn sorted_by_name(entries: &[Entry], what: &str) {
    let listed = names(entries);
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted, "{what}: entries not sorted by name");
}

#[test]
fn outer_container_is_gzipped_tar_of_three_members() {
    let ipk = open_ipk(built_ipk());
    assert_eq!(
        names(&ipk.outer),
        ["./debian-binary", "./data.tar.gz", "./control.tar.gz"],
        "ipkg-build's member order"
    );
    assert_eq!(member(&ipk.outer, "./debian-binary").data, b"2.0\n");
    for e in &ipk.outer {
        assert_eq!(e.kind, b'0', "{} is not a regular file", e.name);
        assert_eq!(e.mode, 0o644, "{} mode", e.name);
    }
    all_owned_by_root(&ipk.outer, "outer");
    one_mtime(&ipk.outer, "outer");
}

#[test]
fn control_fields_and_scripts() {
    let ipk = open_ipk(built_ipk());
    assert_eq!(names(&ipk.control), ["./", "./conffiles", "./control", "./postinst", "./prerm"]);
    all_owned_by_root(&ipk.control, "control.tar.gz");
    sorted_by_name(&ipk.control, "control.tar.gz");
    let mtime = one_mtime(&ipk.control, "control.tar.gz");

    let control = member(&ipk.control, "./control");
    assert_eq!(control.mode, 0o644, "control mode");
    let text = String::from_utf8(control.data.clone()).expect("control is UTF-8");
    let fields = control_fields(&text);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Package",
            "Version",
            "Depends",
            "Source",
            "SourceName",
            "License",
            "Section",
            "SourceDateEpoch",
            "Maintainer",
            "Architecture",
            "Installed-Size",
            "Description"
        ],
        "fields, in package-pack.mk's order"
    );
    let field = |key: &str| -> &str {
        &fields.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}")).1
    };
    assert_eq!(field("Package"), "weft");
    assert_eq!(field("Version"), version());
    assert_eq!(field("Depends"), "libc, kmod-wireguard");
    assert_eq!(field("Source"), "feeds/weft/weft");
    assert_eq!(field("SourceName"), "weft");
    assert_eq!(field("License"), env!("CARGO_PKG_LICENSE"));
    assert_eq!(field("Section"), "net");
    assert_eq!(field("SourceDateEpoch"), mtime.to_string());
    assert_eq!(field("Architecture"), ARCH);
    assert_eq!(
        field("Installed-Size"),
        ipk.data_tar_len.to_string(),
        "ipkg-build's Installed-Size: the size of the uncompressed data tar"
    );
    let description = field("Description");
    assert!(
        description.contains("Babel") && description.contains("WireGuard"),
        "description: {description:?}"
    );

    let conffiles = member(&ipk.control, "./conffiles");
    assert_eq!(conffiles.mode, 0o644);
    assert_eq!(conffiles.data, b"/etc/config/weft\n");

    let postinst = member(&ipk.control, "./postinst");
    assert_eq!(postinst.mode, 0o755, "postinst mode");
    let postinst = String::from_utf8_lossy(&postinst.data);
    assert!(postinst.starts_with("#!/bin/sh\n"));
    assert!(postinst.contains(r#"[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0"#));
    assert!(postinst.contains(r#". "${IPKG_INSTROOT}/lib/functions.sh""#));
    assert!(postinst.contains(r#"default_postinst "$0" "$@""#));

    let prerm = member(&ipk.control, "./prerm");
    assert_eq!(prerm.mode, 0o755, "prerm mode");
    let prerm = String::from_utf8_lossy(&prerm.data);
    assert!(prerm.starts_with("#!/bin/sh\n"));
    assert!(prerm.contains(r#"default_prerm "$0" "$@""#));

    for script in ["./postinst", "./prerm"] {
        let dir = TempDir::new("script");
        let path = dir.0.join("script");
        std::fs::write(&path, &member(&ipk.control, script).data).expect("write script");
        let status = Command::new("sh").arg("-n").arg(&path).status().expect("sh -n");
        assert!(status.success(), "{script} is not valid sh");
    }
}

#[test]
fn data_files_modes_and_contents() {
    let ipk = open_ipk(built_ipk());
    all_owned_by_root(&ipk.data, "data.tar.gz");
    sorted_by_name(&ipk.data, "data.tar.gz");
    one_mtime(&ipk.data, "data.tar.gz");

    let listing: Vec<(&str, u8, u32)> = ipk.data.iter().map(|e| (e.name.as_str(), e.kind, e.mode)).collect();
    let dir = b'5';
    let file = b'0';
    assert_eq!(
        listing,
        [
            ("./", dir, 0o755),
            ("./etc/", dir, 0o755),
            ("./etc/config/", dir, 0o755),
            // INSTALL_CONF: OpenWrt installs conffiles 0600.
            ("./etc/config/weft", file, 0o600),
            ("./etc/init.d/", dir, 0o755),
            ("./etc/init.d/weft", file, 0o755),
            ("./etc/uci-defaults/", dir, 0o755),
            ("./etc/uci-defaults/90-weft", file, 0o755),
            ("./lib/", dir, 0o755),
            ("./lib/upgrade/", dir, 0o755),
            ("./lib/upgrade/keep.d/", dir, 0o755),
            ("./lib/upgrade/keep.d/weft", file, 0o644),
            ("./usr/", dir, 0o755),
            ("./usr/libexec/", dir, 0o755),
            ("./usr/libexec/rpcd/", dir, 0o755),
            ("./usr/libexec/rpcd/weft", b'2', 0o777),
            ("./usr/sbin/", dir, 0o755),
            ("./usr/sbin/weft", file, 0o755),
        ]
    );
    // rpcd runs it as its "weft" exec plugin; the binary tells by argv[0].
    assert_eq!(member(&ipk.data, "./usr/libexec/rpcd/weft").link, "../../sbin/weft");

    let same = |entry: &str, source: &str| {
        let want = std::fs::read(repo().join(source)).expect(source);
        assert!(member(&ipk.data, entry).data == want, "{entry} differs from {source}");
    };
    same("./etc/config/weft", "openwrt-package/files/weft.config");
    same("./etc/init.d/weft", "init.d/weft");
    same("./etc/uci-defaults/90-weft", "uci-defaults/90-weft");
    same("./usr/sbin/weft", &format!("dist/{ARCH}/weft"));
    // sysupgrade keeps the key directory, which is not a file of the package.
    assert_eq!(member(&ipk.data, "./lib/upgrade/keep.d/weft").data, b"/etc/weft/\n");

    // The packaged binary is a static executable that runs here.
    let bin = &member(&ipk.data, "./usr/sbin/weft").data;
    assert!(bin.len() <= BIN_BUDGET, "binary is {} bytes, budget {BIN_BUDGET}", bin.len());
    assert_eq!(&bin[..4], b"\x7fELF", "binary is not ELF");
    let dir = TempDir::new("bin");
    let path = dir.0.join("weft");
    std::fs::write(&path, bin).expect("write binary");
    let mut perms = std::fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("chmod");
    // ETXTBSY: a process another test forks at this moment can hold a copy
    // of the write descriptor until it execs; that ends within moments.
    let mut tries = 0;
    let out = loop {
        match Command::new(&path).arg("--version").output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => break r.expect("run weft"),
        }
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("weft {}", env!("CARGO_PKG_VERSION")));
    let file = Command::new("file").arg("-b").arg(&path).output();
    if let Ok(file) = file {
        let info = String::from_utf8_lossy(&file.stdout);
        // static or static-pie: no program interpreter, so no libc needed.
        assert!(
            info.contains("statically linked") || info.contains("static-pie linked"),
            "not static: {info}"
        );
        assert!(!info.contains("not stripped"), "not stripped: {info}");
    }
}

#[test]
fn ipk_is_reproducible_and_within_budget() {
    let first = built_ipk();
    let bytes = std::fs::read(first).expect("read ipk");
    assert!(bytes.len() <= IPK_BUDGET, "ipk is {} bytes, budget {IPK_BUDGET}", bytes.len());
    let bin = repo().join(format!("dist/{ARCH}/weft"));
    let dist = TempDir::new("repro");
    let out = Command::new("sh")
        .arg(repo().join("scripts/build-ipk.sh"))
        .arg(ARCH)
        .env("DIST", &dist.0)
        .env("WEFT_BIN", &bin)
        .output()
        .expect("run build-ipk.sh");
    assert!(out.status.success(), "build-ipk.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    let again = std::fs::read(ipk_path(&dist.0)).expect("read rebuilt ipk");
    assert!(again == bytes, "a second build of the same inputs differs");
}
