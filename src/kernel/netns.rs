//! Private, nameless network namespaces for tests and benchmarks.
//!
//! Network namespaces are per thread for `unshare` and `setns`, so a
//! namespace is made on a short-lived thread and kept alive by an open
//! `/proc/thread-self/ns/net` descriptor; work runs in it on a thread that
//! joins it with `setns`. Sockets stay in the namespace they were created
//! in, whichever thread uses them later. Nothing has a name, so parallel
//! tests cannot collide, and the namespace (with its interfaces and routes)
//! disappears when the last descriptor or socket in it closes, on every exit
//! path. Needs CAP_SYS_ADMIN (root). Unused by the daemon, so the release
//! binary carries none of it.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use nix::sched::{setns, unshare, CloneFlags};

/// A network namespace held open by a descriptor.
pub struct Netns {
    ns: File,
}

impl Netns {
    /// Creates a namespace with `lo` up.
    pub fn new() -> io::Result<Netns> {
        let ns = std::thread::spawn(|| -> io::Result<File> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            let ns = File::open("/proc/thread-self/ns/net")?;
            // /proc/self is the process's main thread: it must not have moved.
            let main = std::fs::metadata("/proc/self/ns/net")?.ino();
            if ns.metadata()?.ino() == main {
                return Err(io::Error::other("unshare did not give this thread its own namespace"));
            }
            Ok(ns)
        })
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))??;
        let me = Netns { ns };
        me.ip("link set lo up").map_err(io::Error::other)?;
        Ok(me)
    }

    /// Runs `f` on a thread inside the namespace and returns its result.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&self.ns, CloneFlags::CLONE_NEWNET).expect("setns into a live namespace");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Runs a future to completion on a current_thread tokio runtime built on
    /// a thread inside the namespace (the daemon's runtime shape).
    pub fn block_on<F, Fut>(&self, f: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future,
        Fut::Output: Send,
    {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(f())
        })
    }

    /// Runs `ip ARGS` inside the namespace; its stdout, or an error naming
    /// the command and what it printed.
    pub fn ip(&self, args: &str) -> Result<String, String> {
        self.cmd("ip", args)
    }

    /// Runs `PROGRAM ARGS` (split on whitespace) inside the namespace.
    pub fn cmd(&self, program: &str, args: &str) -> Result<String, String> {
        let out = self.run(|| Command::new(program).args(args.split_whitespace()).output());
        match out {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            Ok(o) => Err(format!(
                "`{program} {args}` failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("`{program} {args}` could not run: {e}")),
        }
    }

    /// A path naming this namespace for other processes, e.g. for
    /// `ip link set DEV netns PATH` run in another namespace.
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.ns.as_raw_fd())
    }

    /// The namespace's inode number (distinct for distinct namespaces).
    pub fn id(&self) -> u64 {
        self.ns.metadata().map(|m| m.ino()).unwrap_or(0)
    }

    /// Adds a veth pair `name` / `{name}p` inside the namespace, both up
    /// (this kernel has no dummy interfaces; a veth needs its peer up for
    /// carrier), and returns the index of `name`.
    pub fn add_veth(&self, name: &str) -> Result<u32, String> {
        self.ip(&format!("link add {name} type veth peer name {name}p"))?;
        self.ip(&format!("link set {name}p up"))?;
        self.ip(&format!("link set {name} up"))?;
        self.ifindex(name)
    }

    /// The interface index of `name` inside the namespace.
    pub fn ifindex(&self, name: &str) -> Result<u32, String> {
        let out = self.ip(&format!("-o link show dev {name}"))?;
        out.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no ifindex for {name} in {out:?}"))
    }
}
