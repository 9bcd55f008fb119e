use super::*;
use crate::config::parse_str;

const K1: &str = "EREREREREREREREREREREREREREREREREREREREREQE=";
const K2: &str = "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIgI=";
const K3: &str = "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMwM=";

fn cfg(text: &str) -> Config {
    match parse_str(text, "t") {
        Ok((c, _)) => c,
        Err(e) => panic!("{e}"),
    }
}

fn base() -> String {
    format!(
        "config weft 'main'\n\
         \tlist trusted_key {K1}\n\
         config interface 'mesh'\n\
         \toption ifname mesh0\n\
         config interface 'lan'\n\
         \toption ifname eth1\n\
         \toption wireguard 0\n\
         config announce\n\
         \toption prefix 10.1.0.0/16\n\
         config announce\n\
         \toption prefix fd00:1::/48\n\
         config peer 'office'\n\
         \toption public_key {K2}\n\
         \toption endpoint vpn.example.org:51820\n"
    )
}

fn ifnames(v: &[InterfaceConfig]) -> Vec<&str> {
    v.iter().map(|i| i.ifname.as_str()).collect()
}

#[test]
fn identical_configs_have_no_difference() {
    let a = cfg(&base());
    let d = diff(&a, &a.clone());
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(d, ConfigDiff::default());
}

#[test]
fn reordering_sections_comments_and_names_is_no_change() {
    let a = cfg(&base());
    let b = cfg(&format!(
        "# reordered, renamed, commented\n\
         config peer 'office'\n\
         \toption endpoint vpn.example.org:51820\n\
         \toption public_key {K2}\n\
         config announce\n\
         \toption prefix fd00:1::/48\n\
         config interface 'wired'\n\
         \toption wireguard off\n\
         \toption ifname eth1\n\
         config announce 'named_now'\n\
         \toption prefix 10.1.0.0/16\n\
         \toption metric 0\n\
         config interface\n\
         \toption ifname mesh0\n\
         \toption hello_interval 4\n\
         config weft 'main'\n\
         \toption protocol 119\n\
         \tlist trusted_key {K1}\n"
    ));
    assert_ne!(a, b, "== is exact, order included");
    let d = diff(&a, &b);
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn main_option_changes_are_named() {
    let a = cfg(&base());
    let b = cfg(&base().replace(
        "config weft 'main'\n",
        "config weft 'main'\n\toption protocol 200\n\toption log_level debug\n\toption listen_port 52000\n",
    ));
    let d = diff(&a, &b);
    assert_eq!(d.main, ["protocol", "log_level", "listen_port"]);
    assert!(d.trust.is_empty());
    assert!(d.interfaces.is_empty(), "{:?}", d.interfaces);
    assert!(d.announces.is_empty());
    assert!(d.peers.is_empty());
    assert!(!d.is_empty());
}

#[test]
fn main_hello_interval_reaches_interfaces_that_do_not_override_it() {
    let a = cfg(&base().replace(
        "\toption ifname eth1\n",
        "\toption ifname eth1\n\toption hello_interval 4\n\toption update_interval 16\n",
    ));
    let b = cfg(&base()
        .replace("config weft 'main'\n", "config weft 'main'\n\toption hello_interval 2\n")
        .replace(
            "\toption ifname eth1\n",
            "\toption ifname eth1\n\toption hello_interval 4\n\toption update_interval 16\n",
        ));
    let d = diff(&a, &b);
    assert_eq!(d.main, ["hello_interval", "update_interval"]);
    // mesh0 inherits the new hello; eth1 has its own and does not change.
    assert_eq!(d.interfaces.changed.len(), 1);
    let ch = &d.interfaces.changed[0];
    assert_eq!(ch.old.ifname, "mesh0");
    assert_eq!((ch.old.hello_interval_ms, ch.new.hello_interval_ms), (4_000, 2_000));
    assert_eq!((ch.old.update_interval_ms, ch.new.update_interval_ms), (16_000, 8_000));
    // The static peer inherits it too.
    assert_eq!(d.peers.changed.len(), 1);
    assert!(d.interfaces.added.is_empty() && d.interfaces.removed.is_empty());
}

#[test]
fn interfaces_added_removed_changed_by_ifname() {
    let a = cfg(&base());
    let b = cfg(&base()
        .replace("\toption ifname eth1\n", "\toption ifname eth2\n")
        .replace("\toption ifname mesh0\n", "\toption ifname mesh0\n\toption rxcost 300\n"));
    let d = diff(&a, &b);
    assert_eq!(ifnames(&d.interfaces.added), ["eth2"]);
    assert_eq!(ifnames(&d.interfaces.removed), ["eth1"]);
    assert_eq!(d.interfaces.changed.len(), 1);
    assert_eq!(d.interfaces.changed[0].old.rxcost, None);
    assert_eq!(d.interfaces.changed[0].new.rxcost, Some(300));
    assert!(d.main.is_empty() && d.trust.is_empty());
    assert!(d.announces.is_empty() && d.peers.is_empty());
}

#[test]
fn announces_added_removed_changed_by_prefix() {
    let a = cfg(&base());
    let b = cfg(&base()
        .replace("10.1.0.0/16\n", "10.1.0.0/16\n\toption metric 64\n")
        .replace("fd00:1::/48", "fd00:2::/48"));
    let d = diff(&a, &b);
    let p = |v: &[AnnounceConfig]| v.iter().map(|a| a.prefix.to_string()).collect::<Vec<_>>();
    assert_eq!(p(&d.announces.added), ["fd00:2::/48"]);
    assert_eq!(p(&d.announces.removed), ["fd00:1::/48"]);
    assert_eq!(d.announces.changed.len(), 1);
    assert_eq!(d.announces.changed[0].old.metric, 0);
    assert_eq!(d.announces.changed[0].new.metric, 64);
    assert!(d.interfaces.is_empty() && d.peers.is_empty());
}

#[test]
fn peers_by_public_key() {
    let a = cfg(&base());
    // New endpoint: changed. Another key: one removed, one added.
    let b = cfg(&base().replace("vpn.example.org:51820", "vpn2.example.org:51820"));
    let d = diff(&a, &b);
    assert_eq!(d.peers.changed.len(), 1);
    assert_eq!(d.peers.changed[0].new.endpoint.as_ref().unwrap().to_string(), "vpn2.example.org:51820");
    let c = cfg(&base().replace(&format!("public_key {K2}"), &format!("public_key {K3}")));
    let d = diff(&a, &c);
    assert!(d.peers.changed.is_empty());
    assert_eq!(d.peers.added.len(), 1);
    assert_eq!(d.peers.added[0].public_key.to_string(), K3);
    assert_eq!(d.peers.removed[0].public_key.to_string(), K2);
}

#[test]
fn trust_changes_are_named_and_reach_the_wireguard_default() {
    let a = cfg(&base());
    // Adding a CA key is a trust change; reordering keys is not.
    let b = cfg(&base().replace(
        &format!("\tlist trusted_key {K1}\n"),
        &format!("\tlist trusted_key {K1}\n\tlist ca_public_key {K3}\n\toption revocation_file /tmp/r\n"),
    ));
    let d = diff(&a, &b);
    assert_eq!(d.trust, ["ca_public_key", "revocation_file"]);
    assert!(d.main.is_empty());
    assert!(d.interfaces.is_empty());

    let two = |x: &str, y: &str| {
        cfg(&base().replace(
            &format!("\tlist trusted_key {K1}\n"),
            &format!("\tlist trusted_key {x}\n\tlist trusted_key {y}\n"),
        ))
    };
    assert!(diff(&two(K1, K3), &two(K3, K1)).is_empty());
    assert_eq!(diff(&two(K1, K3), &two(K1, K2)).trust, ["trusted_key"]);

    // Removing all trust material flips the default of `wireguard` on
    // interfaces that do not set it: mesh0 changes, eth1 (explicit 0) not.
    let none = cfg(&base().replace(&format!("\tlist trusted_key {K1}\n"), ""));
    let d = diff(&a, &none);
    assert_eq!(d.trust, ["trusted_key"]);
    assert_eq!(d.interfaces.changed.len(), 1);
    assert_eq!(d.interfaces.changed[0].old.ifname, "mesh0");
    assert!(d.interfaces.changed[0].old.wireguard);
    assert!(!d.interfaces.changed[0].new.wireguard);
}

#[test]
fn everything_removed_and_added() {
    let a = cfg(&base());
    let empty = cfg("config weft 'main'\n");
    let d = diff(&a, &empty);
    assert_eq!(ifnames(&d.interfaces.removed), ["mesh0", "eth1"], "old order");
    assert_eq!(d.announces.removed.len(), 2);
    assert_eq!(d.peers.removed.len(), 1);
    assert_eq!(d.trust, ["trusted_key"]);
    let back = diff(&empty, &a);
    assert_eq!(ifnames(&back.interfaces.added), ["mesh0", "eth1"], "new order");
    assert_eq!(back.announces.added.len(), 2);
    assert_eq!(back.peers.added.len(), 1);
}

#[test]
fn every_main_and_trust_option_is_diffed() {
    // Changing each option alone names exactly that option.
    let (fixture, _) = parse_str(include_str!("../../../tests/data/weft.config"), "f").unwrap();
    let (defaults, _) = parse_str("config weft 'main'\n", "d").unwrap();
    let d = diff(&defaults, &fixture);
    assert_eq!(
        d.main,
        [
            "protocol",
            "table",
            "kernel_priority",
            "hello_interval",
            "update_interval",
            "smoothing_half_life",
            "babel_port",
            "state_file",
            "control_socket",
            "log_level",
            "mesh_prefix",
            "wireguard_backend",
            "userspace_implementation",
            "uapi_dir",
            "listen_port",
            "listen_port_range",
            "keepalive",
            "max_routes_per_neighbour",
            "max_origins_per_neighbour",
            "set_forwarding",
            "origin_signatures",
            "end_to_end",
            "end_to_end_port",
            "end_to_end_max_peers",
            "end_to_end_mtu",
            "domain",
            "hosts_file",
            "metrics_file",
            "default_policy",
        ],
        "all but 'enabled', which the fixture leaves at 1"
    );
    assert_eq!(
        d.trust,
        ["private_key_file", "credential_file", "ca_public_key", "trusted_key", "revocation_file"]
    );
    let off = parse_str("config weft 'main'\n\toption enabled 0\n", "o").unwrap().0;
    assert_eq!(diff(&defaults, &off).main, ["enabled"]);
}

#[test]
fn one_line_summary_for_the_log() {
    let a = cfg(&base());
    assert_eq!(diff(&a, &a).to_string(), "no change");
    let b = cfg(&base()
        .replace("config weft 'main'\n", "config weft 'main'\n\toption protocol 200\n")
        .replace(
            &format!("\tlist trusted_key {K1}\n"),
            &format!("\tlist trusted_key {K1}\n\tlist ca_public_key {K3}\n"),
        )
        .replace("\toption ifname eth1\n", "\toption ifname eth2\n")
        .replace("\toption ifname mesh0\n", "\toption ifname mesh0\n\toption rxcost 300\n")
        .replace("fd00:1::/48", "fd00:2::/48")
        .replace("vpn.example.org", "vpn2.example.org"));
    assert_eq!(
        diff(&a, &b).to_string(),
        "main: protocol; trust: ca_public_key; interfaces: +eth2 -eth1 ~mesh0; \
         announces: +fd00:2::/48 -fd00:1::/48; peers: ~office"
    );
}
