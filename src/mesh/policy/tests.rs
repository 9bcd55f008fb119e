use super::*;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn rule(src: Option<&str>, dest: Option<&str>, protos: &str, ports: &str, accept: bool) -> Rule {
    Rule {
        name: None,
        src_group: src.map(Into::into),
        dest_group: dest.map(Into::into),
        protos: Protos::parse(protos).unwrap(),
        dest_ports: if ports.is_empty() { vec![] } else { parse_ports(ports).unwrap() },
        accept,
    }
}

struct World {
    rules: Vec<Rule>,
    own: Vec<String>,
    plain: Vec<String>,
    peers: Vec<(Vec<Prefix>, Vec<String>)>,
}

impl World {
    fn table(&self, default_accept: bool) -> Table {
        let peers: Vec<PeerSources<'_>> =
            self.peers.iter().map(|(a, g)| PeerSources { allowed: a, groups: g }).collect();
        let local = Local {
            rules: &self.rules,
            default_accept,
            e2e_port: 6699,
            babel_port: 6696,
            plain_interfaces: &self.plain,
            raw_interfaces: &["mesh0".to_string()],
            installed: &[],
        };
        table(&Inputs {
            local: &local,
            own_groups: &self.own,
            transport_prefix: p("fd42:77:1:ffff::/64"),
            peers: &peers,
            unreachable: &[p("10.99.0.0/24")],
            // A babeld host's prefix, routed hop by hop, inside the admin
            // gateway's 0.0.0.0/0.
            hop_routes: &[p("10.50.0.0/24")],
        })
    }
}

fn servers() -> World {
    World {
        rules: vec![
            rule(Some("admins"), Some("servers"), "tcp", "22 443", true),
            rule(Some("guests"), Some("servers"), "tcp", "443", false),
            rule(None, Some("printers"), "all", "", true),
            rule(None, None, "icmp", "", true),
        ],
        own: vec!["servers".into()],
        plain: vec!["eth9".into()],
        peers: vec![
            (vec![p("fd42:77:1::a/128"), p("10.89.1.0/24")], vec!["guests".into()]),
            (vec![p("fd42:77:1::b/128"), p("0.0.0.0/0")], vec!["admins".into(), "ops".into()]),
        ],
    }
}

#[test]
fn rules_for_other_destination_groups_are_left_out() {
    let t = servers().table(false);
    let names: Vec<&str> = t.counters.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["spoofed", "foreign", "policy_0", "policy_1", "policy_3", "policy_default"]);
    let full = t.full();
    assert!(!full.contains("policy_2"), "{full}");
    // Sources per group, by allowed-ips: the guest's grant is carved out of
    // the admin gateway's 0.0.0.0/0 (WireGuard attributes it to the guest).
    assert!(
        full.contains("add element inet weft src0_4 { 0.0.0.0-10.89.0.255, 10.89.2.0-255.255.255.255 }"),
        "{full}"
    );
    assert!(full.contains("add element inet weft src0_6 { fd42:77:1::b }"), "{full}");
    assert!(full.contains("add element inet weft src1_4 { 10.89.1.0-10.89.1.255 }"), "{full}");
    assert!(full
        .contains("ip saddr @src0_4 meta l4proto 6 th dport { 22, 443 } counter name \"policy_0\" accept"));
    assert!(full.contains("ip6 saddr @src1_6 meta l4proto 6 th dport { 443 } counter name \"policy_1\" drop"));
    // A rule without src_group also applies to traffic per hop (not
    // attributed); rules with one only end to end.
    let hop = &full[full.find("chain from_hop").unwrap()..full.find("chain from_e2e").unwrap()];
    assert!(hop.contains("meta l4proto { 1, 58 } counter name \"policy_3\" accept"), "{hop}");
    assert!(!hop.contains("policy_0") && !hop.contains("policy_1"), "{hop}");
    assert!(hop.contains("counter name \"policy_default\" drop"), "{hop}");
    // Every end-to-end source is refused per hop, also an unreachable node's.
    // (by longest match: the babeld host's per-hop prefix stays allowed per hop)
    assert!(
        full.contains("add element inet weft e2e4 { 0.0.0.0-10.49.255.255, 10.50.1.0-255.255.255.255 }"),
        "{full}"
    );
    assert!(full.contains("add element inet weft e2e6 { fd42:77:1::a-fd42:77:1::b }"), "{full}");
    // Per hop only end-to-end UDP to our transport address, Babel and
    // ICMPv6 on link-local, and multicast skip the checks; transport and
    // link-local sources are refused.
    assert!(full.contains("ip6 daddr fd42:77:1:ffff::/64 udp dport 6699 return"), "{full}");
    assert!(full.contains("ip6 daddr fe80::/10 udp dport 6696 return"), "{full}");
    assert!(
        full.contains("ip6 saddr { fd42:77:1:ffff::/64, fe80::/10 } counter name \"spoofed\" drop"),
        "{full}"
    );
    assert!(!full.contains("fe80::/10, ff00::/8 } return"), "{full}");
    assert!(full.starts_with("table inet weft\ndelete table inet weft\ntable inet weft {\n"), "{full}");
}

#[test]
fn peers_changing_refill_only_the_sets_that_changed() {
    let mut w = servers();
    let old = w.table(true);
    w.peers[1].1 = vec!["ops".into()];
    w.plain.push("eth8".into());
    let new = w.table(true);
    assert!(new.same_structure(&old));
    let up = new.update_from(&old);
    assert_eq!(
        up,
        "flush set inet weft plain\nadd element inet weft plain { \"eth8\", \"eth9\" }\n\
         flush set inet weft src0_4\nflush set inet weft src0_6\n"
    );
    assert_eq!(new.update_from(&new), "");
    // Our groups or the rules changing change the structure.
    w.own = vec!["printers".into()];
    assert!(!w.table(true).same_structure(&new));
}

#[test]
fn attribution_follows_the_longest_allowed_ip() {
    let f = |items: &[(&str, bool)]| {
        let v: Vec<(Prefix, bool)> = items.iter().map(|(s, f)| (p(s), *f)).collect();
        owned(&v)
    };
    assert_eq!(
        f(&[("10.0.0.0/8", true), ("10.1.0.0/16", false), ("10.1.2.0/24", true)]).0,
        ["10.0.0.0-10.0.255.255", "10.1.2.0-10.1.2.255", "10.2.0.0-10.255.255.255"]
    );
    assert_eq!(
        f(&[("::/0", true), ("fd00::1/128", false)]).1,
        ["::-fd00::", "fd00::2-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
    );
    // Adjacent members merge; the families stay apart.
    assert_eq!(
        f(&[("10.0.0.0/25", true), ("10.0.0.128/25", true), ("fd00::/127", true)]),
        (vec!["10.0.0.0-10.0.0.255".to_string()], vec!["fd00::-fd00::1".to_string()])
    );
    assert_eq!(f(&[("10.0.0.0/8", false)]), (vec![], vec![]));
    assert_eq!(f(&[("0.0.0.0/0", true), ("0.0.0.0/1", false)]).0, ["128.0.0.0-255.255.255.255"]);
}

#[test]
fn a_property_owned_sets_match_longest_prefix_attribution() {
    use proptest::prelude::*;
    let prefix = (any::<u8>(), 20u8..=32).prop_map(|(b, l)| {
        let a = std::net::Ipv4Addr::new(10, 0, b, 0);
        let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
        Prefix::V4(std::net::Ipv4Addr::from(u32::from(a) & m), l)
    });
    let items = proptest::collection::vec((prefix, any::<bool>()), 0..12);
    proptest::proptest!(proptest::test_runner::Config::with_cases(64), |(items in items, probe in any::<u16>())| {
        let mut items = items;
        // One owner per prefix, as WireGuard's allowed-ips.
        items.sort_by_key(|i| i.0);
        items.dedup_by_key(|i| i.0);
        let addr = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) | u32::from(probe) >> 4 << 4 | u32::from(probe & 15);
        let addr = std::net::Ipv4Addr::from(addr);
        let owner = items.iter().filter(|(p, _)| p.contains_addr(addr.into())).max_by_key(|(p, _)| p.len());
        let expect = owner.is_some_and(|(_, f)| *f);
        let (v4, _) = owned(&items);
        let inside = v4.iter().any(|e| {
            let (lo, hi) = e.split_once('-').unwrap_or((e, e));
            let (lo, hi): (std::net::Ipv4Addr, std::net::Ipv4Addr) = (lo.parse().unwrap(), hi.parse().unwrap());
            lo <= addr && addr <= hi
        });
        prop_assert_eq!(inside, expect, "{} in {:?} -> {:?}", addr, items, v4);
    });
}

#[test]
fn policy_options_parse_with_clear_errors() {
    assert_eq!(Protos::parse("tcp udp").unwrap(), Protos { tcp: true, udp: true, icmp: false });
    assert!(Protos::parse("all").unwrap().is_all());
    assert!(Protos::parse("sctp").unwrap_err().contains("sctp"));
    assert_eq!(parse_ports("22 8000-8080").unwrap(), [(22, 22), (8000, 8080)]);
    assert!(parse_ports("0").is_err());
    assert!(parse_ports("90-80").unwrap_err().contains("backwards"));
    assert!(parse_ports("http").is_err());
}

#[test]
fn counters_are_read_from_nft_output() {
    let text = "table inet weft {\n\tcounter spoofed {\n\t\tpackets 3 bytes 252\n\t}\n\tcounter policy_0 {\n\t\tpackets 0 bytes 0\n\t}\n}\n";
    assert_eq!(parse_counters(text), [("spoofed".to_string(), 3, 252), ("policy_0".to_string(), 0, 0)]);
}

#[test]
fn the_fixed_chains_name_the_end_to_end_interface_and_the_counters() {
    assert_eq!(HOOKS.matches(&format!("\"{}\"", super::super::e2e::INTERFACE)).count(), 7);
    assert_eq!(HOOKS.matches(&format!("counter name \"{FOREIGN}\"")).count(), 4);
    let head = hop_head(&p("fd42::/64"), 1, 2);
    assert_eq!(head.matches(&format!("counter name \"{SPOOFED}\"")).count(), 3);
    assert_eq!(DEFAULT, "policy_default");
}
