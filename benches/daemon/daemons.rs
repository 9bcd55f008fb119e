//! The two daemons under comparison, configured alike: same hello interval
//! (update interval four hellos, both daemons' default ratio), wired links,
//! carrier sensing on, each node announcing its loopback /128 and /32.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::bed::Bed;
use crate::common::netns::{node_v4, node_v6};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Weft,
    Babeld,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Weft => "weft",
            Kind::Babeld => "babeld",
        }
    }

    /// The route protocol number each installs its routes with.
    pub fn protocol(self) -> u8 {
        match self {
            Kind::Weft => 119,
            Kind::Babeld => 42,
        }
    }
}

/// What a node announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Its loopback addresses (fd77::i+1/128, 10.77.i+1.1/32).
    Loopbacks,
    /// Only its IPv6 loopback address.
    V6Loopback,
    /// babeld only: also every `proto static` route in 10.128.0.0/9 (the
    /// route-table benchmark's announcer).
    StaticRoutes,
}

pub struct Daemons {
    pub bin: PathBuf,
    pub hello_s: u32,
    /// Link type both daemons run their interfaces as: "wired" or
    /// "wireless" (ETX).
    pub link_type: &'static str,
}

/// A started daemon (the `ip netns exec` process execs it: same pid).
pub struct Proc {
    pub child: Child,
    pub node: usize,
    pub kind: Kind,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in kB.
    pub fn memory_kb(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User + system CPU time used so far.
    pub fn cpu(&self) -> Duration {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th of the whole line.
        let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |k: usize| f.get(k).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        let ticks = field(11) + field(12);
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
    }

    /// Waits for the process to exit (SIGKILL after 20 s); true if it
    /// exited by itself.
    pub fn wait_exit(mut self) -> bool {
        let t = Instant::now();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if t.elapsed() > Duration::from_secs(20) {
                eprintln!("{} in node {} did not stop in 20 s: killed", self.kind.as_str(), self.node);
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM and wait; returns how long stopping took.
    pub fn stop(self) -> Duration {
        let t = Instant::now();
        self.terminate();
        self.wait_exit();
        t.elapsed()
    }
}

/// Stops every daemon at once; returns the time until the last exited.
pub fn stop_all(procs: Vec<Proc>) -> Duration {
    let t = Instant::now();
    for p in &procs {
        p.terminate();
    }
    for p in procs {
        p.wait_exit();
    }
    t.elapsed()
}

impl Daemons {
    fn weft_config(&self, bed: &Bed, i: usize, announce: Announce) -> String {
        let dir = bed.net.dir(i).display().to_string();
        let mut c = format!(
            "config weft 'main'\n\toption hello_interval '{}'\n\toption state_file '{dir}/weft.state'\n\toption control_socket '{dir}/weft.sock'\n\toption metrics_file '{dir}/weft.prom'\n\toption hosts_file '0'\n\toption log_level 'warn'\n",
            self.hello_s
        );
        for dev in bed.net.devices(i) {
            let _ = write!(
                c,
                "config interface '{dev}'\n\toption ifname '{dev}'\n\toption type '{}'\n",
                self.link_type
            );
        }
        let mut prefixes = vec![format!("{}/128", node_v6(i))];
        match announce {
            Announce::Loopbacks => prefixes.push(format!("{}/32", node_v4(i))),
            Announce::V6Loopback => {}
            Announce::StaticRoutes => panic!("weft announces no kernel routes; give it announce sections"),
        }
        for p in prefixes {
            let _ = write!(c, "config announce\n\toption prefix '{p}'\n");
        }
        c
    }

    fn babeld_config(&self, bed: &Bed, i: usize, announce: Announce) -> String {
        // link-detect: carrier sensing, as weft always does.
        let mut c = String::from("link-detect true\n");
        for dev in bed.net.devices(i) {
            let _ = writeln!(c, "interface {dev} type {} hello-interval {}", self.link_type, self.hello_s);
        }
        let _ = writeln!(c, "redistribute local ip {}/128 allow", node_v6(i));
        match announce {
            Announce::Loopbacks => {
                let _ = writeln!(c, "redistribute local ip {}/32 allow", node_v4(i));
            }
            Announce::V6Loopback => {}
            Announce::StaticRoutes => {
                let _ = writeln!(c, "redistribute proto 4 ip 10.128.0.0/9 ge 24 allow");
            }
        }
        c.push_str("redistribute local deny\nredistribute deny\n");
        c
    }

    /// Starts `kind` in node `i`.
    pub fn start(&self, bed: &Bed, kind: Kind, i: usize, announce: Announce) -> Proc {
        let dir = bed.net.dir(i).to_path_buf();
        let child = match kind {
            Kind::Weft => {
                let conf = dir.join("weft.conf");
                std::fs::write(&conf, self.weft_config(bed, i, announce)).unwrap();
                let bin = self.bin.display().to_string();
                bed.net.spawn(i, &[&bin, "daemon", "-c", &conf.display().to_string()], "weft.log")
            }
            Kind::Babeld => {
                let conf = dir.join("babeld.conf");
                std::fs::write(&conf, self.babeld_config(bed, i, announce)).unwrap();
                let pid = dir.join("babeld.pid");
                // babeld refuses to start while its pid file exists.
                let _ = std::fs::remove_file(&pid);
                let p = |name: &str| dir.join(name).display().to_string();
                bed.net.spawn(
                    i,
                    &[
                        "babeld",
                        "-I",
                        &p("babeld.pid"),
                        "-S",
                        &p("babeld.state"),
                        "-L",
                        &p("babeld.log"),
                        "-c",
                        &conf.display().to_string(),
                    ],
                    "babeld.out",
                )
            }
        };
        Proc { child, node: i, kind }
    }
}

/// babeld's version line, if it is installed.
pub fn babeld_version() -> Option<String> {
    let out = Command::new("babeld").arg("-V").output().ok()?;
    let s = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}
