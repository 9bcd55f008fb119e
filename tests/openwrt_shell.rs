//! Runs the OpenWrt shell tests (`tests/openwrt/run.sh`): the procd init
//! script and the uci-defaults script under BusyBox ash against stand-ins for
//! OpenWrt's shell API, `sh -n` and shellcheck on every shell file, and the
//! SDK feed Makefile's install rule. The runner needs root (it chroots) and a
//! static busybox; it skips only shellcheck, with a message, when missing.

use std::path::Path;
use std::process::Command;

/// The runner's closing line: "N passed, N failed, N skipped".
fn summary(stdout: &str) -> Option<(u32, u32, u32)> {
    let line = stdout.lines().rev().find(|l| l.ends_with(" skipped"))?;
    let mut numbers = line.split(", ").map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??, numbers.next()??))
}

#[test]
fn openwrt_shell_scripts() {
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openwrt/run.sh");
    let out = Command::new("sh")
        .arg(&runner)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", runner.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown by `cargo test -- --nocapture`, and with any failure.
    print!("{stdout}");
    eprint!("{stderr}");
    for line in stdout.lines().filter(|l| l.contains("SKIP")) {
        eprintln!("openwrt_shell: {line}");
    }

    let Some((passed, failed, skipped)) = summary(&stdout) else {
        panic!("{} ended without its summary line (status {}):\n{stderr}", runner.display(), out.status);
    };
    // The one rule (tests/common/require.rs): CI installs shellcheck, so a
    // skipped check there means a missing dependency, not a pass.
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        assert_eq!(skipped, 0, "CI=true allows no skipped check (the 'SKIP' lines above)");
    }
    assert_eq!(failed, 0, "{failed} OpenWrt shell checks failed (the 'not ok' lines above)");
    assert!(out.status.success(), "runner exited with {}", out.status);
    // The runner has well over 100 checks; far fewer means it stopped early.
    assert!(passed >= 100, "only {passed} checks ran");
}

#[test]
fn summary_line_is_parsed() {
    assert_eq!(summary("ok - a\n3 passed, 1 failed, 2 skipped\n"), Some((3, 1, 2)));
    assert_eq!(summary("ok - a\n"), None);
}
