//! The group policy's edge: keeps nftables' `table inet weft` equal to the
//! table the core renders ([`crate::mesh::policy`]), through `nft -f -`:
//! one process per change, one atomic transaction each (nft applies all of
//! it or nothing). A netlink nftables encoder in the binary would cost tens
//! of kilobytes of flash for what `nft`, which every fw4 router ships, does
//! in a few milliseconds when the peers change.

use std::io::Write;
use std::process::{Command, Stdio};

use log::{info, warn};
use serde_json::{json, Value};

use crate::babel::Time;
use crate::mesh::policy::{parse_counters, Rule, Table, TABLE};

/// A failed transaction is tried again this much later.
const RETRY_MS: u64 = 30_000;

#[derive(Default)]
pub struct PolicyFirewall {
    /// What the kernel holds (`None`: nothing, or unknown after a failure).
    applied: Option<Table>,
    error: Option<String>,
    retry_at: Time,
    applies: u64,
    errors: u64,
    /// When the kernel's table was last seen to exist.
    checked_at: Time,
}

/// Runs `nft` with `args`, `input` on its standard input; its output, or
/// why it failed (its own message).
fn nft(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        // Its complaints go to our stderr, i.e. the system log under procd.
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("nft {} (its message is in the log)", out.status))
    }
}

impl PolicyFirewall {
    /// Brings the kernel's table to `table` (only the sets that changed,
    /// when the chains are the same, so the counters keep counting).
    pub fn apply(&mut self, table: Table, now: Time) {
        // Someone may have deleted it (`nft flush ruleset`): looked at every
        // 30 s, and put back whole.
        if self.applied.is_some() && now.since(self.checked_at) >= RETRY_MS {
            self.checked_at = now;
            if nft(&["list", "table", TABLE], None).is_err() {
                warn!("group policy: table {TABLE} vanished; putting it back");
                self.applied = None;
            }
        }
        if self.applied.as_ref() == Some(&table) || (self.error.is_some() && now < self.retry_at) {
            return;
        }
        let text = match &self.applied {
            Some(old) if old.same_structure(&table) => table.update_from(old),
            _ => table.full(),
        };
        match nft(&["-f", "-"], Some(&text)) {
            Ok(_) => {
                if self.applied.is_none() {
                    info!("group policy: table {TABLE} in force");
                }
                self.applies += 1;
                self.checked_at = now;
                self.error = None;
                self.applied = Some(table);
            }
            Err(e) => {
                if self.error.as_deref() != Some(&e) {
                    warn!("group policy is NOT enforced: {e} (trying again in 30 s)");
                }
                self.errors += 1;
                self.error = Some(e);
                // Whatever the kernel holds now, the next try replaces it whole.
                self.applied = None;
                self.retry_at = now.plus_ms(RETRY_MS);
            }
        }
    }

    /// Removes the table (clean stop). A crash leaves it; the next start
    /// replaces it in its first transaction.
    pub fn remove(&mut self) {
        if self.applied.take().is_some() || self.error.is_some() {
            delete_table();
        }
    }

    /// `weft status`: the rules in force here, their counters read from the
    /// kernel, and the drops.
    pub fn status(&self, rules: &[Rule], default_accept: bool) -> Value {
        let counters = match &self.applied {
            Some(_) => nft(&["list", "counters", "table", TABLE], None)
                .map(|t| parse_counters(&t))
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let count = |name: &str| {
            let c = counters.iter().find(|(n, _, _)| n == name);
            json!({ "packets": c.map_or(0, |c| c.1), "bytes": c.map_or(0, |c| c.2) })
        };
        let in_force = self.applied.as_ref().map(|t| t.counters.as_slice()).unwrap_or_default();
        let list: Vec<Value> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let counter = in_force.iter().find(|(_, idx)| *idx == Some(i)).map(|(n, _)| n.as_str());
                // One line for people; the options themselves are in UCI.
                let mut text = format!(
                    "from {} to {} {}",
                    r.src_group.as_deref().unwrap_or("any"),
                    r.dest_group.as_deref().unwrap_or("any"),
                    r.protos
                );
                for &(a, b) in &r.dest_ports {
                    text.push_str(&if a == b { format!(" {a}") } else { format!(" {a}-{b}") });
                }
                text.push_str(if r.accept { " accept" } else { " drop" });
                // Rules for a dest_group this node is not in do not apply here.
                json!({ "name": r.name, "rule": text, "active": counter.is_some(), "matched": counter.map(count) })
            })
            .collect();
        let state = match (&self.error, &self.applied) {
            (Some(e), _) => format!("error: {e}"),
            (None, Some(_)) => "enforced".into(),
            (None, None) => "starting".into(),
        };
        json!({
            "state": state,
            "table": TABLE,
            "default_policy": if default_accept { "accept" } else { "drop" },
            "rules": list,
            "drops": {
                "default": if default_accept { Value::Null } else { count(crate::mesh::policy::DEFAULT) },
                "spoofed": count(crate::mesh::policy::SPOOFED),
                "foreign": count(crate::mesh::policy::FOREIGN),
            },
            "applies": self.applies,
            "errors": self.errors,
        })
    }
}

/// A table left by an earlier run that had end to end on, when this one
/// does not: removed, quietly (there is usually none, or no nft at all).
pub fn remove_stale() {
    delete_table();
}

/// Deletes the table whether or not it exists: declared first in the same
/// transaction, so a start without one (the usual case) logs no error.
fn delete_table() {
    let _ = nft(&["-f", "-"], Some(&["table ", TABLE, "\ndelete table ", TABLE, "\n"].concat()));
}
