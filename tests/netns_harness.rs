//! The namespace test bed itself works: addresses, links, failures, cleanup.

mod common;

use std::time::Duration;

use common::netns::{ll, Net};
use weft::sim::Topology;

#[test]
fn line_of_three_namespaces_links_and_failures() {
    require_netns!();
    let net = Net::new(&Topology::line(3));
    let ns_names: Vec<String> = net.nodes.iter().map(|n| n.ns.clone()).collect();
    // Neighbours reach each other's link-local addresses.
    let peer = format!("{}%{}", ll(1, 0), net.dev(0, 1));
    assert!(
        Net::wait_until(Duration::from_secs(5), || net.ping(0, &peer)).is_some(),
        "node 0 cannot ping node 1 on the link"
    );
    // Silent failure drops traffic without taking the link down.
    net.link_silent(0, 1);
    assert!(!net.ping(0, &peer), "silent failure let a ping through");
    let state =
        String::from_utf8_lossy(&net.exec_ok(0, &["ip", "-br", "link", "show", &net.dev(0, 1)]).stdout)
            .to_string();
    assert!(state.contains("UP"), "silent failure changed the link state: {state}");
    net.link_unsilence(0, 1);
    assert!(Net::wait_until(Duration::from_secs(3), || net.ping(0, &peer)).is_some());
    // Carrier loss and recovery.
    net.link_down(0, 1);
    assert!(!net.ping(0, &peer));
    net.link_up(0, 1);
    assert!(
        Net::wait_until(Duration::from_secs(5), || net.ping(0, &peer)).is_some(),
        "link did not come back"
    );
    drop(net);
    let left = String::from_utf8_lossy(
        &std::process::Command::new("ip").args(["netns", "list"]).output().unwrap().stdout,
    )
    .to_string();
    for ns in ns_names {
        assert!(!left.contains(&ns), "namespace {ns} left behind");
    }
}
