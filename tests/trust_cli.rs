//! End-to-end test of the key and credential commands with the built binary:
//! genkey → pubkey (checked against `wg pubkey`) → ca init → ca sign →
//! cert show --json → ca revoke twice, with file modes and exit codes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use weft::trust::{router_id, MeshPrefix, PublicKey, RevocationList};

#[path = "common/weft_cli.rs"]
mod weft_cli;
use weft_cli::{run_with_stdin, WEFT};

/// A scratch directory unique to this process and test, removed on drop
/// (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("weft-trust-cli-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn weft(args: &[&str]) -> Output {
    run_with_stdin(WEFT, args, "")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn json(out: Output, what: &str) -> serde_json::Value {
    serde_json::from_str(&ok(out, what)).unwrap()
}

#[test]
fn pubkey_matches_wireguard_tools() {
    // RFC 7748 §6.1 Alice: a fixed vector first.
    let out = run_with_stdin(WEFT, &["pubkey"], "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n");
    assert_eq!(ok(out, "pubkey").trim(), "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
    let has_wg = Command::new("wg").arg("--version").output().is_ok();
    assert!(has_wg, "wg (wireguard-tools) is needed by this test: run scripts/install-deps.sh");
    for _ in 0..5 {
        let private = ok(weft(&["genkey"]), "genkey");
        assert_eq!(private.len(), 45, "44 base64 characters and a newline");
        let ours = ok(run_with_stdin(WEFT, &["pubkey"], &private), "pubkey");
        let theirs = ok(run_with_stdin("wg", &["pubkey"], &private), "wg pubkey");
        assert_eq!(ours, theirs, "for private key {private:?}");
        // And the other way round: a key made by wg.
        let wg_private = ok(run_with_stdin("wg", &["genkey"], ""), "wg genkey");
        let ours = ok(run_with_stdin(WEFT, &["pubkey"], &wg_private), "pubkey");
        let theirs = ok(run_with_stdin("wg", &["pubkey"], &wg_private), "wg pubkey");
        assert_eq!(ours, theirs);
    }
    let bad = run_with_stdin(WEFT, &["pubkey"], "not a key\n");
    assert_eq!(code(&bad), 1, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("base64"), "{}", stderr(&bad));
}

#[test]
fn ca_sign_show_and_revoke_end_to_end() {
    let dir = TempDir::new("e2e");
    let ca = dir.s("ca");

    // Node key.
    let private = ok(weft(&["genkey"]), "genkey");
    let key = ok(run_with_stdin(WEFT, &["pubkey"], &private), "pubkey");
    let key = key.trim();
    let signing = ok(run_with_stdin(WEFT, &["pubkey", "--signing"], &private), "pubkey --signing");
    let signing = signing.trim();
    assert_eq!(signing.len(), 44, "a 32-byte key in base64: {signing}");
    assert_ne!(signing, key);

    // CA: files, modes, refusal to overwrite.
    let init = ok(weft(&["ca", "init", "--out", &ca]), "ca init");
    assert!(init.contains("CA key id:"), "{init}");
    let key_file = dir.path("ca/ca.key");
    assert_eq!(mode(&key_file), 0o600, "ca.key must be 0600");
    assert_eq!(mode(&dir.path("ca")), 0o700);
    assert_eq!(mode(&dir.path("ca/ca.pub")) & 0o600, 0o600);
    let ca_key_before = std::fs::read(&key_file).unwrap();
    let again = weft(&["ca", "init", "--out", &ca]);
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    assert!(stderr(&again).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(&key_file).unwrap(), ca_key_before);
    let ca_pub = std::fs::read_to_string(dir.path("ca/ca.pub")).unwrap();

    // Sign.
    let cert = dir.s("node.cert");
    ok(
        weft(&[
            "ca",
            "sign",
            "--ca",
            &ca,
            "--name",
            "kitchen",
            "--public-key",
            key,
            "--signing-key",
            signing,
            "--prefix",
            "10.1.0.0/16",
            "--prefix",
            "fd00:1234:5678:100::/56",
            "--group",
            "lan",
            "--group",
            "ops",
            "--valid-for",
            "90d",
            "--out",
            &cert,
        ]),
        "ca sign",
    );
    let text = std::fs::read_to_string(&cert).unwrap();
    assert!(text.starts_with("-----BEGIN WEFT CREDENTIAL-----\n"), "{text}");

    // Show, verified against the CA directory.
    let v = json(
        weft(&["cert", "show", &cert, "--json", "--ca", &ca, "--mesh-prefix", "fd00:1234:5678::/48"]),
        "cert show",
    );
    let node: PublicKey = key.parse().unwrap();
    let mesh: MeshPrefix = "fd00:1234:5678::/48".parse().unwrap();
    assert_eq!(v["kind"], "credential");
    assert_eq!(v["signing_key"], signing, "the signing key went into the credential");
    let bad = weft(&[
        "ca",
        "sign",
        "--ca",
        &ca,
        "--name",
        "x",
        "--public-key",
        key,
        "--signing-key",
        "short",
        "--out",
        "y",
    ]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--signing-key"), "{}", stderr(&bad));
    assert_eq!(v["name"], "kitchen");
    assert_eq!(v["public_key"], key);
    assert_eq!(v["router_id"], router_id(&node).to_string());
    assert_eq!(v["mesh_address"], mesh.address_for(&node).to_string());
    assert_eq!(v["prefixes"], serde_json::json!(["10.1.0.0/16", "fd00:1234:5678:100::/56"]));
    assert_eq!(v["groups"], serde_json::json!(["lan", "ops"]));
    assert_eq!(v["signature"], "valid");
    assert_eq!(v["validity"], "valid");
    let nb = v["not_before_unix"].as_u64().unwrap();
    let na = v["not_after_unix"].as_u64().unwrap();
    // 90 days from now, starting 5 minutes back for clock skew.
    assert_eq!(na - nb, 90 * 86_400 + 300);
    assert!(v["not_before"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["ca_key_id"].as_str().unwrap().len(), 16);

    // Verified against the CA public key text too; human output.
    let human = ok(weft(&["cert", "show", &cert, "--ca-public-key", ca_pub.trim()]), "cert show");
    assert!(human.contains("name:          kitchen"), "{human}");
    assert!(human.contains("signature:     valid"), "{human}");

    // Another CA does not vouch for it: exit 1, and JSON says why.
    let other = dir.s("other-ca");
    ok(weft(&["ca", "init", "--out", &other]), "ca init other");
    let out = weft(&["cert", "show", &cert, "--json", "--ca", &other]);
    assert_eq!(code(&out), 1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signature"], "unknown-ca");

    // A tampered file is refused with a clear error or a bad signature.
    let tampered = dir.s("tampered.cert");
    std::fs::write(&tampered, text.replacen("AQEBI", "AQEBJ", 1)).unwrap();
    let out = weft(&["cert", "show", &tampered, "--ca", &ca]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));

    // Revoke twice (two keys), then the same key again (no change).
    let list = dir.s("revoked.list");
    let key2 = ok(run_with_stdin(WEFT, &["pubkey"], &ok(weft(&["genkey"]), "genkey")), "pubkey");
    let key2 = key2.trim();
    ok(weft(&["ca", "revoke", "--ca", &ca, "--public-key", key, "--out", &list]), "revoke 1");
    ok(weft(&["ca", "revoke", "--ca", &ca, "--public-key", key2, "--out", &list]), "revoke 2");
    let v = json(weft(&["cert", "show", &list, "--json", "--ca", &ca]), "show list");
    assert_eq!(v["kind"], "revocation-list");
    assert_eq!(v["serial"], 2);
    assert_eq!(v["revoked"], serde_json::json!([key, key2]));
    assert_eq!(v["signature"], "valid");
    let out = weft(&["ca", "revoke", "--ca", &ca, "--public-key", key, "--out", &list]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));
    let parsed = RevocationList::from_armour(&std::fs::read_to_string(&list).unwrap()).unwrap();
    assert_eq!(parsed.revoked().len(), 2);
    assert_eq!(parsed.serial(), 2);

    // Another CA cannot append to this CA's list.
    let out = weft(&["ca", "revoke", "--ca", &other, "--public-key", key, "--out", &list]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // No temporary files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let dir = TempDir::new("usage");
    let ca = dir.s("ca");
    let key = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
    for args in [
        vec!["ca"],
        vec!["ca", "frobnicate"],
        vec!["cert"],
        vec!["cert", "show"],
        vec!["genkey", "extra"],
        vec!["ca", "init"],
        vec!["ca", "init", "--out"],
        vec!["ca", "init", "--out", &ca, "--bogus"],
        vec!["ca", "sign", "--ca", &ca, "--name", "n", "--out", "x"],
        vec!["ca", "sign", "--ca", &ca, "--name", "n", "--public-key", "short", "--out", "x"],
        vec![
            "ca",
            "sign",
            "--ca",
            &ca,
            "--name",
            "n",
            "--public-key",
            key,
            "--valid-for",
            "10",
            "--out",
            "x",
        ],
        vec![
            "ca",
            "sign",
            "--ca",
            &ca,
            "--name",
            "n",
            "--public-key",
            key,
            "--prefix",
            "10.0.0.1/8",
            "--out",
            "x",
        ],
        vec!["ca", "sign", "--ca", &ca, "--name", "n", "--public-key", key, "--group", "a b", "--out", "x"],
        vec!["cert", "show", "x", "--mesh-prefix", "fd00::/80"],
    ] {
        let out = weft(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("weft "), "{args:?}");
    }
    // Valid arguments, but no CA there: a failure, not a usage error.
    let out = weft(&["ca", "sign", "--ca", &ca, "--name", "n", "--public-key", key, "--out", &dir.s("c")]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("ca.key"), "{}", stderr(&out));
    let out = weft(&["cert", "show", &dir.s("missing")]);
    assert_eq!(code(&out), 1);
    std::fs::write(dir.path("junk"), "hello\n").unwrap();
    let out = weft(&["cert", "show", &dir.s("junk")]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("BEGIN WEFT CREDENTIAL"), "{}", stderr(&out));
}

#[test]
fn ca_sign_refuses_a_low_order_key() {
    let dir = TempDir::new("loworder");
    let ca = dir.s("ca");
    ok(weft(&["ca", "init", "--out", &ca]), "ca init");
    // The all-zero key and 1 (small order): anyone "shares" a secret with them.
    for key in
        ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
    {
        let out =
            weft(&["ca", "sign", "--ca", &ca, "--name", "n", "--public-key", key, "--out", &dir.s("c")]);
        assert_eq!(code(&out), 2, "{key}: {}", stderr(&out));
        assert!(stderr(&out).contains("small order"), "{}", stderr(&out));
        assert!(!dir.path("c").exists());
    }
}
