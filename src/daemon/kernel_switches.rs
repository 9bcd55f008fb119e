//! The daemon's side of forwarding: carries out what [`super::forwarding`]
//! decides through [`crate::kernel::sysctl`], remembers what it changed, and
//! logs once each time the answer to "does this node route for others"
//! changes.

use log::{info, warn};
use serde_json::Value;

use super::forwarding::{self, Facts, Switch};
use crate::kernel::sysctl::{self, SetResult, Sysctl, SysctlLedger, IPV4_FORWARDING, IPV6_FORWARDING};

pub struct KernelSwitches {
    sys: Sysctl,
    ledger: SysctlLedger,
    set_forwarding: bool,
    /// An IPv4 route has been installed since start.
    ipv4_routes: bool,
    ipv6_failure: Option<String>,
    ipv4_failure: Option<String>,
    /// Interfaces whose reverse-path filter has been looked at.
    /// (A Vec: a few interfaces, and every set type costs flash.)
    rp_checked: Vec<String>,
    /// The last note logged (`None`: none, or "routes for others").
    logged: Option<Option<String>>,
}

impl KernelSwitches {
    pub fn new(sys: Sysctl, set_forwarding: bool) -> KernelSwitches {
        KernelSwitches {
            sys,
            ledger: SysctlLedger::default(),
            set_forwarding,
            ipv4_routes: false,
            ipv6_failure: None,
            ipv4_failure: None,
            rp_checked: Vec::new(),
            logged: None,
        }
    }

    /// At start and after a reload: turns on what is wanted, or (turned
    /// off by a reload) puts back what weft changed; then logs if the
    /// answer changed.
    pub fn apply(&mut self, set_forwarding: bool, babel_ifs: &[String]) {
        if self.set_forwarding && !set_forwarding {
            for k in self.ledger.restore(&self.sys, |_| true) {
                info!("set_forwarding '0': put back {k} as it was");
            }
            self.rp_checked.clear();
        }
        self.set_forwarding = set_forwarding;
        self.ipv6_failure = None;
        self.ipv4_failure = None;
        for key in forwarding::wanted(set_forwarding, self.ipv4_routes) {
            let had = self.ledger.changed().any(|k| k == key);
            let r = self.ledger.set(&self.sys, key, 1);
            if r == SetResult::Set && !had && self.ledger.changed().any(|k| k == key) {
                info!("turned on {}", dotted(key));
            }
            let f = forwarding::failure(&r);
            if key == IPV4_FORWARDING {
                self.ipv4_failure = f;
            } else {
                self.ipv6_failure = f;
            }
        }
        self.loosen_rp_filters(babel_ifs);
        self.log_if_changed();
    }

    /// weft is about to install a route of this family: the first IPv4
    /// route makes IPv4 forwarding wanted.
    pub fn route_installed(&mut self, ipv4: bool, babel_ifs: &[String]) {
        if ipv4 && !self.ipv4_routes {
            self.ipv4_routes = true;
            self.apply(self.set_forwarding, babel_ifs);
        }
    }

    /// The interfaces Babel runs on changed (tunnels come and go).
    pub fn interfaces_changed(&mut self, babel_ifs: &[String]) {
        self.rp_checked.retain(|n| babel_ifs.contains(n));
        self.loosen_rp_filters(babel_ifs);
    }

    /// Strict reverse-path filtering drops IPv4 transit that comes in on
    /// another interface than the one its source is routed through, as
    /// happens whenever the two directions of a path differ.
    fn loosen_rp_filters(&mut self, babel_ifs: &[String]) {
        if !(self.set_forwarding && self.ipv4_routes) {
            return;
        }
        let all = self.sys.read("net/ipv4/conf/all/rp_filter").unwrap_or(0);
        for name in babel_ifs {
            if self.rp_checked.contains(name) {
                continue;
            }
            self.rp_checked.push(name.clone());
            let key = sysctl::rp_filter_key(name);
            let Ok(cur) = self.sys.read(&key) else { continue };
            if let Some(v) = forwarding::loosen_rp_filter(all, cur) {
                match self.ledger.set(&self.sys, &key, v) {
                    SetResult::Set => info!("{name}: reverse-path filter made loose (was strict)"),
                    r => warn!("{name}: strict reverse-path filter drops asymmetric IPv4 transit: {r:?}"),
                }
            }
        }
    }

    /// What the switches read now.
    pub fn facts(&self) -> Facts {
        let read = |k: &str| Switch::from_read(self.sys.read(k).map_err(|e| e.to_string()));
        Facts {
            set_forwarding: self.set_forwarding,
            ipv4_routes: self.ipv4_routes,
            ipv6: read(IPV6_FORWARDING),
            ipv4: read(IPV4_FORWARDING),
            ipv6_failure: self.ipv6_failure.clone(),
            ipv4_failure: self.ipv4_failure.clone(),
        }
    }

    /// The `forwarding` object of `weft status` (read live).
    pub fn status(&self) -> Value {
        forwarding::status_json(&self.facts())
    }

    fn log_if_changed(&mut self) {
        let note = forwarding::assess(&self.facts()).note;
        if self.logged.as_ref() == Some(&note) {
            return;
        }
        match &note {
            Some(n) => warn!("{n}"),
            None if self.logged.is_some() => info!("this node routes for others again"),
            None => {}
        }
        self.logged = Some(note);
    }

    /// A clean exit: puts back every switch weft changed (as babeld does),
    /// unless someone changed it since.
    pub fn restore(&mut self) {
        for k in self.ledger.restore(&self.sys, |_| true) {
            info!("put back {} as it was before weft started", dotted(&k));
        }
    }
}

/// `net/ipv6/conf/all/forwarding` as `sysctl` writes it.
fn dotted(key: &str) -> String {
    key.replace('/', ".")
}
