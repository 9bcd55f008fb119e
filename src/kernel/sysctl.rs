//! Kernel switches under /proc/sys (forwarding, reverse-path filtering):
//! read, write, read back, and put back at exit what weft changed.
//!
//! Keys are paths below the root, e.g. `net/ipv6/conf/all/forwarding`
//! (slashes, not dots: interface names such as `eth0.10` contain dots).

use std::io;
use std::path::{Path, PathBuf};

/// IPv6 forwarding on every interface (writing `all` sets each one).
pub const IPV6_FORWARDING: &str = "net/ipv6/conf/all/forwarding";
/// IPv4 forwarding (the same switch as `net.ipv4.ip_forward`).
pub const IPV4_FORWARDING: &str = "net/ipv4/conf/all/forwarding";

/// `net/ipv4/conf/IFNAME/rp_filter`.
pub fn rp_filter_key(ifname: &str) -> String {
    format!("net/ipv4/conf/{ifname}/rp_filter")
}

/// The sysctl tree: `/proc/sys`, or a directory of plain files in tests.
#[derive(Debug, Clone)]
pub struct Sysctl {
    root: PathBuf,
}

impl Sysctl {
    /// The running kernel's (of the network namespace this process is in).
    pub fn system() -> Sysctl {
        Sysctl::at("/proc/sys")
    }

    pub fn at(root: impl Into<PathBuf>) -> Sysctl {
        Sysctl { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The switch's integer value.
    pub fn read(&self, key: &str) -> io::Result<i64> {
        let text = std::fs::read_to_string(self.path(key))?;
        text.trim().parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{key} reads {:?}, not a number", text.trim()))
        })
    }

    pub fn write(&self, key: &str, value: i64) -> io::Result<()> {
        // /proc/sys files must be written in one write(2) without O_CREAT.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(self.path(key))?;
        f.write_all(value.to_string().as_bytes())
    }
}

/// What became of a request to set a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetResult {
    /// It reads `want` (already, or after our write).
    Set,
    /// The write failed; `now` is what it reads (if readable).
    WriteFailed { error: String, now: Option<i64> },
    /// The write was accepted but the switch reads something else.
    ReadsBack(i64),
    /// Not readable at all (no such switch: e.g. IPv6 disabled).
    Unreadable(String),
}

/// The switches weft changed, with their values before, so that a clean
/// exit puts them back (as babeld does).
#[derive(Debug, Default)]
pub struct SysctlLedger {
    changed: Vec<(String, i64, i64)>,
}

impl SysctlLedger {
    /// Makes `key` read `want`, writing only if it reads something else,
    /// and reading back after the write.
    pub fn set(&mut self, sys: &Sysctl, key: &str, want: i64) -> SetResult {
        let before = match sys.read(key) {
            Ok(v) => v,
            Err(e) => return SetResult::Unreadable(e.to_string()),
        };
        if before == want {
            return SetResult::Set;
        }
        if let Err(e) = sys.write(key, want) {
            return SetResult::WriteFailed { error: e.to_string(), now: sys.read(key).ok() };
        }
        // Remember the first value only: a second set of the same key
        // (after a reload) must still restore what the system had.
        if !self.changed.iter().any(|(k, _, _)| k == key) {
            self.changed.push((key.to_string(), before, want));
        }
        match sys.read(key) {
            Ok(v) if v == want => SetResult::Set,
            Ok(v) => SetResult::ReadsBack(v),
            Err(e) => SetResult::Unreadable(e.to_string()),
        }
    }

    /// Switches changed and not yet restored.
    pub fn changed(&self) -> impl Iterator<Item = &str> {
        self.changed.iter().map(|(k, _, _)| k.as_str())
    }

    /// Puts back the values that `keys_matching` selects, in reverse order;
    /// a switch someone else changed since (it no longer reads our value)
    /// or that is gone (its interface was deleted) is left alone. Returns
    /// the keys restored.
    pub fn restore(&mut self, sys: &Sysctl, keys_matching: impl Fn(&str) -> bool) -> Vec<String> {
        let mut done = Vec::new();
        let mut keep = Vec::new();
        for (key, before, ours) in std::mem::take(&mut self.changed).into_iter().rev() {
            if !keys_matching(&key) {
                keep.push((key, before, ours));
                continue;
            }
            if sys.read(&key).ok() == Some(ours) && sys.write(&key, before).is_ok() {
                done.push(key);
            }
        }
        keep.reverse();
        self.changed = keep;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree(PathBuf);

    impl Tree {
        fn new(files: &[(&str, &str)]) -> Tree {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "weft-sysctl-{}-{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            for (k, v) in files {
                let p = dir.join(k);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, v).unwrap();
            }
            Tree(dir)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn set_writes_only_what_differs_and_restore_puts_it_back() {
        let t = Tree::new(&[(IPV6_FORWARDING, "0\n"), (IPV4_FORWARDING, "1\n")]);
        let sys = Sysctl::at(&t.0);
        let mut l = SysctlLedger::default();
        assert_eq!(l.set(&sys, IPV6_FORWARDING, 1), SetResult::Set);
        assert_eq!(l.set(&sys, IPV4_FORWARDING, 1), SetResult::Set);
        assert_eq!(sys.read(IPV6_FORWARDING).unwrap(), 1);
        assert_eq!(l.changed().collect::<Vec<_>>(), vec![IPV6_FORWARDING], "IPv4 was already on");
        // Set again (a reload): the value to restore stays the system's.
        assert_eq!(l.set(&sys, IPV6_FORWARDING, 1), SetResult::Set);
        assert_eq!(l.restore(&sys, |_| true), vec![IPV6_FORWARDING.to_string()]);
        assert_eq!(sys.read(IPV6_FORWARDING).unwrap(), 0);
        assert_eq!(sys.read(IPV4_FORWARDING).unwrap(), 1, "not ours to restore");
    }

    #[test]
    fn restore_leaves_a_switch_someone_else_changed_since() {
        let t = Tree::new(&[(IPV6_FORWARDING, "0"), ("net/ipv4/conf/eth1/rp_filter", "1")]);
        let sys = Sysctl::at(&t.0);
        let mut l = SysctlLedger::default();
        l.set(&sys, IPV6_FORWARDING, 1);
        l.set(&sys, &rp_filter_key("eth1"), 2);
        sys.write(IPV6_FORWARDING, 0).unwrap();
        // Only the interface switches first (a reload that turned
        // set_forwarding off restores everything; an exit too).
        assert_eq!(l.restore(&sys, |k| k.contains("rp_filter")), vec![rp_filter_key("eth1")]);
        assert_eq!(sys.read(&rp_filter_key("eth1")).unwrap(), 1);
        assert_eq!(l.changed().count(), 1);
        assert!(l.restore(&sys, |_| true).is_empty(), "someone turned it off: not ours any more");
        assert_eq!(sys.read(IPV6_FORWARDING).unwrap(), 0);
    }

    #[test]
    fn missing_and_garbled_switches_are_reported_not_created() {
        let t = Tree::new(&[("net/ipv4/conf/all/forwarding", "yes")]);
        let sys = Sysctl::at(&t.0);
        let mut l = SysctlLedger::default();
        assert!(matches!(l.set(&sys, IPV6_FORWARDING, 1), SetResult::Unreadable(_)));
        assert!(!t.0.join(IPV6_FORWARDING).exists(), "a missing switch is not created");
        match l.set(&sys, IPV4_FORWARDING, 1) {
            SetResult::Unreadable(e) => assert!(e.contains("not a number"), "{e}"),
            r => panic!("{r:?}"),
        }
        assert_eq!(l.changed().count(), 0);
    }
}
