//! The rpcd exec plugin behind `ubus call weft METHOD`.
//!
//! rpcd runs every executable in `/usr/libexec/rpcd/` as `PLUGIN list` (the
//! methods, printed as a JSON object) and `PLUGIN call METHOD` (arguments as
//! JSON on stdin, one JSON object on stdout). The weft package installs
//! `/usr/libexec/rpcd/weft` as a symlink to `/usr/sbin/weft`, and `main`
//! sends a weft started under that name here; `weft rpcd list|call METHOD`
//! does the same by hand.
//!
//! Every method is one query of the daemon's control socket, reshaped:
//! `get_info`, `get_xroutes`, `get_routes` and `get_neighbours` answer as
//! babeld's ubus object does (`{"IPv4":[...],"IPv6":[...]}` with babeld's
//! field names), so views and LibreMesh tools written for babeld read weft;
//! `get_status`, `get_nodes` and `get_tunnels` are weft's own. Fields babeld
//! has and weft does not measure keep their place with an honest constant:
//! `uhello_reach` 0 (weft sends no unicast Hellos), `rtt` 0 (no RTT
//! extension), `age` 0 (weft keeps when a route expires, not when it was
//! last updated; `expires_in_ms` says the former). A daemon that cannot be
//! reached gives `{"error": "..."}`, an object, so ubus callers see why.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use super::{query, Request, DEFAULT_SOCKET};

/// The methods and their (empty) argument signatures, as `list` prints them.
pub const METHODS: &[&str] =
    &["get_info", "get_xroutes", "get_routes", "get_neighbours", "get_status", "get_nodes", "get_tunnels"];

/// Arguments are ignored, but rpcd writes them: read a bounded amount so a
/// large write neither blocks rpcd nor costs memory.
const MAX_ARGS: u64 = 64 * 1024;

/// True when argv[0] names the plugin, i.e. `.../rpcd/weft` (the symlink
/// rpcd executes), not the binary in /usr/sbin.
pub fn invoked_as_plugin(argv0: &str) -> bool {
    let p = Path::new(argv0);
    p.file_name().is_some_and(|n| n == "weft")
        && p.parent().and_then(Path::file_name).is_some_and(|d| d == "rpcd")
}

/// `list` or `call METHOD`.
pub fn run(args: &[String]) -> ExitCode {
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["list"] => {
            let methods: Map<String, Value> = METHODS.iter().map(|m| (m.to_string(), json!({}))).collect();
            println!("{}", Value::Object(methods));
            ExitCode::SUCCESS
        }
        ["call", method] => {
            drain_stdin();
            let (reply, ok) = match call(method, &control_socket()) {
                Ok(v) => (v, true),
                Err(e) => (json!({ "error": e }), false),
            };
            println!("{reply}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        ["-h"] | ["--help"] => {
            println!(
                "usage: weft rpcd list | weft rpcd call METHOD  (rpcd exec plugin; methods: {})",
                METHODS.join(", ")
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: weft rpcd list | weft rpcd call METHOD");
            ExitCode::from(2)
        }
    }
}

fn drain_stdin() {
    // A terminal has nothing to give: `weft rpcd call get_info` by hand.
    if unsafe { libc::isatty(0) } == 1 {
        return;
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().take(MAX_ARGS).read_to_end(&mut sink);
}

/// The socket named by `/etc/config/weft` (the daemon's own setting), or
/// the default when the file cannot be read.
fn control_socket() -> PathBuf {
    match crate::config::load(Path::new(crate::config::DEFAULT_PATH)) {
        Ok((cfg, _)) => cfg.main.control_socket,
        Err(_) => PathBuf::from(DEFAULT_SOCKET),
    }
}

fn call(method: &str, socket: &Path) -> Result<Value, String> {
    Ok(match method {
        "get_info" => info(&query(socket, Request::Status)?, &hostname()),
        "get_xroutes" => xroutes(&query(socket, Request::Routes)?),
        "get_routes" => routes(&query(socket, Request::Routes)?),
        "get_neighbours" => neighbours(&query(socket, Request::Neighbours)?),
        "get_status" => query(socket, Request::Status)?,
        "get_nodes" => nodes(&query(socket, Request::Nodes)?),
        "get_tunnels" => tunnels(&query(socket, Request::Status)?, &query(socket, Request::Neighbours)?),
        other => return Err(format!("unknown method {other:?}")),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn rows<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// babeld's split by address family.
fn by_family(items: Vec<(String, Value)>) -> Value {
    let (v6, v4): (Vec<_>, Vec<_>) = items.into_iter().partition(|(addr, _)| addr.contains(':'));
    json!({
        "IPv4": v4.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "IPv6": v6.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })
}

fn is_local(route: &Value) -> bool {
    route.get("origin").and_then(Value::as_str) == Some("local")
}

/// A prefix without a source prefix is babeld's `::/0` (IPv6) or `0.0.0.0/0`.
fn no_source(prefix: &str) -> &'static str {
    if prefix.contains(':') {
        "::/0"
    } else {
        "0.0.0.0/0"
    }
}

/// `get_info`: babeld's `babeld_version`, `my_id`, `host`.
pub fn info(status: &Value, host: &str) -> Value {
    json!({
        "babeld_version": format!("weft-{}", text(status, "version")),
        "my_id": text(status, "router_id"),
        "host": host,
    })
}

/// `get_xroutes`: the prefixes this node originates.
pub fn xroutes(routes: &Value) -> Value {
    by_family(
        rows(routes, "routes")
            .iter()
            .filter(|r| is_local(r))
            .map(|r| {
                let prefix = text(r, "prefix");
                let v = json!({ "address": prefix, "src_prefix": no_source(&prefix), "metric": num(r, "metric") });
                (prefix, v)
            })
            .collect(),
    )
}

/// `get_routes`: every learned route, babeld's fields first, then weft's
/// `dev` and `expires_in_ms`.
pub fn routes(routes: &Value) -> Value {
    by_family(
        rows(routes, "routes")
            .iter()
            .filter(|r| !is_local(r))
            .map(|r| {
                let prefix = text(r, "prefix");
                let via = text(r, "neighbour");
                let next_hop = text(r, "next_hop");
                let metric = num(r, "metric");
                // The engine's smoothed metric where it reports one.
                let smoothed = r.get("smoothed_metric").and_then(Value::as_u64).unwrap_or(metric);
                let mut v = json!({
                    "address": prefix,
                    "src_prefix": no_source(&prefix),
                    "route_metric": metric,
                    "route_smoothed_metric": smoothed,
                    "refmetric": num(r, "refmetric"),
                    "id": text(r, "router_id"),
                    "seqno": num(r, "seqno"),
                    "age": 0,
                    "via": via,
                    "installed": r.get("installed").and_then(Value::as_bool).unwrap_or(false),
                    "feasible": r.get("feasible").and_then(Value::as_bool).unwrap_or(false),
                    "dev": text(r, "interface"),
                    "expires_in_ms": num(r, "expires_in_ms"),
                });
                // As babeld: the next hop only when it is not the neighbour.
                if !next_hop.is_empty() && next_hop != via {
                    v["nexthop"] = json!(next_hop);
                }
                (prefix, v)
            })
            .collect(),
    )
}

/// `get_neighbours`: babeld's fields, then weft's `cost`, `name`,
/// `public_key` and `credential_expires` (tunnel neighbours).
pub fn neighbours(neighbours: &Value) -> Value {
    by_family(
        rows(neighbours, "neighbours")
            .iter()
            .map(|n| {
                let address = text(n, "address");
                let mut v = json!({
                    "address": address,
                    "dev": text(n, "interface"),
                    "hello_reach": u16::from_str_radix(&text(n, "reach"), 16).unwrap_or(0),
                    "uhello_reach": 0,
                    "rxcost": num(n, "rxcost"),
                    "txcost": num(n, "txcost"),
                    "rtt": 0,
                    // The engine drops the neighbours of an interface that goes down.
                    "if_up": true,
                    "cost": num(n, "cost"),
                    "last_hello_ms": num(n, "last_hello_ms"),
                });
                for k in ["name", "public_key", "credential_expires"] {
                    if let Some(x) = n.get(k).filter(|x| !x.is_null()) {
                        v[k] = x.clone();
                    }
                }
                (address, v)
            })
            .collect(),
    )
}

fn list_field(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => s.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// `get_nodes`: every node known from credentials.
pub fn nodes(nodes: &Value) -> Value {
    let list: Vec<Value> = rows(nodes, "nodes")
        .iter()
        .map(|n| {
            json!({
                "name": n.get("name").cloned().unwrap_or(Value::Null),
                "key": text(n, "public_key"),
                "router_id": text(n, "router_id"),
                "address": n.get("address").cloned().unwrap_or(Value::Null),
                "status": text(n, "status"),
                "groups": list_field(n, "groups"),
                "prefixes": list_field(n, "prefixes"),
                "expires": n.get("expires").cloned().unwrap_or(Value::Null),
                "tunnel": n.get("tunnel").cloned().unwrap_or(Value::Null),
                "self": n.get("self").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    json!({ "nodes": list })
}

/// `get_tunnels`: the link neighbours (trusted peers met by discovery or
/// configured), each with its tunnel and, once Babel runs over it, the
/// link's costs.
pub fn tunnels(status: &Value, neighbours: &Value) -> Value {
    let empty = Value::Null;
    let trust = status.get("trust").unwrap_or(&empty);
    let list: Vec<Value> = rows(trust, "link_neighbours")
        .iter()
        .map(|l| {
            let ifname = l.get("tunnel").and_then(Value::as_str);
            let babel = ifname
                .and_then(|t| rows(neighbours, "neighbours").iter().find(|n| text(n, "interface") == t));
            json!({
                "interface": ifname,
                "name": l.get("name").cloned().unwrap_or(Value::Null),
                "key": text(l, "public_key"),
                "scope": text(l, "scope"),
                "verified": l.get("verified").and_then(Value::as_bool).unwrap_or(false),
                "credential_expires": l.get("credential_expires").cloned().unwrap_or(Value::Null),
                "endpoint": babel.and_then(|n| n.get("endpoint")).cloned().unwrap_or(Value::Null),
                "neighbour": babel.map(|n| text(n, "address")),
                "rxcost": babel.map(|n| num(n, "rxcost")),
                "txcost": babel.map(|n| num(n, "txcost")),
                "cost": babel.map(|n| num(n, "cost")),
                "reach": babel.map(|n| text(n, "reach")),
            })
        })
        .collect();
    json!({ "tunnels": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_name_is_recognised_only_in_an_rpcd_directory() {
        assert!(invoked_as_plugin("/usr/libexec/rpcd/weft"));
        assert!(invoked_as_plugin("/var/cache/x/libexec/rpcd/weft"));
        assert!(!invoked_as_plugin("/usr/sbin/weft"));
        assert!(!invoked_as_plugin("weft"));
        assert!(!invoked_as_plugin("/usr/libexec/rpcd/babeld"));
    }

    fn routes_view() -> Value {
        json!({"routes": [
            {"prefix": "10.88.2.0/24", "next_hop": "fe80::2", "neighbour": "fe80::2", "interface": "weftab-1",
             "metric": 96, "refmetric": 0, "seqno": 7, "router_id": "02:00:00:00:00:00:00:02",
             "installed": true, "feasible": true, "expires_in_ms": 13000},
            {"prefix": "fd42::2/128", "next_hop": "fe80::2", "neighbour": "fe80::3", "interface": "eth0",
             "metric": 192, "smoothed_metric": 200, "refmetric": 96, "seqno": 8, "router_id": "02:00:00:00:00:00:00:03",
             "installed": false, "feasible": true, "expires_in_ms": 1000},
            {"prefix": "10.88.1.0/24", "next_hop": null, "interface": null, "metric": 0, "seqno": 3,
             "router_id": "02:00:00:00:00:00:00:01", "installed": false, "origin": "local"},
        ]})
    }

    #[test]
    fn routes_take_babelds_shape_and_fields() {
        let r = routes(&routes_view());
        let v4 = r["IPv4"].as_array().unwrap();
        let v6 = r["IPv6"].as_array().unwrap();
        assert_eq!((v4.len(), v6.len()), (1, 1), "{r}");
        let a = &v4[0];
        assert_eq!(a["address"], "10.88.2.0/24");
        assert_eq!(a["src_prefix"], "0.0.0.0/0");
        assert_eq!(a["route_metric"], 96);
        assert_eq!(a["route_smoothed_metric"], 96, "falls back to the metric");
        assert_eq!(a["id"], "02:00:00:00:00:00:00:02");
        assert_eq!(a["via"], "fe80::2");
        assert!(a.get("nexthop").is_none(), "next hop equal to the neighbour is left out, as babeld does");
        assert_eq!(a["installed"], true);
        assert_eq!(a["dev"], "weftab-1");
        let b = &v6[0];
        assert_eq!(b["src_prefix"], "::/0");
        assert_eq!(b["route_smoothed_metric"], 200);
        assert_eq!(b["nexthop"], "fe80::2");
        assert_eq!(b["installed"], false);
        for k in [
            "address",
            "src_prefix",
            "route_metric",
            "route_smoothed_metric",
            "refmetric",
            "id",
            "seqno",
            "age",
            "via",
            "installed",
            "feasible",
        ] {
            assert!(a.get(k).is_some(), "{k} missing in {a}");
        }
    }

    #[test]
    fn xroutes_are_the_local_prefixes() {
        let x = xroutes(&routes_view());
        assert_eq!(
            x,
            json!({"IPv4": [{"address": "10.88.1.0/24", "src_prefix": "0.0.0.0/0", "metric": 0}], "IPv6": []})
        );
    }

    #[test]
    fn neighbours_carry_babelds_fields_and_weft_names() {
        let n = neighbours(&json!({"neighbours": [
            {"address": "fe80::2", "interface": "weftab-1", "reach": "fff0", "rxcost": 96, "txcost": 96, "cost": 96,
             "last_hello_ms": 300, "name": "node1", "public_key": "K", "credential_expires": null},
        ]}));
        assert_eq!(n["IPv4"], json!([]));
        let a = &n["IPv6"][0];
        assert_eq!(a["hello_reach"], 0xfff0);
        assert_eq!(a["dev"], "weftab-1");
        assert_eq!(a["uhello_reach"], 0);
        assert_eq!(a["rtt"], 0);
        assert_eq!(a["if_up"], true);
        assert_eq!(a["name"], "node1");
        assert!(a.get("credential_expires").is_none());
    }

    #[test]
    fn info_and_nodes() {
        let i = info(&json!({"version": "0.1.0", "router_id": "02:00:00:00:00:00:00:01"}), "ap1");
        assert_eq!(
            i,
            json!({"babeld_version": "weft-0.1.0", "my_id": "02:00:00:00:00:00:00:01", "host": "ap1"})
        );
        let n = nodes(
            &json!({"nodes": [{"name": "n2", "public_key": "K", "prefixes": "10.0.0.0/24,fd00::/64",
            "groups": "ops", "status": "valid", "expires": "2027-01-01T00:00:00Z", "tunnel": "weftab-1", "self": false}]}),
        );
        let row = &n["nodes"][0];
        assert_eq!(row["prefixes"], json!(["10.0.0.0/24", "fd00::/64"]));
        assert_eq!(row["groups"], json!(["ops"]));
        assert_eq!(row["key"], "K");
        assert_eq!(row["tunnel"], "weftab-1");
    }

    #[test]
    fn tunnels_join_link_neighbours_with_babel_costs() {
        let status = json!({"trust": {"link_neighbours": [
            {"name": "n2", "public_key": "K2", "scope": "Raw(3)", "verified": true, "credential_expires": null, "tunnel": "weftab-1"},
            {"name": "n3", "public_key": "K3", "scope": "Raw(3)", "verified": false, "credential_expires": null, "tunnel": null},
        ]}});
        let nb = json!({"neighbours": [{"address": "fe80::2", "interface": "weftab-1", "reach": "ffff",
            "rxcost": 96, "txcost": 100, "cost": 100, "endpoint": "[fe80::9%eth0]:51820"}]});
        let t = tunnels(&status, &nb);
        let list = t["tunnels"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["interface"], "weftab-1");
        assert_eq!(list[0]["cost"], 100);
        assert_eq!(list[0]["endpoint"], "[fe80::9%eth0]:51820");
        assert_eq!(list[1]["interface"], Value::Null);
        assert_eq!(list[1]["cost"], Value::Null);
    }

    #[test]
    fn an_unreachable_daemon_is_an_error_not_a_panic() {
        let e = call("get_routes", Path::new("/nonexistent/weft.sock")).unwrap_err();
        assert!(e.contains("cannot reach"), "{e}");
        assert!(call("reboot", Path::new("/nonexistent")).is_err());
    }
}
