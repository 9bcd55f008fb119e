//! Wireshark's independent Babel dissector reads weft's packets without an
//! error. Two weft daemons on a link with IPv4 addresses (so that IPv4
//! prefixes travel with AE 1 next hops: tshark cannot decode AE 4) start,
//! converge, run through a periodic dump, and one of them stops (sending
//! retractions) while dumpcap records the link. Then `tshark -V` must decode
//! every frame as Babel, report no malformed packet or expert error, see
//! every TLV type a running weft sends, only AE 0-3, and the very prefixes
//! and next hops the daemons were configured with.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{node_v4, node_v6, Net};
use common::peers::{add_v4, find_route, kernel_routes, link_locals, signal, wait_exit, Weft, WeftIf};
use weft::sim::Topology;

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark").args(args).output().expect("run tshark");
    assert!(out.status.success(), "tshark {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn tshark_decodes_weft_packets_without_errors() {
    require_netns!();
    require_cmd!("tshark", "dumpcap");
    let mut net = Net::new(&Topology::line(2));
    let (dev0, dev1) = (net.dev(0, 1), net.dev(1, 0));
    add_v4(&net, 0, &dev0, "10.99.0.1/24");
    add_v4(&net, 1, &dev1, "10.99.0.2/24");
    let pcap = net.dir(0).join("weft.pcap");

    // Record the link from before either daemon starts, so the first
    // Hellos and route requests are in it too.
    let mut cap = net.spawn(
        0,
        &["dumpcap", "-q", "-P", "-i", &dev0, "-f", "udp port 6696", "-w", pcap.to_str().unwrap()],
        "dumpcap.log",
    );
    let capturing =
        Net::wait_until(Duration::from_secs(10), || net.log(0, "dumpcap.log").contains("Capturing on"));
    assert!(capturing.is_some(), "dumpcap did not start: {}", net.log(0, "dumpcap.log"));

    let announces = |i: usize| [format!("{}/128", node_v6(i)), format!("{}/32", node_v4(i))];
    let (a0, a1) = (announces(0), announces(1));
    let _w0 = Weft::start(&mut net, 0, &[WeftIf::wired(&dev0).option("v4_via_v6", "0")], &[&a0[0], &a0[1]]);
    let _w1 = Weft::start(&mut net, 1, &[WeftIf::wired(&dev1).option("v4_via_v6", "0")], &[&a1[0], &a1[1]]);
    let t_start = Instant::now();
    for (i, j) in [(0, 1), (1, 0)] {
        Net::wait_until(Duration::from_secs(20), || {
            let r = kernel_routes(&net, i, "119");
            find_route(&r, &node_v6(j)).is_some() && find_route(&r, &node_v4(j)).is_some()
        })
        .unwrap_or_else(|| panic!("weft {i} did not learn weft {j}'s routes:\n{}", net.log(i, "weft.log")));
        eprintln!("weft {i} installed weft {j}'s routes after {:?}", t_start.elapsed());
    }
    // dumpcap hands packets to the file in batches, so every event the test
    // needs is awaited in the file itself before the capture stops.
    let p = pcap.to_str().unwrap();
    let in_capture = |filter: &str| -> usize {
        Command::new("tshark")
            .args(["-r", p, "-Y", filter, "-T", "fields", "-e", "frame.number"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0)
    };
    // Updates from each node after the first: the triggered ones and a
    // periodic full dump (update interval 4 x 1 s).
    let (ll0, ll1) = (link_locals(&net, 0, &dev0), link_locals(&net, 1, &dev1));
    let from = |lls: &[String]| {
        let srcs: Vec<String> = lls.iter().map(|a| format!("ipv6.src == {a}")).collect();
        format!("babel.message.type == 8 && ({})", srcs.join(" || "))
    };
    for (i, lls) in [(0, &ll0), (1, &ll1)] {
        Net::wait_until(Duration::from_secs(15), || in_capture(&from(lls)) >= 2)
            .unwrap_or_else(|| panic!("no second dump from weft {i} captured within 15 s"));
    }
    // Node 1 stops: it retracts its prefixes, node 0 removes them.
    let t = Instant::now();
    let mut d1 = net.nodes[1].daemon.take().unwrap();
    signal(d1.id(), "TERM");
    assert!(wait_exit(&mut d1, Duration::from_secs(10)), "weft 1 ignored SIGTERM");
    Net::wait_until(Duration::from_secs(5), || {
        find_route(&kernel_routes(&net, 0, "119"), &node_v6(1)).is_none()
    })
    .unwrap_or_else(|| panic!("node 0 kept node 1's route after its retraction"));
    eprintln!("retraction took effect after {:?}", t.elapsed());
    Net::wait_until(Duration::from_secs(10), || in_capture("babel.message.metric == 65535") > 0)
        .unwrap_or_else(|| panic!("weft 1's retraction never reached the capture"));
    signal(cap.id(), "INT");
    assert!(wait_exit(&mut cap, Duration::from_secs(10)), "dumpcap did not stop");

    let frames = tshark(&["-r", p, "-T", "fields", "-e", "frame.number"]).lines().count();
    let babel_frames =
        tshark(&["-r", p, "-Y", "babel", "-T", "fields", "-e", "frame.number"]).lines().count();
    assert!(frames >= 10, "only {frames} frames captured");
    assert_eq!(babel_frames, frames, "tshark did not take every captured frame for Babel");
    let text = tshark(&["-r", p, "-V", "-Y", "babel"]);
    let keep = || {
        let dst = net.dir(0).join("weft.tshark.txt");
        let _ = std::fs::write(&dst, &text);
        dst.display().to_string()
    };
    for bad in
        ["Malformed", "malformed", "corrupt", "Expert Info (Error", "Expert Info (Warning", "Unknown ("]
    {
        assert!(!text.contains(bad), "tshark found {bad:?} in weft's packets (decode in {})", keep());
    }
    let expert = tshark(&["-r", p, "-q", "-z", "expert"]);
    assert!(!expert.contains("Error") && !expert.contains("Warning"), "tshark expert info:\n{expert}");

    // Every TLV type a running weft sends.
    for tlv in ["hello (4)", "ihu (5)", "router-id (6)", "nh (7)", "update (8)"] {
        assert!(text.contains(&format!("Message {tlv}")), "no {tlv} TLV decoded (decode in {})", keep());
    }
    // Only AE 0-3, and at least IPv4, IPv6 and link-local IPv6 among them.
    let aes: BTreeSet<&str> =
        text.lines().filter_map(|l| l.trim().strip_prefix("Address Encoding: ")).collect();
    let allowed = ["Wildcard (0)", "IPv4 (1)", "IPv6 (2)", "Link-Local IPv6 (3)"];
    assert!(aes.iter().all(|a| allowed.contains(a)), "unexpected address encodings {aes:?}");
    for a in &allowed[1..] {
        assert!(aes.contains(a), "no {a} address encoding in {aes:?}");
    }
    let ae_numbers: BTreeSet<String> = tshark(&["-r", p, "-T", "fields", "-e", "babel.message.ae"])
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    assert!(
        ae_numbers.iter().all(|a| ["0", "1", "2", "3"].contains(&a.as_str())),
        "AEs on the wire: {ae_numbers:?}"
    );
    // tshark reads the same prefixes and next hops the daemons were given.
    for i in 0..2 {
        for pfx in announces(i) {
            assert!(
                text.contains(&format!("Prefix: {pfx}")),
                "tshark never decoded prefix {pfx} ({})",
                keep()
            );
        }
    }
    for nh in ["NH: 10.99.0.1", "NH: 10.99.0.2"] {
        assert!(text.contains(nh), "tshark never decoded next hop {nh} ({})", keep());
    }
    // Node 1's retractions (metric 65535) are in the capture.
    assert!(text.contains("Metric: 65535"), "no retraction decoded ({})", keep());
    eprintln!("tshark decoded {frames} frames of weft traffic without error; AEs seen: {aes:?}");
}
