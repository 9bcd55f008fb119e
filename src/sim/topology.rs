//! Topologies for the simulator: the JSON file format shared with the
//! namespace test harness, and generators for the standard scenarios.
//!
//! The format is the one network labs already use (NetJSON-like / d3 force
//! graphs): `{"links":[{"source":"a","target":"b","loss":0.1,"delay_ms":5}]}`.
//! `nodes` is optional; other fields are ignored. Node names may be strings
//! or numbers; a node object may be `{"id": ...}` or `{"name": ...}`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::babel::LinkType;

#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    pub a: usize,
    pub b: usize,
    /// Probability that a datagram is lost, each direction (0.0..=1.0).
    pub loss: f64,
    pub delay_ms: u64,
    pub link_type: LinkType,
    /// The JSON gave no `type` and the link is lossy, so it was taken as
    /// wireless: loss is what radios do, and 2-out-of-3 on a lossy "wired"
    /// link declares it down for whole Hello intervals.
    pub type_defaulted: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Topology {
    pub names: Vec<String>,
    pub links: Vec<LinkSpec>,
}

fn name_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => o.get("id").or_else(|| o.get("name")).and_then(name_of),
        _ => None,
    }
}

impl Topology {
    pub fn node(&mut self, name: &str) -> usize {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i;
        }
        self.names.push(name.to_string());
        self.names.len() - 1
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn add_link(&mut self, a: usize, b: usize, link_type: LinkType) {
        self.links.push(LinkSpec { a, b, loss: 0.0, delay_ms: 1, link_type, type_defaulted: false });
    }

    /// Gives every link a loss drawn uniformly from `lo..=hi` (seeded).
    pub fn with_loss(mut self, lo: f64, hi: f64, seed: u64) -> Topology {
        let mut rnd = unit_rng(seed ^ 0x105_5E5);
        for l in &mut self.links {
            l.loss = lo + (hi - lo) * rnd();
        }
        self
    }

    /// Makes every link of the given type.
    pub fn with_type(mut self, t: LinkType) -> Topology {
        for l in &mut self.links {
            l.link_type = t;
            l.type_defaulted = false;
        }
        self
    }

    /// Links per node, on average.
    pub fn average_degree(&self) -> f64 {
        if self.names.is_empty() {
            return 0.0;
        }
        2.0 * self.links.len() as f64 / self.names.len() as f64
    }

    /// The largest number of links at one node.
    pub fn max_degree(&self) -> usize {
        let mut d = vec![0usize; self.names.len()];
        for l in &self.links {
            d[l.a] += 1;
            d[l.b] += 1;
        }
        d.into_iter().max().unwrap_or(0)
    }

    /// A connected random geometric graph whose radius is chosen so that
    /// the average degree is close to `degree` (wireless links).
    pub fn random_geometric_degree(n: usize, degree: f64, seed: u64) -> Topology {
        let (mut lo, mut hi) = (0.0f64, 1.5f64);
        for _ in 0..30 {
            let mid = (lo + hi) / 2.0;
            if Topology::random_geometric(n, mid, seed).average_degree() < degree {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Topology::random_geometric(n, hi, seed)
    }

    /// Parses the JSON topology format. Errors name what is wrong.
    pub fn from_json(text: &str) -> Result<Topology, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("topology is not valid JSON: {e}"))?;
        let mut t = Topology::default();
        if let Some(nodes) = v.get("nodes") {
            let nodes = nodes.as_array().ok_or("\"nodes\" must be an array")?;
            for (i, n) in nodes.iter().enumerate() {
                let name = name_of(n).ok_or_else(|| format!("nodes[{i}] has no id or name"))?;
                t.node(&name);
            }
        }
        let links = v.get("links").and_then(Value::as_array).ok_or("topology needs a \"links\" array")?;
        let mut seen = BTreeMap::new();
        for (i, l) in links.iter().enumerate() {
            let field =
                |f: &str| l.get(f).and_then(name_of).ok_or_else(|| format!("links[{i}] has no \"{f}\""));
            let (sa, sb) = (field("source")?, field("target")?);
            if sa == sb {
                return Err(format!("links[{i}] joins {sa:?} to itself"));
            }
            let (a, b) = (t.node(&sa), t.node(&sb));
            if seen.insert((a.min(b), a.max(b)), i).is_some() {
                return Err(format!("links[{i}]: {sa:?}–{sb:?} is listed twice"));
            }
            let loss = match l.get("loss") {
                None | Some(Value::Null) => 0.0,
                Some(x) => x
                    .as_f64()
                    .filter(|x| (0.0..=1.0).contains(x))
                    .ok_or_else(|| format!("links[{i}].loss must be a number in 0..=1"))?,
            };
            let delay_ms = match l.get("delay_ms") {
                None | Some(Value::Null) => 1,
                Some(x) => x.as_u64().ok_or_else(|| format!("links[{i}].delay_ms must be a whole number"))?,
            };
            let (link_type, type_defaulted) = match l.get("type") {
                None | Some(Value::Null) if loss > 0.0 => (LinkType::Wireless, true),
                None | Some(Value::Null) => (LinkType::Wired, false),
                Some(v) => match v.as_str() {
                    Some("wired") => (LinkType::Wired, false),
                    Some("wireless") => (LinkType::Wireless, false),
                    Some("tunnel") => (LinkType::Tunnel, false),
                    _ => {
                        return Err(format!(
                            "links[{i}].type {v}: expected \"wired\", \"wireless\" or \"tunnel\""
                        ))
                    }
                },
            };
            t.links.push(LinkSpec { a, b, loss, delay_ms, link_type, type_defaulted });
        }
        Ok(t)
    }

    pub fn to_json(&self) -> String {
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|l| {
                serde_json::json!({
                    "source": self.names[l.a], "target": self.names[l.b],
                    "loss": l.loss, "delay_ms": l.delay_ms, "type": l.link_type.as_str(),
                })
            })
            .collect();
        serde_json::json!({ "nodes": self.names.iter().map(|n| serde_json::json!({"id": n})).collect::<Vec<_>>(), "links": links })
            .to_string()
    }

    fn named(n: usize) -> Topology {
        Topology { names: (0..n).map(|i| format!("n{i}")).collect(), links: Vec::new() }
    }

    pub fn line(n: usize) -> Topology {
        let mut t = Topology::named(n);
        for i in 1..n {
            t.add_link(i - 1, i, LinkType::Wired);
        }
        t
    }

    pub fn ring(n: usize) -> Topology {
        let mut t = Topology::line(n);
        if n > 2 {
            t.add_link(n - 1, 0, LinkType::Wired);
        }
        t
    }

    pub fn grid(w: usize, h: usize) -> Topology {
        let mut t = Topology::named(w * h);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if x + 1 < w {
                    t.add_link(i, i + 1, LinkType::Wired);
                }
                if y + 1 < h {
                    t.add_link(i, i + w, LinkType::Wired);
                }
            }
        }
        t
    }

    /// A connected random geometric graph: `n` points in the unit square,
    /// linked when closer than `radius`; components are then joined by their
    /// closest pairs so that the graph is connected.
    pub fn random_geometric(n: usize, radius: f64, seed: u64) -> Topology {
        let mut t = Topology::named(n);
        let mut rnd = unit_rng(seed);
        let pts: Vec<(f64, f64)> = (0..n).map(|_| (rnd(), rnd())).collect();
        let d = |i: usize, j: usize| ((pts[i].0 - pts[j].0).powi(2) + (pts[i].1 - pts[j].1).powi(2)).sqrt();
        let mut comp: Vec<usize> = (0..n).collect();
        fn root(c: &mut [usize], mut i: usize) -> usize {
            while c[i] != i {
                c[i] = c[c[i]];
                i = c[i];
            }
            i
        }
        for i in 0..n {
            for j in i + 1..n {
                if d(i, j) < radius {
                    t.add_link(i, j, LinkType::Wireless);
                    let (ri, rj) = (root(&mut comp, i), root(&mut comp, j));
                    comp[ri] = rj;
                }
            }
        }
        loop {
            let mut best: Option<(f64, usize, usize)> = None;
            for i in 0..n {
                for j in i + 1..n {
                    if root(&mut comp, i) != root(&mut comp, j) && best.is_none_or(|b| d(i, j) < b.0) {
                        best = Some((d(i, j), i, j));
                    }
                }
            }
            let Some((_, i, j)) = best else { break };
            t.add_link(i, j, LinkType::Wireless);
            let (ri, rj) = (root(&mut comp, i), root(&mut comp, j));
            comp[ri] = rj;
        }
        t
    }
}

/// A seeded xorshift generator of uniform numbers in `0..1`.
fn unit_rng(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lab_format_and_ignores_extra_fields() {
        let t = Topology::from_json(
            r#"{"type":"NetworkGraph","nodes":[{"id":"a"},{"id":"b"},{"id":"c"}],
                "links":[{"source":"a","target":"b","loss":0.1,"delay_ms":5,"cost":1},
                         {"source":"b","target":"c","type":"wireless"}]}"#,
        )
        .unwrap();
        assert_eq!(t.names, ["a", "b", "c"]);
        assert_eq!(t.links[0].loss, 0.1);
        assert_eq!(t.links[0].delay_ms, 5);
        assert_eq!(t.links[1].link_type, LinkType::Wireless);
        let numeric = Topology::from_json(r#"{"links":[{"source":1,"target":2}]}"#).unwrap();
        assert_eq!(numeric.names, ["1", "2"]);
    }

    #[test]
    fn lossy_links_without_a_type_are_wireless_and_say_so() {
        let t = Topology::from_json(
            r#"{"links":[{"source":"a","target":"b","loss":0.1},{"source":"b","target":"c"},
                         {"source":"c","target":"d","loss":0.1,"type":"wired"}]}"#,
        )
        .unwrap();
        assert_eq!((t.links[0].link_type, t.links[0].type_defaulted), (LinkType::Wireless, true));
        assert_eq!((t.links[1].link_type, t.links[1].type_defaulted), (LinkType::Wired, false));
        assert_eq!((t.links[2].link_type, t.links[2].type_defaulted), (LinkType::Wired, false));
    }

    #[test]
    fn degree_targeted_graphs_and_loss_ranges() {
        let g = Topology::random_geometric_degree(150, 8.0, 3).with_loss(0.0, 0.2, 3);
        assert!((g.average_degree() - 8.0).abs() < 0.5, "{}", g.average_degree());
        assert!(g.links.iter().all(|l| (0.0..=0.2).contains(&l.loss)));
        assert!(g.links.iter().any(|l| l.loss > 0.1));
    }

    #[test]
    fn rejects_bad_topologies_with_reasons() {
        for (text, want) in [
            ("{", "not valid JSON"),
            ("{}", "links"),
            (r#"{"links":[{"source":"a"}]}"#, "target"),
            (r#"{"links":[{"source":"a","target":"a"}]}"#, "itself"),
            (r#"{"links":[{"source":"a","target":"b","loss":2}]}"#, "loss"),
            (r#"{"links":[{"source":"a","target":"b"},{"source":"b","target":"a"}]}"#, "twice"),
            (r#"{"links":[{"source":"a","target":"b","type":"radio"}]}"#, "expected"),
        ] {
            let e = Topology::from_json(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn generators_have_the_right_shape() {
        assert_eq!(Topology::line(10).links.len(), 9);
        assert_eq!(Topology::ring(20).links.len(), 20);
        assert_eq!(Topology::grid(10, 10).links.len(), 180);
        let g = Topology::random_geometric(200, 0.12, 7);
        assert_eq!(g.len(), 200);
        let again = Topology::random_geometric(200, 0.12, 7);
        assert_eq!(g, again);
        let round = Topology::from_json(&g.to_json()).unwrap();
        assert_eq!(round.links.len(), g.links.len());
    }
}
