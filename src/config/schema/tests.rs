use super::*;
use crate::config::parse_str;
use proptest::prelude::*;
use std::path::Path;

const K1: &str = "EREREREREREREREREREREREREREREREREREREREREQE=";
const K2: &str = "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIgI=";
const K3: &str = "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMwM=";

const FIXTURE: &str = include_str!("../../../tests/data/weft.config");

/// A configuration with `extra` appended; fails the test on error.
fn ok(text: &str) -> (Config, Vec<Warning>) {
    match parse_str(text, "t") {
        Ok(r) => r,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn fail(text: &str) -> ConfigError {
    match parse_str(text, "t") {
        Ok((c, _)) => panic!("{text:?} was accepted: {c:?}"),
        Err(e) => e,
    }
}

fn key(s: &str) -> PublicKey {
    s.parse().unwrap()
}

/// The smallest warning-free configuration: a main section and a device.
const MINIMAL: &str = "config weft 'main'\nconfig interface 'mesh'\n\toption ifname 'mesh0'\n";
/// The interface part of [`MINIMAL`], to follow a custom main section.
const IFACE: &str = "config interface 'mesh'\n\toption ifname 'mesh0'\n";

#[test]
fn defaults() {
    let (c, w) = ok(MINIMAL);
    assert!(w.is_empty(), "{w:?}");
    let m = &c.main;
    assert!(m.enabled);
    assert_eq!(m.protocol, 119);
    assert_eq!(m.table, 254);
    assert_eq!(m.kernel_priority, 0);
    assert_eq!(m.hello_interval_ms, 4_000);
    assert_eq!(m.update_interval_ms, 16_000);
    assert_eq!(m.smoothing_half_life_ms, 4_000);
    assert_eq!(m.babel_port, 6696);
    assert_eq!(m.state_file, Path::new("/var/lib/weft/state"));
    assert_eq!(m.control_socket, Path::new("/var/run/weft.sock"));
    assert_eq!(m.log_level, LogLevel::Info);
    assert_eq!(m.mesh_prefix, None);
    assert_eq!(m.wireguard_backend, WireguardBackend::Auto);
    assert_eq!(m.userspace_implementation, "wireguard-go");
    assert_eq!(m.uapi_dir, Path::new("/var/run/wireguard"));
    assert_eq!(m.listen_port, 51820);
    assert_eq!(m.listen_port_range, 80);
    assert_eq!(m.keepalive_ms, 0);
    assert!(m.set_forwarding);
    assert!(m.origin_signatures, "origin signatures are required by default");
    assert_eq!(
        (m.end_to_end, m.end_to_end_port, m.end_to_end_max_peers, m.end_to_end_mtu),
        (None, 6699, 1024, None)
    );
    assert_eq!(m.domain, "mesh");
    assert_eq!(m.hosts_file.as_deref(), Some(Path::new("/tmp/hosts/weft")));
    assert_eq!(m.metrics_file.as_deref(), Some(Path::new("/var/prometheus/weft.prom")));
    let t = &c.trust;
    assert_eq!(t.private_key_file, Path::new("/etc/weft/private.key"));
    assert_eq!(t.credential_file, Path::new("/etc/weft/node.cred"));
    assert!(t.ca_public_keys.is_empty());
    assert!(t.trusted_keys.is_empty());
    assert_eq!(t.revocation_file, Path::new("/etc/weft/revoked"));
    assert!(!t.has_trust_material());
    assert_eq!(
        c.interfaces,
        [InterfaceConfig {
            ifname: "mesh0".into(),
            enabled: true,
            kind: InterfaceType::Auto,
            wireguard: false,
            hello_interval_ms: 4_000,
            update_interval_ms: 16_000,
            rxcost: None,
            split_horizon: None,
            link_quality: None,
            v4_via_v6: true,
        }]
    );
    assert!(c.announces.is_empty());
    assert!(c.peers.is_empty());
}

#[test]
fn fixture_sets_every_option_without_warnings() {
    let (c, w) = parse_str(FIXTURE, "weft.config").unwrap();
    assert!(w.is_empty(), "{w:#?}");
    let m = &c.main;
    assert!(m.enabled);
    assert_eq!(m.protocol, 120);
    assert_eq!(m.table, 100);
    assert_eq!(m.kernel_priority, 10);
    assert_eq!(m.hello_interval_ms, 2_500);
    assert_eq!(m.update_interval_ms, 10_000);
    assert_eq!(m.smoothing_half_life_ms, 8_000);
    assert_eq!(m.babel_port, 6697);
    assert_eq!(m.state_file, Path::new("/var/lib/weft/state.test"));
    assert_eq!(m.control_socket, Path::new("/var/run/weft-test.sock"));
    assert_eq!(m.log_level, LogLevel::Debug);
    assert_eq!(m.mesh_prefix, Some("fd12:3456:789a::/48".parse().unwrap()));
    assert_eq!(m.wireguard_backend, WireguardBackend::Userspace);
    assert_eq!(m.userspace_implementation, "boringtun-cli");
    assert_eq!(m.uapi_dir, Path::new("/tmp/weft-wg"));
    assert_eq!(m.listen_port, 52000);
    assert_eq!(m.listen_port_range, 40);
    assert_eq!(m.keepalive_ms, 30_000);
    assert!(!m.set_forwarding);
    assert!(!m.origin_signatures);
    assert_eq!(m.end_to_end, Some(true));
    assert!(!m.default_policy_accept);
    assert_eq!(m.end_to_end_port, 6700);
    assert_eq!(m.end_to_end_max_peers, 64);
    assert_eq!(m.end_to_end_mtu, Some(1300));
    assert_eq!(m.domain, "mesh.example.org", "lower-cased");
    assert_eq!(m.hosts_file.as_deref(), Some(Path::new("/tmp/hosts/weft-test")));
    assert_eq!(m.metrics_file, None, "'off' disables");
    let t = &c.trust;
    assert_eq!(t.private_key_file, Path::new("/etc/weft/test.key"));
    assert_eq!(t.credential_file, Path::new("/etc/weft/test.cred"));
    assert_eq!(t.ca_public_keys, [key(K1), key(K2)]);
    assert_eq!(t.trusted_keys, [key(K3)]);
    assert_eq!(t.trusted_signing_keys, [(key(K3), [0x44; 32])], "the second word: its signing key");
    assert_eq!(t.revocation_file, Path::new("/etc/weft/revoked.test"));

    let names: Vec<&str> = c.interfaces.iter().map(|i| i.ifname.as_str()).collect();
    assert_eq!(names, ["mesh0", "eth1", "eth2"]);
    assert_eq!(
        c.interfaces[0],
        InterfaceConfig {
            ifname: "mesh0".into(),
            enabled: true,
            kind: InterfaceType::Wireless,
            wireguard: true,
            hello_interval_ms: 1_000,
            update_interval_ms: 4_000,
            rxcost: Some(300),
            split_horizon: Some(false),
            link_quality: Some(true),
            v4_via_v6: true,
        }
    );
    let lan = &c.interfaces[1];
    assert_eq!(lan.kind, InterfaceType::Wired);
    assert!(!lan.wireguard);
    assert!(!lan.v4_via_v6);
    // Inherits main's explicit intervals.
    assert_eq!((lan.hello_interval_ms, lan.update_interval_ms), (2_500, 10_000));
    let spare = &c.interfaces[2];
    assert_eq!(spare.kind, InterfaceType::Tunnel);
    assert!(!spare.enabled);
    assert!(spare.wireguard, "trust material makes wireguard the default");

    assert_eq!(
        c.announces,
        [
            AnnounceConfig { prefix: "10.13.1.0/24".parse().unwrap(), metric: 0, enabled: true },
            AnnounceConfig { prefix: "fd12:3456:789a:1::/64".parse().unwrap(), metric: 128, enabled: false },
        ]
    );

    assert_eq!(c.peers.len(), 3);
    let office = &c.peers[0];
    assert_eq!(office.name.as_deref(), Some("office"));
    assert_eq!(office.endpoint.as_ref().unwrap().to_string(), "vpn.example.org:51820");
    assert_eq!(office.keepalive_ms, 25_000);
    assert_eq!(office.rxcost, 512);
    assert_eq!((office.hello_interval_ms, office.update_interval_ms), (8_000, 32_000));
    assert!(office.enabled);
    let laptop = &c.peers[1];
    assert_eq!(laptop.endpoint, None);
    assert_eq!(laptop.keepalive_ms, 30_000, "main's keepalive");
    assert_eq!(laptop.rxcost, RXCOST_TUNNEL);
    assert_eq!(c.peers[2].endpoint.as_ref().unwrap().to_string(), "[2001:db8::7]:51821");

    // The disabled policy section is left out.
    assert_eq!(c.policies.len(), 1);
    let r = &c.policies[0];
    assert_eq!(r.name.as_deref(), Some("admin_ssh"));
    assert_eq!((r.src_group.as_deref(), r.dest_group.as_deref()), (Some("admins"), Some("servers")));
    assert_eq!(r.protos.to_string(), "tcp");
    assert_eq!(r.dest_ports, [(22, 22), (8000, 8080)]);
    assert!(r.accept);
}

#[test]
fn policy_sections_are_checked() {
    let trust = "config weft 'main'\n\tlist ca_public_key 'EREREREREREREREREREREREREREREREREREREREREQE='\n\toption mesh_prefix 'fd12:3456:789a::/48'\n";
    let with = |extra: &str| format!("{trust}{extra}{IFACE}");
    // Ports without a protocol: TCP and UDP.
    let (c, w) = ok(&with("config policy\n\toption action 'accept'\n\toption dest_port '443'\n"));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.policies[0].protos.to_string(), "tcp udp");
    for (bad, says) in [
        (
            "\toption proto 'icmp'\n\toption dest_port '22'\n\toption action 'accept'\n",
            "dest_port needs proto tcp",
        ),
        ("\toption proto 'tcp'\n", "action"),
        ("\toption action 'reject'\n", "sends no rejections"),
        ("\toption action 'accept'\n\toption dest_port '70000'\n", "70000"),
        ("\toption action 'accept'\n\toption proto 'gre'\n", "gre"),
        ("\toption action 'accept'\n\toption src_group 'two words'\n", "no spaces"),
    ] {
        let e = fail(&with(&format!("config policy\n{bad}"))).to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    // Without end to end nothing can say who sent a packet.
    let off = format!("{trust}\toption end_to_end '0'\nconfig policy\n\toption action 'drop'\n{IFACE}");
    assert!(fail(&off).to_string().contains("needs end to end"), "{}", fail(&off));
    let plain = format!("config weft 'main'\n\toption default_policy 'drop'\n{IFACE}");
    assert!(fail(&plain).to_string().contains("needs end to end"));
    let (c, _) = ok(&with("\toption default_policy 'drop'\n"));
    assert!(!c.main.default_policy_accept);
}

/// Every option the schema reads appears in the fixture, and every option
/// in the fixture is one the schema knows.
#[test]
fn fixture_covers_every_known_option() {
    let (doc, _) = crate::config::uci::parse(FIXTURE, "weft.config").unwrap();
    for (ty, known) in [
        ("weft", MAIN_OPTIONS),
        ("interface", INTERFACE_OPTIONS),
        ("announce", ANNOUNCE_OPTIONS),
        ("peer", PEER_OPTIONS),
        ("policy", POLICY_OPTIONS),
    ] {
        for name in known.iter() {
            assert!(doc.sections_of(ty).any(|s| s.option(name).is_some()), "fixture lacks {ty}.{name}");
        }
    }
}

#[test]
fn published_files_are_disabled_by_a_false_word_and_empty_means_default() {
    for off in ["0", "off", "no", "false", "disabled"] {
        let (c, w) = ok(&format!(
            "config weft 'main'\n\toption hosts_file '{off}'\n\toption metrics_file '{off}'\n{IFACE}"
        ));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((c.main.hosts_file, c.main.metrics_file), (None, None), "{off}");
    }
    // libuci drops an empty value: the default stays.
    let (c, _) = ok(&format!("config weft 'main'\n\toption metrics_file ''\n{IFACE}"));
    assert_eq!(c.main.metrics_file.as_deref(), Some(Path::new(DEFAULT_METRICS_FILE)));
}

#[test]
fn no_main_section_means_defaults_with_a_warning() {
    let (c, w) = ok("config interface\n\toption ifname eth0\n");
    assert_eq!(c.main.protocol, DEFAULT_PROTOCOL);
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("no 'config weft' section"), "{w:?}");
}

#[test]
fn main_section_should_be_named_main() {
    for header in ["config weft", "config weft 'other'"] {
        let (_, w) = ok(&format!("{header}\nconfig interface\n\toption ifname eth0\n"));
        assert_eq!(w.len(), 1, "{header}: {w:?}");
        assert!(w[0].message.contains("named 'main'"));
        assert_eq!(w[0].line, 1);
    }
}

/// Invalid values: `(main option, value, what the message must say)`.
#[test]
fn invalid_main_values_are_refused_with_line_and_option() {
    let cases: &[(&str, &str, &str)] = &[
        ("enabled", "maybe", "a boolean"),
        ("enabled", "True", "a boolean"),
        ("protocol", "0", "5 to 255 other than 42"),
        ("protocol", "4", "0-4 belong to the kernel"),
        ("protocol", "42", "other than 42"),
        ("protocol", "256", "5 to 255"),
        ("protocol", "babel", "route protocol number"),
        ("table", "local", "'main', 'default' or a table number"),
        ("table", "255", "other than 255"),
        ("table", "0", "from 1"),
        ("table", "4294967296", "4294967295"),
        ("table", "-1", "table number"),
        ("kernel_priority", "-1", "a whole number from 0 to 4294967295"),
        ("hello_interval", "fast", "seconds between 0.01 and 655.35"),
        ("hello_interval", "0", "seconds between 0.01"),
        ("hello_interval", "0.001", "at most 2 decimals"),
        ("hello_interval", "700", "655.35"),
        ("hello_interval", "4s", "seconds"),
        ("update_interval", "-16", "seconds"),
        ("smoothing_half_life", "3601", "seconds from 0 to 3600"),
        ("babel_port", "0", "1 to 65535"),
        ("babel_port", "65536", "1 to 65535"),
        ("state_file", "var/lib/weft", "an absolute path"),
        ("control_socket", "weft.sock", "an absolute path"),
        ("log_level", "verbose", "error, warn, info, debug, trace"),
        ("log_level", "INFO", "error, warn"),
        ("private_key_file", "~/key", "absolute path"),
        ("credential_file", "node.cred", "absolute path"),
        ("revocation_file", "revoked", "absolute path"),
        ("ca_public_key", "tooshort", "a 32-byte key in base64"),
        ("trusted_key", "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykx=", "32-byte key"),
        ("trusted_key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "small order"),
        ("trusted_key", "7P///////////////////////////////////////38=", "small order"),
        ("mesh_prefix", "10.0.0.0/8", "an IPv6 prefix"),
        ("mesh_prefix", "fd00::/96", "length 64 or less"),
        ("mesh_prefix", "fd00::1/48", "host bits set"),
        ("mesh_prefix", "nonsense", "IPv6 prefix"),
        ("wireguard_backend", "wg", "auto, kernel, userspace"),
        ("userspace_implementation", "wireguard go", "without spaces"),
        ("uapi_dir", "run/wireguard", "absolute path"),
        ("listen_port", "0", "1 to 65535"),
        ("listen_port_range", "0", "1 to 65535"),
        ("keepalive", "2.5", "whole seconds"),
        ("keepalive", "65536", "whole seconds from 0 to 65535"),
        ("set_forwarding", "auto", "a boolean"),
        ("origin_signatures", "1", "is not require or off"),
        ("end_to_end_mtu", "1000", "1280"),
        ("end_to_end_max_peers", "0", ""),
        ("domain", "mesh.", "labels of letters"),
        ("domain", "my mesh", "a DNS domain"),
        ("domain", "-mesh", "a DNS domain"),
        ("hosts_file", "hosts/weft", "an absolute path (starting with '/'), or '0' to disable"),
        ("metrics_file", "weft.prom", "or '0' to disable"),
        ("metrics_file", "1", "or '0' to disable"),
    ];
    for (option, value, expected) in cases {
        let text = format!("config weft 'main'\n\toption log_level info\n\toption {option} '{value}'\n");
        let e = fail(&text);
        assert_eq!(e.line, Some(3), "{option}={value}: {e}");
        match &e.kind {
            ErrorKind::InvalidValue { section, option: o, value: v, expected: x } => {
                assert_eq!(section, "weft 'main'");
                assert_eq!(o, option);
                assert_eq!(v, value);
                assert!(x.contains(expected), "{option}={value}: {x:?} lacks {expected:?}");
            }
            k => panic!("{option}={value}: {k:?}"),
        }
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("t:3: option '{option}': expected ")), "{shown}");
    }
}

#[test]
fn end_to_end_without_room_for_transport_addresses_is_a_conflict() {
    for prefix in ["", "\toption mesh_prefix 'fd00:1::/64'\n"] {
        let text = format!("config weft 'main'\n{prefix}\toption end_to_end '1'\n");
        let e = fail(&text);
        assert!(e.to_string().contains("end_to_end '1' needs a mesh_prefix of /63 or shorter"), "{e}");
    }
    let (c, _) = parse_str("config weft 'main'\n\toption mesh_prefix 'fd00:1::/64'\n\tlist trusted_key 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo='\n", "t").unwrap();
    assert!(!c.end_to_end(), "a /64 mesh prefix turns the default off");
    let (c, _) = parse_str("config weft 'main'\n\toption mesh_prefix 'fd00:1::/48'\n\tlist trusted_key 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo='\n", "t").unwrap();
    assert!(c.end_to_end(), "on by default with trust material and room");
    for port in ["51820", "51899", "6698"] {
        let e = fail(&format!("config weft 'main'\n\toption end_to_end_port '{port}'\n"));
        assert!(e.to_string().contains("is one of the tunnels' listen ports or the discovery port"), "{e}");
    }
    let (c, _) = parse_str("config weft 'main'\n\toption mesh_prefix 'fd00:1::/48'\n", "t").unwrap();
    assert!(!c.end_to_end(), "off without trust material");
}

#[test]
fn invalid_section_values_are_refused() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("interface", "ifname", "a/b", "network device name"),
        ("interface", "ifname", "waytoolongdevicename", "1-15 characters"),
        ("interface", "type", "radio", "wireless, wired, tunnel, auto"),
        ("interface", "wireguard", "2", "a boolean"),
        ("interface", "enabled", "y", "a boolean"),
        ("interface", "hello_interval", "0.005", "seconds"),
        ("interface", "update_interval", "1000", "655.35"),
        ("interface", "rxcost", "0", "1 to 65534"),
        ("interface", "rxcost", "65535", "infinity"),
        ("interface", "split_horizon", "sometimes", "a boolean"),
        ("interface", "link_quality", "auto", "a boolean"),
        ("interface", "v4_via_v6", "maybe", "a boolean"),
        ("announce", "prefix", "10.0.0.1/8", "host bits set"),
        ("announce", "prefix", "10.0.0.0/33", "prefix length"),
        ("announce", "prefix", "example.org", "IPv4 or IPv6 prefix"),
        ("announce", "metric", "65535", "retraction"),
        ("announce", "metric", "-1", "0 to 65534"),
        ("announce", "enabled", "nope", "a boolean"),
        ("peer", "public_key", "not-a-key", "32-byte key"),
        ("peer", "endpoint", "2001:db8::1:51820", "needs brackets"),
        ("peer", "endpoint", "host", "no port"),
        ("peer", "endpoint", "host:0", "bad port"),
        ("peer", "keepalive", "forever", "whole seconds"),
        ("peer", "rxcost", "0", "1 to 65534"),
        ("peer", "hello_interval", "0", "seconds"),
        ("peer", "update_interval", "x", "seconds"),
        ("peer", "enabled", "2", "a boolean"),
    ];
    for (ty, option, value, expected) in cases {
        // The required option first, so that the bad one is what fails.
        let required = match *ty {
            "interface" => "\toption ifname eth0\n".to_string(),
            "announce" => "\toption prefix 10.9.0.0/16\n".to_string(),
            _ => format!("\toption public_key {K1}\n"),
        };
        let text = format!(
            "config weft 'main'\n\tlist trusted_key {K2}\nconfig {ty} 'x'\n{required}\toption {option} '{value}'\n"
        );
        let e = fail(&text);
        assert_eq!(e.line, Some(5), "{ty}.{option}={value}: {e}");
        match &e.kind {
            ErrorKind::InvalidValue { section, option: o, expected: x, .. } => {
                assert_eq!(section, &format!("{ty} 'x'"));
                assert_eq!(o, option);
                assert!(x.contains(expected), "{ty}.{option}={value}: {x:?} lacks {expected:?}");
            }
            k => panic!("{ty}.{option}={value}: {k:?}"),
        }
    }
}

#[test]
fn boundary_values_are_accepted() {
    let (c, _) = ok(&format!(
        "config weft 'main'\n\toption protocol 5\n\toption table 4294967295\n\
         \toption hello_interval 0.01\n\toption update_interval 655.35\n\
         \toption listen_port 65535\n\toption listen_port_range 1\n\
         \toption keepalive 65535\n\toption smoothing_half_life 0\n{}",
        IFACE
    ));
    assert_eq!(c.main.protocol, 5);
    assert_eq!(c.main.table, u32::MAX);
    assert_eq!(c.main.hello_interval_ms, 10);
    assert_eq!(c.main.update_interval_ms, 655_350);
    assert_eq!(c.main.keepalive_ms, 65_535_000);
    assert_eq!(c.main.smoothing_half_life_ms, 0);
    let (c, _) = ok(&format!("config weft 'main'\n\toption protocol 255\n\toption table default\n{}", IFACE));
    assert_eq!((c.main.protocol, c.main.table), (255, TABLE_DEFAULT));
}

#[test]
fn protocols_of_other_daemons_give_a_warning() {
    let (c, w) = ok(&format!("config weft 'main'\n\toption protocol 12\n{}", IFACE));
    assert_eq!(c.main.protocol, 12);
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("bird"), "{}", w[0].message);
    assert_eq!(w[0].line, 2);
}

#[test]
fn update_interval_defaults_to_four_hellos_per_link() {
    // Main sets only hello: everyone's update is 4 x their own hello.
    let (c, _) = ok("config weft 'main'\n\toption hello_interval 2\n\
         config interface\n\toption ifname a\n\
         config interface\n\toption ifname b\n\toption hello_interval 0.5\n\
         config interface\n\toption ifname c\n\toption hello_interval 200\n");
    assert_eq!(c.main.update_interval_ms, 8_000);
    let iv: Vec<(u64, u64)> =
        c.interfaces.iter().map(|i| (i.hello_interval_ms, i.update_interval_ms)).collect();
    // 4 x 200 s does not fit the wire: clamped to 655.35 s.
    assert_eq!(iv, [(2_000, 8_000), (500, 2_000), (200_000, 655_350)]);

    // Main sets update explicitly: links that do not override inherit it.
    let (c, _) = ok("config weft 'main'\n\toption update_interval 30\n\
         config interface\n\toption ifname a\n\toption hello_interval 1\n\
         config interface\n\toption ifname b\n\toption update_interval 5\n");
    assert_eq!(c.interfaces[0].update_interval_ms, 30_000);
    assert_eq!(c.interfaces[1].update_interval_ms, 5_000);
    assert_eq!(c.interfaces[1].hello_interval_ms, 4_000);
}

#[test]
fn wireguard_default_follows_trust_material() {
    let (c, _) = ok("config interface\n\toption ifname a\n");
    assert!(!c.interfaces[0].wireguard);
    for trust in [format!("list ca_public_key {K1}"), format!("list trusted_key {K1}")] {
        let (c, _) = ok(&format!(
            "config weft 'main'\n\t{trust}\nconfig interface\n\toption ifname a\n\
             config interface\n\toption ifname b\n\toption wireguard 0\n"
        ));
        assert!(c.interfaces[0].wireguard, "{trust}");
        assert!(!c.interfaces[1].wireguard, "{trust}");
    }
}

#[test]
fn wireguard_without_trust_material_admits_nobody_with_a_warning() {
    let (c, w) = ok("config weft 'main'\nconfig interface 'mesh'\n\toption ifname a\n\toption wireguard 1\n");
    assert!(c.interfaces[0].wireguard, "the interface must stay closed, not fall back to plain Babel");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].line, 4);
    assert!(
        w[0].message.contains("interface 'mesh': wireguard is 1 but no ca_public_key or trusted_key"),
        "{}",
        w[0].message
    );
}

#[test]
fn listen_port_range_as_first_last() {
    let (c, _) = ok(&format!("config weft 'main'\n\toption listen_port_range '52000-52009'\n{IFACE}"));
    assert_eq!((c.main.listen_port, c.main.listen_port_range), (52000, 10));
    let (c, _) = ok(&format!(
        "config weft 'main'\n\toption listen_port 51820\n\toption listen_port_range '51820-51899'\n{IFACE}"
    ));
    assert_eq!((c.main.listen_port, c.main.listen_port_range), (51820, 80));
    for bad in ["51899-51820", "0-10", "1-70000", "a-b", "-"] {
        let e = fail(&format!("config weft 'main'\n\toption listen_port_range '{bad}'\n{IFACE}"));
        assert!(e.to_string().contains("FIRST-LAST"), "{bad}: {e}");
    }
    let e = fail(&format!(
        "config weft 'main'\n\toption listen_port 51820\n\toption listen_port_range '52000-52009'\n{IFACE}"
    ));
    assert!(e.to_string().contains("does not start at listen_port 51820"), "{e}");
}

#[test]
fn link_params_by_type() {
    let (c, _) = ok("config interface\n\toption ifname a\n");
    let mut i = c.interfaces[0].clone();
    let p = |i: &InterfaceConfig, w| {
        let l = i.link_params(w);
        (l.rxcost, l.split_horizon, l.link_quality)
    };
    assert_eq!(p(&i, true), (256, false, true), "auto, detected wireless");
    assert_eq!(p(&i, false), (96, false, false), "auto, not wireless: no split horizon");
    i.kind = InterfaceType::Wired;
    assert_eq!(p(&i, true), (96, true, false), "an explicit type wins over detection");
    i.kind = InterfaceType::Wireless;
    assert_eq!(p(&i, false), (256, false, true));
    i.kind = InterfaceType::Tunnel;
    assert_eq!(p(&i, false), (96, false, false));
    i.rxcost = Some(500);
    i.split_horizon = Some(true);
    i.link_quality = Some(true);
    assert_eq!(p(&i, false), (500, true, true), "explicit options win");
}

#[test]
fn listen_ports_must_fit() {
    let e = fail(&format!(
        "config weft 'main'\n\toption listen_port 65500\n\toption listen_port_range 37\n{}",
        IFACE
    ));
    assert_eq!(e.line, Some(3));
    assert!(e.to_string().contains("goes past port 65535"), "{e}");
    let (c, _) = ok(&format!(
        "config weft 'main'\n\toption listen_port 65500\n\toption listen_port_range 36\n{}",
        IFACE
    ));
    assert_eq!(c.main.listen_port_range, 36);
    // Without an explicit range, the default shrinks to fit.
    let (c, _) = ok(&format!("config weft 'main'\n\toption listen_port 65530\n{}", IFACE));
    assert_eq!(c.main.listen_port_range, 6);
}

#[test]
fn mesh_prefix_outside_ula_is_a_warning() {
    let (c, w) = ok(&format!("config weft 'main'\n\toption mesh_prefix 2001:db8::/48\n{}", IFACE));
    assert_eq!(c.main.mesh_prefix, Some("2001:db8::/48".parse().unwrap()));
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("not a unique local"), "{w:?}");
    let (_, w) = ok(&format!("config weft 'main'\n\toption mesh_prefix fc00::/7\n{}", IFACE));
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn missing_required_options() {
    let cases = [
        ("config interface 'mesh'\n\toption type wired\n", "interface 'mesh'", "ifname"),
        ("config announce\n\toption metric 5\n", "announce @announce[0]", "prefix"),
        ("config peer 'office'\n\toption endpoint h:1\n", "peer 'office'", "public_key"),
    ];
    for (section, label, option) in cases {
        let text = format!("config weft 'main'\n{section}");
        let e = fail(&text);
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(e.kind, ErrorKind::Missing { section: label.into(), option: option.into() });
        assert_eq!(e.to_string(), format!("t:2: {label}: required option '{option}' is missing"));
    }
}

#[test]
fn duplicates_are_refused() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("config weft 'main'\nconfig weft 'other'\n", 2, 1, "'config weft' section"),
        (
            "config weft\nconfig interface\n\toption ifname a\nconfig interface 'b'\n\toption ifname a\n",
            5,
            3,
            "interface with ifname 'a'",
        ),
        (
            "config announce\n\toption prefix 10.0.0.0/8\nconfig announce\n\toption prefix 10.0.0.0/8\n",
            4,
            2,
            "announce of prefix 10.0.0.0/8",
        ),
        (
            "config announce\n\toption prefix fd00::/8\nconfig announce\n\toption prefix fd00:0::/8\n",
            4,
            2,
            "announce of prefix fd00::/8",
        ),
    ];
    for (text, line, first, what) in cases {
        let e = fail(text);
        assert_eq!(e.line, Some(*line), "{e}");
        match &e.kind {
            ErrorKind::Duplicate { what: w, first_line } => {
                assert!(w.contains(what), "{w:?}");
                assert_eq!(first_line, first);
            }
            k => panic!("{k:?}"),
        }
    }
    let e = fail(&format!(
        "config peer 'a'\n\toption public_key {K1}\nconfig peer 'b'\n\toption public_key {K1}\n"
    ));
    assert_eq!(e.line, Some(4));
    assert!(e.to_string().contains(&format!("duplicate peer with public_key {K1} (first at line 2)")), "{e}");
}

#[test]
fn a_key_listed_twice_is_kept_once_with_a_warning() {
    let (c, w) = ok(&format!(
        "config weft 'main'\n\tlist ca_public_key {K1}\n\tlist ca_public_key {K2}\n\tlist ca_public_key {K1}\n{}",
        IFACE
    ));
    assert_eq!(c.trust.ca_public_keys, [key(K1), key(K2)]);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].line, 4);
}

#[test]
fn list_and_option_shapes() {
    // A single value where a list is expected is a one-item list.
    let (c, _) = ok(&format!("config weft 'main'\n\toption trusted_key {K1}\n{}", IFACE));
    assert_eq!(c.trust.trusted_keys, [key(K1)]);
    // A list where a single value is expected is an error.
    let e = fail("config weft 'main'\n\tlist hello_interval 1\n\tlist hello_interval 2\n");
    assert_eq!(e.line, Some(2));
    assert!(e.to_string().contains("use 'option', not 'list'"), "{e}");
}

#[test]
fn unknown_options_and_sections_are_warnings() {
    let text = "package weft\n\
         config weft 'main'\n\
         \toption helo_interval 4\n\
         \toption colour blue\n\
         config interface 'mesh'\n\
         \toption ifname mesh0\n\
         \toption rx_cost 100\n\
         config anounce\n\
         \toption prefix 10.0.0.0/8\n\
         config babel\n";
    let (c, w) = ok(text);
    assert!(c.announces.is_empty());
    let got: Vec<(usize, &str)> = w.iter().map(|w| (w.line, w.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (3, "unknown option 'helo_interval' in weft 'main' is ignored (did you mean 'hello_interval'?)"),
            (4, "unknown option 'colour' in weft 'main' is ignored"),
            (7, "unknown option 'rx_cost' in interface 'mesh' is ignored (did you mean 'rxcost'?)"),
            (8, "unknown section type 'anounce' is ignored (did you mean 'announce'?)"),
            (10, "unknown section type 'babel' is ignored"),
        ]
    );
    assert_eq!(
        w[0].to_string(),
        "t:3: warning: unknown option 'helo_interval' in weft 'main' is ignored (did you mean 'hello_interval'?)"
    );
}

#[test]
fn other_warnings() {
    let (_, w) = ok(&format!("package other\n{MINIMAL}"));
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("package 'other'"));

    let (_, w) = ok("config weft 'main'\n");
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("no enabled interface or peer"), "{w:?}");

    let (_, w) = ok("config weft 'main'\nconfig interface\n\toption ifname a\n\toption enabled 0\n");
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("no enabled interface or peer"), "{w:?}");

    let (_, w) = ok(&format!("config weft 'main'\nconfig peer\n\toption public_key {K1}\n"));
    assert!(w.is_empty(), "a peer is a neighbour: {w:?}");
}

#[test]
fn syntax_errors_surface_unchanged() {
    let e = fail("config weft 'main'\n\toption hello_interval '4\n");
    assert_eq!((e.line, e.column), (Some(2), Some(24)));
    assert!(e.to_string().starts_with("t:2:24: unterminated ' quote"), "{e}");
}

#[test]
fn multi_line_values_are_refused_where_they_make_no_sense() {
    let e = fail("config weft 'main'\n\toption state_file '/var/lib/\nweft'\n");
    assert_eq!(e.line, Some(2));
    assert!(e.to_string().contains(r#"got "/var/lib/\nweft""#), "{e}");
}

#[test]
fn enabled_flags() {
    let (c, _) = ok(&format!(
        "config weft 'main'\n\toption enabled off\n\
         config interface\n\toption ifname a\n\toption enabled no\n\
         config announce\n\toption prefix 10.0.0.0/8\n\toption enabled false\n\
         config peer\n\toption public_key {K1}\n\toption enabled disabled\n"
    ));
    assert!(!c.main.enabled);
    assert!(!c.interfaces[0].enabled);
    assert!(!c.announces[0].enabled);
    assert!(!c.peers[0].enabled);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random sections of real option names and plausible or junk values:
    /// a configuration or an error pointing into the text, never a panic.
    #[test]
    fn random_configs_never_panic(sections in prop::collection::vec((
        prop::sample::select(vec!["weft", "interface", "announce", "peer", "other"]),
        prop::collection::vec((
            prop::sample::select([MAIN_OPTIONS, INTERFACE_OPTIONS, ANNOUNCE_OPTIONS, PEER_OPTIONS].concat()),
            prop::sample::select(vec![
                "0", "1", "4", "0.5", "65535", "-1", "main", "auto", "wired", "/abs", "rel",
                "10.0.0.0/8", "fd00::/48", "eth0", "h:1", K1, K2, "", "x y", "4294967296",
            ]),
            any::<bool>(),
        ), 0..8),
    ), 0..6)) {
        let mut text = String::new();
        for (ty, opts) in &sections {
            text.push_str(&format!("config {ty}\n"));
            for (name, value, is_list) in opts {
                let kw = if *is_list { "list" } else { "option" };
                text.push_str(&format!("\t{kw} {name} '{value}'\n"));
            }
        }
        match parse_str(&text, "p") {
            Ok((c, w)) => {
                let lines = text.lines().count().max(1);
                prop_assert!(w.iter().all(|w| w.line >= 1 && w.line <= lines));
                prop_assert_eq!(crate::config::diff(&c, &c), crate::config::ConfigDiff::default());
            }
            Err(e) => {
                let lines = text.lines().count().max(1);
                let l = e.line.unwrap();
                prop_assert!(l >= 1 && l <= lines, "{} for\n{}", e, text);
            }
        }
    }
}

#[test]
fn a_trusted_key_may_name_its_signing_key() {
    let k = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
    let (c, w) = ok(&format!("config weft 'main'\n\tlist trusted_key '{k}'\n{IFACE}"));
    assert!(w.is_empty() && c.trust.trusted_signing_keys.is_empty(), "{w:?}");
    for (bad, says) in [
        (format!("{k} notbase64"), "signing key"),
        (format!("{k} REREREREREREREREREREREREREREREREREREREREREQ= extra"), "at most its signing key"),
    ] {
        let e = fail(&format!("config weft 'main'\n\tlist trusted_key '{bad}'\n{IFACE}")).to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
