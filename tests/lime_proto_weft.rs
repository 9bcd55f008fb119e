//! lime-proto-weft (`lime.proto.weft`) run by real Lua 5.1 with OpenWrt's
//! real libuci Lua binding (built by scripts/openwrt-components.sh), on a
//! LibreMesh-like `lime-autogen`: the /etc/config/weft it writes passes
//! `weft check-config`, a second lime-config run changes nothing, the module
//! only saves (lime-config commits), and runOnDevice adds a device at run
//! time. LibreMesh's own lime.config/lime.network are stood in for by
//! tests/lime/ (see its README).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::mesh::weft;
use common::openwrt::components;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const CA_KEY: &str = "Yr0bDNVNXd0VAvzzsB0xWMwUaDrqCdQBhZ3DoeWiZ7g=";

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn setup(tag: &str) -> (Dir, PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("weft-lime-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (conf, save) = (root.join("config"), root.join("save"));
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&save).unwrap();
    // What lime-config merges from lime-defaults, lime-community and lime-node.
    std::fs::write(
        conf.join("lime-autogen"),
        format!(
            "config lime 'system'\n\toption hostname 'node-%M4%M5%M6'\n\n\
             config lime 'network'\n\toption primary_interface 'eth0'\n\
             \toption main_ipv4_address '10.13.0.0/16'\n\
             \tlist protocols 'lan'\n\tlist protocols 'anygw'\n\tlist protocols 'weft:20'\n\
             \toption weft_mesh_prefix 'fd42:77:1::/48'\n\
             \tlist weft_ca_public_key '{CA_KEY}'\n\
             \toption weft_credential_file '/etc/weft/node.cred'\n\
             \tlist weft_announce '10.13.64.0/24'\n\
             \tlist weft_announce 'fd13:1::/64'\n"
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("network"),
        "config interface 'loopback'\n\toption device 'lo'\n\toption proto 'static'\n",
    )
    .unwrap();
    // A user's own setting that lime-config must keep.
    std::fs::write(
        conf.join("weft"),
        "config weft 'main'\n\toption private_key_file '/etc/weft/custom.key'\n",
    )
    .unwrap();
    (Dir(root), conf, save)
}

/// `lua5.1 tests/lime/lime_config.lua CONFDIR SAVEDIR COMMIT DEV...` with the
/// module, the stand-ins and libuci's Lua binding on the search paths.
fn lime_config(conf: &Path, save: &Path, commit: bool, devs: &[&str]) -> Output {
    lua(&[
        repo().join("tests/lime/lime_config.lua").to_str().unwrap(),
        conf.to_str().unwrap(),
        save.to_str().unwrap(),
        if commit { "1" } else { "0" },
    ]
    .into_iter()
    .chain(devs.iter().copied())
    .collect::<Vec<_>>())
}

fn lua(args: &[&str]) -> Output {
    assert!(common::netns::have("lua5.1"), "lua5.1 is needed: run scripts/install-deps.sh");
    let p = components();
    let lua_path = format!(
        "{}/?.lua;{}/?.lua;;",
        repo().join("openwrt-package/lime-proto-weft/files/usr/lib/lua").display(),
        repo().join("tests/lime").display()
    );
    let out = Command::new("lua5.1")
        .args(args)
        .env("LUA_PATH", lua_path)
        .env("LUA_CPATH", format!("{}/lib/lua/5.1/?.so;;", p.display()))
        .env("LD_LIBRARY_PATH", p.join("lib"))
        .output()
        .expect("run lua5.1");
    assert!(
        out.status.success(),
        "lua5.1 {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn check_config(file: &Path) {
    let out = Command::new(weft()).args(["check-config", "-c", file.to_str().unwrap()]).output().unwrap();
    assert!(
        out.status.success(),
        "weft check-config refused what lime-proto-weft wrote:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

/// `uci -c CONFDIR show PACKAGE` with the real uci CLI.
fn uci_show(conf: &Path, package: &str) -> String {
    let p = components();
    let out = Command::new(p.join("bin/uci"))
        .args(["-c", conf.to_str().unwrap(), "show", package])
        .env("LD_LIBRARY_PATH", p.join("lib"))
        .output()
        .unwrap();
    assert!(out.status.success(), "uci show {package}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lime_config_writes_a_weft_config_that_check_config_accepts() {
    let (_dir, conf, save) = setup("config");
    let before = std::fs::read_to_string(conf.join("weft")).unwrap();

    // The module saves only: nothing reaches /etc/config until lime-config commits.
    lime_config(&conf, &save, false, &["eth0", "wlan0-mesh", "wlan0-ap"]);
    assert_eq!(std::fs::read_to_string(conf.join("weft")).unwrap(), before, "the module committed by itself");
    assert!(save.join("weft").exists(), "no saved delta for weft in {save:?}");

    let _ = std::fs::remove_dir_all(&save);
    std::fs::create_dir_all(&save).unwrap();
    lime_config(&conf, &save, true, &["eth0", "wlan0-mesh", "wlan0-ap"]);
    let weft_conf = conf.join("weft");
    check_config(&weft_conf);

    let show = uci_show(&conf, "weft");
    for line in [
        "weft.main=weft",
        "weft.main.private_key_file='/etc/weft/custom.key'",
        "weft.main.mesh_prefix='fd42:77:1::/48'",
        &format!("weft.main.ca_public_key='{CA_KEY}'"),
        "weft.main.credential_file='/etc/weft/node.cred'",
        "weft.lm_net_eth0_weft_if=interface",
        "weft.lm_net_eth0_weft_if.ifname='eth0_20'",
        "weft.lm_net_eth0_weft_if.wireguard='1'",
        "weft.lm_net_wlan0_mesh_weft_if.ifname='wlan0-mesh_20'",
        "weft.lm_net_wlan0_mesh_weft_if.type='wireless'",
        "weft.lm_net_announce_1.prefix='10.13.64.0/24'",
        "weft.lm_net_announce_2.prefix='fd13:1::/64'",
    ] {
        assert!(show.contains(line), "{line} missing from:\n{show}");
    }
    assert!(!show.contains("wlan0_ap"), "an AP interface got weft:\n{show}");
    let net = uci_show(&conf, "network");
    assert!(net.contains("network.lm_net_eth0_weft_dev.vid='20'"), "{net}");
    assert!(net.contains("network.lm_net_eth0_weft_dev.mtu='1496'"), "{net}");

    // A second lime-config run (a new process, as on the router) changes nothing.
    let first = std::fs::read_to_string(&weft_conf).unwrap();
    lime_config(&conf, &save, true, &["eth0", "wlan0-mesh", "wlan0-ap"]);
    assert_eq!(std::fs::read_to_string(&weft_conf).unwrap(), first, "lime-config is not idempotent");

    // Fewer devices next time: the stale interface section goes.
    lime_config(&conf, &save, true, &["eth0"]);
    let show = uci_show(&conf, "weft");
    assert!(!show.contains("wlan0_mesh"), "stale interface kept:\n{show}");
    check_config(&weft_conf);
}

#[test]
fn run_on_device_adds_a_vlan_interface_and_reloads() {
    let (dir, conf, save) = setup("run");
    lime_config(&conf, &save, true, &["eth0"]);
    let marker = dir.0.join("reloaded");
    let script = format!(
        "local uci = require('uci').cursor('{c}', '{s}')
         require('lime.config').set_uci_cursor(uci)
         local weft = require('lime.proto.weft')
         weft.RELOAD_CMD = 'touch {m}'
         weft.runOnDevice('eth1', {{'weft', '20'}})
         assert(require('lime.network').created_vlans[1] == 'eth1_20')",
        c = conf.display(),
        s = save.display(),
        m = marker.display()
    );
    lua(&["-e", &script]);
    assert!(marker.exists(), "weft was not reloaded");
    let show = uci_show(&conf, "weft");
    assert!(show.contains("weft.lm_net_eth1_weft_if.ifname='eth1_20'"), "{show}");
    assert!(show.contains("weft.lm_net_eth0_weft_if.ifname='eth0_20'"), "{show}");
    check_config(&conf.join("weft"));
}
