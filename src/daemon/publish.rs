//! Files that other programs read, published from the daemon's state: the
//! hosts file OpenWrt's dnsmasq reads (`names`: what it holds is decided
//! there, purely) and the Prometheus textfile (`metrics`). This is the edge:
//! atomic rewrites, and SIGHUP to dnsmasq when the hosts file changed.
//!
//! dnsmasq is found as OpenWrt runs it: its init script starts one process
//! per `config dnsmasq` section with `-x /var/run/dnsmasq/dnsmasq.<section>.pid`,
//! so every `dnsmasq*.pid` there names one (checked against /proc, since a
//! pid file can outlive its process). With no such file, every process whose
//! name is `dnsmasq` gets the signal, as `killall -HUP dnsmasq` would.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use log::{debug, info, warn};

use super::mesh_runtime::MeshRuntime;
use crate::babel::{Engine, Time};
use crate::config::MainConfig;
use crate::metrics::{self, NodeCounts, RouteCounts, Snapshot};
use crate::trust::VerifiedNode;

const DNSMASQ_PID_DIR: &str = "/var/run/dnsmasq";

/// The nodes whose credentials (or allow-listing) verified: the one place
/// that knows where the mesh keeps its node table.
pub fn verified_nodes(mesh: &MeshRuntime) -> impl Iterator<Item = &VerifiedNode> {
    mesh.core.known().nodes.values().filter_map(|k| k.verdict.as_ref().ok())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over
/// `path`: a reader sees the old file or the new one, never half of one.
/// The temporary name starts with '.' and does not end in `.prom`, so
/// neither node-exporter nor dnsmasq's hosts directory reading takes it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::other("not a file name"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let write = || -> io::Result<()> {
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn is_dnsmasq(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "dnsmasq")
}

/// Live dnsmasq processes named by `dnsmasq*.pid` files in `pid_dir`.
fn pids_from_files(pid_dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_dir(pid_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("dnsmasq") && n.ends_with(".pid")
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse::<i32>().ok())
        .filter(|&pid| pid > 0 && is_dnsmasq(pid))
        .collect();
    // Two pid files may name one process: told once. (A Vec, not a set:
    // each set type costs flash.)
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The dnsmasq processes to tell (see the module comment).
fn dnsmasq_pids(pid_dir: &Path) -> Vec<i32> {
    let from_files = pids_from_files(pid_dir);
    if !from_files.is_empty() {
        return from_files;
    }
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| is_dnsmasq(pid))
        .collect()
}

/// SIGHUP to every dnsmasq: it re-reads its hosts files. Returns how many.
fn signal_dnsmasq(pid_dir: &Path) -> usize {
    let mut told = 0;
    for pid in dnsmasq_pids(pid_dir) {
        // SAFETY: kill(2) with a pid and a signal number; no memory involved.
        if unsafe { libc::kill(pid, libc::SIGHUP) } == 0 {
            told += 1;
        } else {
            debug!("SIGHUP to dnsmasq {pid}: {}", io::Error::last_os_error());
        }
    }
    told
}

/// The hosts file and the metrics file, as the configuration asks.
pub struct Publisher {
    hosts_file: Option<PathBuf>,
    domain: String,
    /// What the hosts file holds (as written, or found at start).
    hosts_written: Option<String>,
    unusable_logged: Vec<String>,
    metrics_file: Option<PathBuf>,
    metrics_interval_ms: u64,
    next_metrics: Time,
    dnsmasq_pid_dir: PathBuf,
}

impl Publisher {
    pub fn new(cfg: &MainConfig) -> Publisher {
        Publisher {
            hosts_written: cfg.hosts_file.as_ref().and_then(|p| std::fs::read_to_string(p).ok()),
            hosts_file: cfg.hosts_file.clone(),
            domain: cfg.domain.clone(),
            unusable_logged: Vec::new(),
            metrics_file: cfg.metrics_file.clone(),
            metrics_interval_ms: cfg.update_interval_ms,
            next_metrics: Time(0),
            dnsmasq_pid_dir: PathBuf::from(DNSMASQ_PID_DIR),
        }
    }

    /// A reload: files no longer wanted where they were are removed; the
    /// caller then publishes again.
    pub fn reconfigure(&mut self, cfg: &MainConfig) {
        if cfg.hosts_file != self.hosts_file {
            self.remove_hosts();
            self.hosts_written = cfg.hosts_file.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
            self.hosts_file = cfg.hosts_file.clone();
        }
        self.domain = cfg.domain.clone();
        if cfg.metrics_file != self.metrics_file {
            self.remove_metrics();
            self.metrics_file = cfg.metrics_file.clone();
            self.next_metrics = Time(0);
        }
        self.metrics_interval_ms = cfg.update_interval_ms;
    }

    /// Rewrites the hosts file if what it should hold changed, and then
    /// tells dnsmasq.
    pub fn update_hosts<'a>(&mut self, nodes: impl IntoIterator<Item = &'a VerifiedNode>, now_unix: u64) {
        let Some(path) = self.hosts_file.clone() else { return };
        let hosts = crate::names::hosts(nodes, now_unix, &self.domain);
        if hosts.unusable_names != self.unusable_logged {
            if !hosts.unusable_names.is_empty() {
                warn!(
                    "not in {}: node names that are not DNS names: {:?}",
                    path.display(),
                    hosts.unusable_names
                );
            }
            self.unusable_logged = hosts.unusable_names.clone();
        }
        let text = crate::names::render(&hosts);
        if self.hosts_written.as_deref() == Some(text.as_str()) {
            return;
        }
        match write_atomic(&path, text.as_bytes()) {
            Ok(()) => {
                self.hosts_written = Some(text);
                let told = signal_dnsmasq(&self.dnsmasq_pid_dir);
                info!(
                    "{}: {} node name(s); told {told} dnsmasq process(es)",
                    path.display(),
                    hosts.entries.len()
                );
            }
            Err(e) => warn!("cannot write {}: {e}", path.display()),
        }
    }

    fn remove_hosts(&mut self) {
        if let Some(p) = &self.hosts_file {
            if std::fs::remove_file(p).is_ok() {
                signal_dnsmasq(&self.dnsmasq_pid_dir);
            }
        }
        self.hosts_written = None;
    }

    fn remove_metrics(&mut self) {
        if let Some(p) = &self.metrics_file {
            let _ = std::fs::remove_file(p);
        }
    }

    /// When the metrics file is next due; `None`: it is off.
    pub fn metrics_deadline(&self) -> Option<Time> {
        self.metrics_file.as_ref().map(|_| self.next_metrics)
    }

    pub fn metrics_due(&self, now: Time) -> bool {
        self.metrics_deadline().is_some_and(|t| now >= t)
    }

    pub fn write_metrics(&mut self, now: Time, text: &str) {
        self.next_metrics = now.plus_ms(self.metrics_interval_ms.max(1000));
        let Some(path) = &self.metrics_file else { return };
        if let Err(e) = write_atomic(path, text.as_bytes()) {
            warn!("cannot write {}: {e}", path.display());
        }
    }

    /// A clean stop: what weft no longer keeps current goes away, so that
    /// neither stale names nor stale metrics outlive the daemon.
    pub fn shutdown(&mut self) {
        self.remove_hosts();
        self.remove_metrics();
    }
}

/// The metrics snapshot of the daemon's state. `tunnels` come from the
/// WireGuard backend (async, so the caller reads them).
pub fn snapshot(engine: &Engine, mesh: Option<&MeshRuntime>, tunnels: Vec<metrics::Tunnel>) -> Snapshot {
    let neighbours = engine
        .neighbours()
        .into_iter()
        .map(|n| metrics::Neighbour {
            name: mesh.and_then(|m| m.tunnel_peer(&n.interface)).unwrap_or_default().to_string(),
            dev: n.interface,
            address: n.address.to_string(),
            cost: n.cost,
        })
        .collect();
    let mut routes = RouteCounts { local: engine.xroutes().len() as u64, ..RouteCounts::default() };
    for r in engine.routes() {
        let slot = match (r.selected, r.feasible) {
            (true, _) => &mut routes.installed,
            (false, true) => &mut routes.feasible,
            (false, false) => &mut routes.unfeasible,
        };
        *slot += 1;
    }
    let stats = engine.stats();
    let (refused, unknown) = mesh.map_or((0, 0), |m| m.refused(engine));
    let (disc_in, disc_out) = mesh.map_or((0, 0), |m| m.discovery_bytes());
    Snapshot {
        version: env!("CARGO_PKG_VERSION").to_string(),
        neighbours,
        routes,
        nodes: mesh.map_or_else(NodeCounts::default, |m| {
            NodeCounts::of(m.core.known().nodes.values().map(|k| &k.verdict))
        }),
        refused_announcements: stats.refused_by_filter,
        refused_not_granted: refused as u64,
        refused_unknown_origin: unknown as u64,
        tunnels,
        control_bytes_in: stats.bytes_in + disc_in,
        control_bytes_out: stats.bytes_out + disc_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weft-publish-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary_file() {
        let d = dir("atomic");
        let p = d.join("sub/weft.prom");
        write_atomic(&p, b"one\n").unwrap();
        write_atomic(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        let names: Vec<String> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["weft.prom"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
        assert!(write_atomic(&d.join("sub/weft.prom/x"), b"").is_err(), "a file as directory");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn pid_files_name_live_dnsmasq_processes_only() {
        let d = dir("pids");
        std::fs::create_dir_all(&d).unwrap();
        // Our own pid is alive but not dnsmasq; 0 and garbage are ignored.
        std::fs::write(d.join("dnsmasq.cfg01411c.pid"), format!("{}\n", std::process::id())).unwrap();
        std::fs::write(d.join("dnsmasq.pid"), "0\n").unwrap();
        std::fs::write(d.join("dnsmasq.x.pid"), "nonsense").unwrap();
        assert!(pids_from_files(&d).is_empty());
        assert!(!is_dnsmasq(std::process::id() as i32));
        assert!(pids_from_files(&d.join("absent")).is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
