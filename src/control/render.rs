//! Aligned tables for people, built from the same JSON views `--json`
//! prints. Columns that a view lacks (e.g. credential fields on a plain
//! Babel node) are simply left out.

use serde_json::Value;

use super::Request;

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_string(),
        Some(v) => v.to_string(),
    }
}

/// Renders rows of objects as a table with the given (key, heading) columns;
/// a column is shown only if some row has the key.
pub fn table(rows: &[Value], columns: &[(&str, &str)]) -> String {
    // An empty table still shows its header, so "nothing" reads as such.
    let cols: Vec<&(&str, &str)> =
        columns.iter().filter(|(k, _)| rows.is_empty() || rows.iter().any(|r| r.get(*k).is_some())).collect();
    let cells: Vec<Vec<String>> =
        rows.iter().map(|r| cols.iter().map(|(k, _)| cell(r.get(*k))).collect()).collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, h))| cells.iter().map(|c| c[i].chars().count()).chain([h.len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let line = |vals: Vec<&str>| {
        let mut s = String::new();
        for (i, v) in vals.iter().enumerate() {
            if i + 1 == vals.len() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(cols.iter().map(|(_, h)| *h).collect()));
    for c in &cells {
        out.push_str(&line(c.iter().map(String::as_str).collect()));
    }
    out
}

fn rows(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

pub fn render(req: Request, v: &Value) -> String {
    match req {
        Request::Neighbours => table(
            &rows(v, "neighbours"),
            &[
                ("address", "ADDRESS"),
                ("interface", "INTERFACE"),
                ("name", "NAME"),
                ("reach", "REACH"),
                ("rxcost", "RXCOST"),
                ("txcost", "TXCOST"),
                ("cost", "COST"),
                ("last_hello", "LAST HELLO"),
                ("tunnel", "TUNNEL"),
                ("credential_expires", "CREDENTIAL EXPIRES"),
                ("public_key", "KEY"),
            ],
        ),
        Request::Routes => table(
            &rows(v, "routes"),
            &[
                ("prefix", "PREFIX"),
                ("next_hop", "NEXT HOP"),
                ("interface", "INTERFACE"),
                ("metric", "METRIC"),
                ("seqno", "SEQNO"),
                ("router_id", "ROUTER-ID"),
                ("installed", "INSTALLED"),
                ("feasible", "FEASIBLE"),
                ("origin", "ORIGIN"),
            ],
        ),
        Request::Nodes => table(
            &rows(v, "nodes"),
            &[
                ("name", "NAME"),
                ("router_id", "ROUTER-ID"),
                ("address", "ADDRESS"),
                ("status", "CREDENTIAL"),
                ("expires", "EXPIRES"),
                ("prefixes", "PREFIXES"),
                ("groups", "GROUPS"),
                ("tunnel", "TUNNEL"),
                ("public_key", "KEY"),
            ],
        ),
        Request::Status => render_status(v),
        // Already text: the Prometheus exposition.
        Request::Metrics => v.as_str().unwrap_or_default().to_string(),
    }
}

fn render_status(v: &Value) -> String {
    let mut out = String::new();
    // What the operator must not miss comes first (e.g. "this node will not
    // route packets for others: ...").
    if let Some(note) = v.pointer("/forwarding/note").and_then(Value::as_str) {
        out.push_str(&format!("WARNING: {note}\n"));
    }
    if let Some(o) = v.as_object() {
        for (k, val) in o {
            match val {
                Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                    out.push_str(&format!("{k}:\n"));
                    let keys: Vec<String> =
                        items[0].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
                    let cols: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), k.as_str())).collect();
                    for l in table(items, &cols).lines() {
                        out.push_str(&format!("  {l}\n"));
                    }
                }
                Value::Object(m) => {
                    out.push_str(&format!("{k}:\n"));
                    for (k2, v2) in m {
                        out.push_str(&format!("  {k2}: {}\n", cell(Some(v2))));
                    }
                }
                other => out.push_str(&format!("{k}: {}\n", cell(Some(other)))),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_skip_absent_columns() {
        let v = json!({"routes": [
            {"prefix": "10.0.0.0/24", "next_hop": "fe80::1", "metric": 96, "installed": true},
            {"prefix": "fd00::1/128", "next_hop": "fe80::22", "metric": 65535, "installed": false},
        ]});
        let t = render(Request::Routes, &v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "PREFIX       NEXT HOP  METRIC  INSTALLED");
        assert_eq!(lines[1], "10.0.0.0/24  fe80::1   96      yes");
        assert_eq!(lines[2], "fd00::1/128  fe80::22  65535   no");
        let empty = render(Request::Routes, &json!({"routes": []}));
        assert!(empty.starts_with("PREFIX  NEXT HOP"), "{empty:?}");
        assert_eq!(empty.lines().count(), 1);
    }

    #[test]
    fn status_renders_nested_values() {
        let v = json!({"router_id": "02:00:00:00:00:00:00:01", "counts": {"routes": 3}});
        let s = render(Request::Status, &v);
        assert!(s.contains("router_id: 02:00:00:00:00:00:00:01"));
        assert!(s.contains("  routes: 3"));
        assert!(!s.contains("WARNING"), "{s}");
    }

    #[test]
    fn status_leads_with_a_node_that_will_not_route_for_others() {
        let v = json!({"router_id": "x", "forwarding": {"routes_for_others": false,
            "note": "this node will not route packets for others: IPv6 forwarding is off"}});
        let s = render(Request::Status, &v);
        assert!(s.starts_with("WARNING: this node will not route packets for others: "), "{s}");
        assert!(s.contains("  routes_for_others: no"), "{s}");
    }
}
