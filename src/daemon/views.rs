//! JSON views of the daemon's state, for the control socket (`--json` prints
//! them as they are; the CLI renders tables from them).

use serde_json::{json, Value};

use crate::babel::Engine;

/// "1.2s ago"-style age for people; machines get the milliseconds too.
pub fn age(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}s", ms / 1000)
    }
}

pub fn neighbours(engine: &Engine) -> Value {
    let list: Vec<Value> = engine
        .neighbours()
        .into_iter()
        .map(|n| {
            json!({
                "address": n.address.to_string(),
                "interface": n.interface,
                "ifindex": n.ifindex,
                "reach": format!("{:04x}", n.reach),
                "rxcost": n.rxcost,
                "txcost": n.txcost,
                "cost": n.cost,
                "last_hello": age(n.last_hello_ms),
                "last_hello_ms": n.last_hello_ms,
            })
        })
        .collect();
    json!({ "neighbours": list })
}

pub fn routes(engine: &Engine) -> Value {
    let mut list: Vec<Value> = engine
        .routes()
        .into_iter()
        .map(|r| {
            json!({
                "prefix": r.prefix.to_string(),
                "next_hop": r.next_hop.to_string(),
                "interface": r.interface,
                "ifindex": r.ifindex,
                "neighbour": r.neighbour.to_string(),
                "metric": r.metric,
                "refmetric": r.refmetric,
                "seqno": r.seqno,
                "router_id": r.router_id.to_string(),
                "installed": r.selected,
                "feasible": r.feasible,
                "expires_in_ms": r.expires_in_ms,
            })
        })
        .collect();
    for x in engine.xroutes() {
        list.push(json!({
            "prefix": x.prefix.to_string(),
            "next_hop": null,
            "interface": null,
            "metric": x.metric,
            "seqno": engine.seqno().0,
            "router_id": engine.router_id().to_string(),
            "installed": false,
            "origin": "local",
        }));
    }
    json!({ "routes": list })
}
