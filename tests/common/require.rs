//! One rule for a test that cannot run here (not root, a program missing, a
//! VM image that cannot be built): under `CI=true` it fails, because CI
//! installs everything (scripts/install-deps.sh) and a skipped test would
//! pass while proving nothing; elsewhere it is skipped with a line written
//! straight to stderr, past libtest's capture of `eprintln!`.
//!
//! Self-contained (the macros expand to plain std code), so that test
//! crates without `mod common` include it with `#[path]`.

#![allow(dead_code, unused_macros)]

/// Ends the calling test: a failure under `CI=true`, else a visible skip.
#[macro_export]
macro_rules! cannot_run {
    ($($why:tt)*) => {{
        let why = format!($($why)*);
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("cannot run here, and CI=true allows no skipping: {why} (scripts/install-deps.sh)");
        }
        {
            use std::io::Write as _;
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
        }
        return;
    }};
}

/// Ends the calling test (see [`cannot_run!`]) unless every program named
/// is on PATH.
#[macro_export]
macro_rules! require_cmd {
    ($($cmd:expr),+) => {
        $(
            let found = std::process::Command::new("sh")
                .args(["-c", &format!("command -v {}", $cmd)])
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                $crate::cannot_run!("needs {} (scripts/install-deps.sh installs it)", $cmd);
            }
        )+
    };
}

/// Ends the calling test (see [`cannot_run!`]) unless it runs as root with
/// iproute2, as network namespaces need.
#[macro_export]
macro_rules! require_netns {
    () => {
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false);
        if !root {
            $crate::cannot_run!("needs root for network namespaces");
        }
        $crate::require_cmd!("ip");
    };
}

/// True when running under CI (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
