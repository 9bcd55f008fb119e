//! What rendering the group policy's nftables table costs: the daemon
//! renders it with the end-to-end plan once a second (and on changes) and
//! runs `nft` only when it differs. 1 000 end-to-end peers (a mesh /128
//! and an IPv4 /24 each, one of ten groups), 1 000 installed routes, five
//! rules. Prints figures; run with `cargo bench --bench policy`.

use std::hint::black_box;
use std::time::Instant;

use weft::babel::Prefix;
use weft::mesh::policy::{table, Inputs, Local, PeerSources, Protos, Rule};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: u32 = 1000;
    let allowed: Vec<Vec<Prefix>> = (0..n)
        .map(|i| {
            vec![
                format!("fd00:1234:5678:{:x}::1/128", i + 1).parse().unwrap(),
                format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap(),
            ]
        })
        .collect();
    let groups: Vec<Vec<String>> = (0..n).map(|i| vec![format!("g{}", i % 10)]).collect();
    let peers: Vec<PeerSources<'_>> =
        (0..n as usize).map(|i| PeerSources { allowed: &allowed[i], groups: &groups[i] }).collect();
    let installed: Vec<Prefix> = allowed.iter().flatten().copied().collect();
    let rule = |src: &str, port: u16, accept: bool| Rule {
        name: Some(format!("{src}_{port}")),
        src_group: Some(src.to_string()),
        dest_group: Some("servers".to_string()),
        protos: Protos { tcp: true, udp: false, icmp: false },
        dest_ports: vec![(port, port)],
        accept,
    };
    let rules = vec![
        rule("g1", 22, true),
        rule("g2", 443, false),
        rule("g3", 80, true),
        rule("g4", 53, true),
        rule("g5", 8080, false),
    ];
    let (plain, raw) = (vec!["lan0".to_string()], vec!["mesh0".to_string(), "mesh1".to_string()]);
    let local = Local {
        rules: &rules,
        default_accept: false,
        e2e_port: 6699,
        babel_port: 6696,
        plain_interfaces: &plain,
        raw_interfaces: &raw,
        installed: &installed,
    };
    let own = vec!["servers".to_string()];
    let inputs = Inputs {
        local: &local,
        own_groups: &own,
        transport_prefix: "fd00:1234:5678:ffff::/64".parse().unwrap(),
        peers: &peers,
        unreachable: &[],
        hop_routes: &[],
    };
    let iterations = if full { 200 } else { 2 };
    let bytes = table(&inputs).full().len();
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(table(black_box(&inputs)));
    }
    let per = start.elapsed() / iterations;
    println!(
        "policy table for {n} peers, {} rules: {:.2} ms per rendering ({iterations} iterations), {bytes} bytes of nft text",
        rules.len(),
        per.as_secs_f64() * 1e3
    );
}
