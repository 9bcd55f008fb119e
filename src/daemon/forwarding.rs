//! Whether this node routes packets for others (pure): which kernel
//! switches weft turns on, and what it tells the user about what it found.
//!
//! As babeld (kernel_setup), weft turns on IPv6 forwarding at start. Unlike
//! babeld, which also turns on IPv4 forwarding unconditionally, weft does so
//! only once it installs an IPv4 route: an IPv6-only mesh leaves IPv4 alone.
//! babeld also zeroes `rp_filter` (all and per interface), since strict
//! reverse-path filtering drops packets of asymmetric paths; weft instead
//! makes a Babel interface's filter loose where it would be strict (the
//! kernel applies the larger of `all` and the interface's value, and loose
//! keeps dropping sources that have no route at all). It does not touch
//! `accept_redirects`: a forwarding IPv6 node ignores redirects anyway.
//! What weft changed it puts back at a clean exit, as babeld does.
//! `option set_forwarding '0'` (babeld's `skip-kernel-setup`) leaves all of
//! it to the system.

use serde_json::{json, Value};

use crate::kernel::sysctl::{SetResult, IPV4_FORWARDING, IPV6_FORWARDING};

/// The forwarding switches weft wants on now: none when the user keeps
/// them (`set_forwarding '0'`), IPv6 always, IPv4 once an IPv4 route is
/// installed.
pub fn wanted(set_forwarding: bool, ipv4_routes: bool) -> Vec<&'static str> {
    match (set_forwarding, ipv4_routes) {
        (false, _) => Vec::new(),
        (true, false) => vec![IPV6_FORWARDING],
        (true, true) => vec![IPV6_FORWARDING, IPV4_FORWARDING],
    }
}

/// The value to give an interface's `rp_filter` so that it is not strict,
/// given `all`'s and the interface's (the kernel uses the larger): loose
/// (2) when that would be strict (1), else nothing to change.
pub fn loosen_rp_filter(all: i64, iface: i64) -> Option<i64> {
    (all.max(iface) == 1).then_some(2)
}

/// Why weft could not turn a switch on (`None`: it could, or did not try).
pub fn failure(r: &SetResult) -> Option<String> {
    match r {
        SetResult::Set => None,
        SetResult::WriteFailed { error, .. } => Some(format!("cannot write it: {error}")),
        SetResult::ReadsBack(v) => Some(format!("it reads {v} after weft wrote 1")),
        SetResult::Unreadable(e) => Some(format!("cannot read it: {e}")),
    }
}

/// One forwarding switch as it reads now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
    /// Not readable (e.g. IPv6 disabled in the kernel).
    Unknown(String),
}

impl Switch {
    pub fn from_read(r: Result<i64, String>) -> Switch {
        match r {
            Ok(0) => Switch::Off,
            Ok(_) => Switch::On,
            Err(e) => Switch::Unknown(e),
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Switch::On => "on",
            Switch::Off => "off",
            Switch::Unknown(_) => "unknown",
        }
    }
}

/// What weft knows about forwarding at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub set_forwarding: bool,
    /// weft has installed an IPv4 route (so IPv4 transit matters).
    pub ipv4_routes: bool,
    pub ipv6: Switch,
    pub ipv4: Switch,
    /// Why the last attempt to turn each on failed, if it did.
    pub ipv6_failure: Option<String>,
    pub ipv4_failure: Option<String>,
}

/// Whether this node routes for others, and what to tell the user if not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub routes_for_others: bool,
    /// One sentence, for the log (once) and `weft status`; `None` when the
    /// node forwards every family it routes.
    pub note: Option<String>,
}

fn why_off(family: &str, sw: &Switch, set: bool, failure: &Option<String>) -> String {
    match (failure, sw) {
        (Some(f), _) => format!("weft could not turn on {family} forwarding ({f})"),
        (None, Switch::Unknown(e)) => format!("{family} forwarding cannot be read ({e})"),
        (None, _) if !set => format!("{family} forwarding is off and option set_forwarding '0' leaves it so"),
        (None, _) => format!("{family} forwarding was turned off after weft turned it on"),
    }
}

pub fn assess(f: &Facts) -> Assessment {
    let mut why = Vec::new();
    if f.ipv6 != Switch::On {
        why.push(why_off("IPv6", &f.ipv6, f.set_forwarding, &f.ipv6_failure));
    }
    if f.ipv4_routes && f.ipv4 != Switch::On {
        why.push(why_off("IPv4", &f.ipv4, f.set_forwarding, &f.ipv4_failure));
    }
    let whom = match (f.ipv6 == Switch::On, why.is_empty()) {
        (_, true) => None,
        (true, false) => Some("IPv4 packets"),
        (false, false) => Some("packets"),
    };
    Assessment {
        routes_for_others: why.is_empty(),
        note: whom.map(|w| format!("this node will not route {w} for others: {}", why.join("; "))),
    }
}

/// The `forwarding` object of `weft status`.
pub fn status_json(f: &Facts) -> Value {
    let a = assess(f);
    json!({
        "set_forwarding": f.set_forwarding,
        "ipv6": f.ipv6.as_str(),
        "ipv4": f.ipv4.as_str(),
        "ipv4_routes": f.ipv4_routes,
        "routes_for_others": a.routes_for_others,
        "note": a.note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(set: bool, v4_routes: bool, v6: Switch, v4: Switch) -> Facts {
        Facts {
            set_forwarding: set,
            ipv4_routes: v4_routes,
            ipv6: v6,
            ipv4: v4,
            ipv6_failure: None,
            ipv4_failure: None,
        }
    }

    #[test]
    fn ipv6_at_start_ipv4_with_its_first_route_nothing_when_told_not_to() {
        assert_eq!(wanted(true, false), vec![IPV6_FORWARDING]);
        assert_eq!(wanted(true, true), vec![IPV6_FORWARDING, IPV4_FORWARDING]);
        assert!(wanted(false, true).is_empty());
    }

    #[test]
    fn strict_reverse_path_filtering_becomes_loose_and_nothing_else_changes() {
        assert_eq!(loosen_rp_filter(1, 0), Some(2));
        assert_eq!(loosen_rp_filter(0, 1), Some(2));
        assert_eq!(loosen_rp_filter(1, 1), Some(2));
        assert_eq!(loosen_rp_filter(0, 0), None);
        assert_eq!(loosen_rp_filter(2, 0), None);
        assert_eq!(loosen_rp_filter(1, 2), None, "loose wins over all's strict");
    }

    #[test]
    fn a_node_with_forwarding_on_says_nothing() {
        let a = assess(&facts(true, false, Switch::On, Switch::Off));
        assert!(a.routes_for_others, "IPv4 is not routed: its switch does not matter");
        assert_eq!(a.note, None);
        let a = assess(&facts(true, true, Switch::On, Switch::On));
        assert!(a.routes_for_others && a.note.is_none());
        // set_forwarding '0' on a system that forwards (OpenWrt does): fine.
        assert!(assess(&facts(false, true, Switch::On, Switch::On)).routes_for_others);
    }

    #[test]
    fn every_reason_for_not_forwarding_is_told() {
        let a = assess(&facts(false, false, Switch::Off, Switch::Off));
        assert!(!a.routes_for_others);
        assert_eq!(
            a.note.as_deref(),
            Some(
                "this node will not route packets for others: IPv6 forwarding is off and option \
                 set_forwarding '0' leaves it so"
            )
        );
        let mut f = facts(true, true, Switch::On, Switch::Off);
        f.ipv4_failure = Some("cannot write it: Permission denied".into());
        let a = assess(&f);
        assert!(!a.routes_for_others);
        let note = a.note.unwrap();
        assert!(note.starts_with("this node will not route IPv4 packets for others: "), "{note}");
        assert!(
            note.contains("could not turn on IPv4 forwarding (cannot write it: Permission denied)"),
            "{note}"
        );
        let note = assess(&facts(true, false, Switch::Off, Switch::Off)).note.unwrap();
        assert!(note.contains("turned off after weft turned it on"), "{note}");
        let note =
            assess(&facts(true, false, Switch::Unknown("No such file".into()), Switch::On)).note.unwrap();
        assert!(note.contains("IPv6 forwarding cannot be read (No such file)"), "{note}");
        let mut f = facts(true, true, Switch::Off, Switch::Off);
        f.ipv6_failure = failure(&SetResult::ReadsBack(0));
        f.ipv4_failure = failure(&SetResult::WriteFailed { error: "EROFS".into(), now: Some(0) });
        let note = assess(&f).note.unwrap();
        assert!(note.contains("IPv6 forwarding (it reads 0 after weft wrote 1); "), "{note}");
        assert!(note.contains("IPv4 forwarding (cannot write it: EROFS)"), "{note}");
    }

    #[test]
    fn status_says_it_in_json() {
        let v = status_json(&facts(false, false, Switch::Off, Switch::On));
        assert_eq!(v["routes_for_others"], false);
        assert_eq!(v["ipv6"], "off");
        assert_eq!(v["ipv4"], "on");
        assert_eq!(v["set_forwarding"], false);
        assert!(v["note"].as_str().unwrap().contains("will not route"));
        assert_eq!(status_json(&facts(true, false, Switch::On, Switch::Off))["note"], Value::Null);
    }
}
