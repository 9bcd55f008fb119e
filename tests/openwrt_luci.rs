//! weft's ubus interface and LuCI app against OpenWrt's real components,
//! with a live zero-trust mesh in network namespaces:
//! - `ubus call weft ...` through the real ubusd and rpcd, which runs weft's
//!   exec plugin (the binary under a symlink, as the package installs it),
//!   with babeld's reply shapes and weft's own methods;
//! - the ACL file of luci-app-weft enforced by rpcd sessions through
//!   uhttpd's JSON-RPC handler (what LuCI in a browser talks to);
//! - the status and configuration pages rendered by LuCI's real client
//!   runtime (luci.js, rpc.js, form.js, ...) in headless Chromium (driven by
//!   chromedriver, waiting for the rendered tables), against that
//!   uhttpd/rpcd; screenshots go to target/test-output/luci/.
//!
//! LuCI's server side (the ucode dispatcher and templates) is not run: its
//! runtime modules are not part of the LuCI files at hand. The page shell
//! it would send is written here instead (see [`page`]), booting luci.js
//! with the same environment header.ut gives it and instantiating the view
//! as LuCI's view template does; everything after that is LuCI's own code.
//!
//! Needs root, wireguard-go, chromium, curl, cmake and the OpenWrt sources
//! (scripts/install-deps.sh, scripts/openwrt-components.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::mesh::{run_weft, Ca, Mesh, NodeConf, NodeId};
use common::netns::Net;
use common::openwrt::{Router, RouterSetup};
use serde_json::{json, Value};
use weft::sim::Topology;

const CONVERGE: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn luci_app() -> PathBuf {
    repo().join("openwrt-package/luci-app-weft")
}

/// LuCI's client runtime: `OPENWRT_SRC`/luci, default ../shared/openwrt-src/luci.
fn luci_src() -> PathBuf {
    let src = std::env::var_os("OPENWRT_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/openwrt-src"))
        .join("luci");
    assert!(
        src.join("modules/luci-base/htdocs/luci-static/resources/luci.js").exists(),
        "LuCI sources missing in {src:?}"
    );
    src
}

fn v4_prefix(i: usize) -> String {
    format!("10.88.{}.0/24", i + 1)
}

fn require_tools() {
    require_mesh_tools!();
    for tool in ["chromium", "chromedriver", "curl", "cmake"] {
        assert!(common::netns::have(tool), "{tool} is needed: run scripts/install-deps.sh");
    }
    let selenium = Command::new("/usr/bin/python3").args(["-c", "import selenium"]).status();
    assert!(selenium.is_ok_and(|s| s.success()), "python3-selenium is needed: run scripts/install-deps.sh");
}

/// A line of three credentialed nodes (node0 - node1 - node2), each
/// announcing its own /24, node1 and node2 in group "backbone"; returns
/// once node 0 routes to both others' prefixes. Also returns the CA key.
fn line_mesh() -> (Mesh, String) {
    let mut m = Mesh::new(&Topology::line(3));
    let ca = Ca::init(m.net.root.join("ca"));
    for i in 0..3 {
        let id = NodeId::new(m.dir(i), &format!("node{i}"));
        let cred = id.dir.join(format!("node{i}.cred"));
        let mut args = vec!["ca", "sign", "--ca", ca.dir.to_str().unwrap(), "--name", &id.name];
        args.extend(["--public-key", &id.public, "--out", cred.to_str().unwrap()]);
        let prefix = v4_prefix(i);
        args.extend(["--prefix", &prefix]);
        if i > 0 {
            args.extend(["--group", "backbone"]);
        }
        run_weft(&args);
        let ifaces: Vec<String> = match i {
            0 => vec![m.net.dev(0, 1)],
            1 => vec![m.net.dev(1, 0), m.net.dev(1, 2)],
            _ => vec![m.net.dev(2, 1)],
        };
        let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        let mut conf = NodeConf::new(&ca, &id, &cred, &ifaces);
        conf.announces = vec![v4_prefix(i)];
        m.write_conf(i, &conf);
    }
    for i in 0..3 {
        m.start(i);
    }
    let converged = Net::wait_until(CONVERGE, || {
        let r = m.routes(0);
        r.contains_key(&v4_prefix(1)) && r.contains_key(&v4_prefix(2))
    });
    assert!(converged.is_some(), "node 0 did not learn both prefixes:\n{}", m.log_tail(0, 40));
    (m, ca.public)
}

fn acl_file() -> String {
    std::fs::read_to_string(luci_app().join("root/usr/share/rpcd/acl.d/luci-app-weft.json"))
        .expect("ACL file")
}

/// Starts ubusd/rpcd (and uhttpd serving `www`) on node 0, whose
/// /etc/config/weft is the daemon's own configuration.
fn router(m: &Mesh, www: Option<PathBuf>, extra_acls: Vec<(&'static str, String)>) -> Router {
    let conf = std::fs::read_to_string(m.conf_path(0)).expect("node 0 config");
    let mut acls = vec![("luci-app-weft.json", acl_file())];
    let mut login_acls = vec!["luci-app-weft".to_string()];
    for (name, text) in extra_acls {
        let group: Value = serde_json::from_str(&text).expect("extra ACL JSON");
        for k in group.as_object().expect("ACL object").keys() {
            login_acls.push(k.clone());
        }
        acls.push((name, text));
    }
    Router::start(&m.net, 0, RouterSetup { uci: vec![("weft", conf)], acls, login_acls, www })
}

/// What luci-base's own ACL grants every LuCI login and the client runtime
/// uses (ubus access to rpcd's uci object, whose per-config checks then
/// apply the app's "uci": ["weft"]; the boot-time feature probes). luci-base
/// is not among the LuCI files at hand, so this stands in for its grants.
fn luci_base_standin() -> (&'static str, String) {
    let acl = json!({"luci-base-standin": {
        "read": {"ubus": {"uci": ["get", "changes", "configs"], "luci": ["getFeatures"], "file": ["list"],
                          "session": ["access"]},
                 "uci": ["luci"]},
        "write": {"ubus": {"uci": ["set", "add", "delete", "rename", "order", "apply", "confirm", "rollback"]}}
    }});
    ("luci-base-standin.json", acl.to_string())
}

fn family<'a>(reply: &'a Value, fam: &str) -> &'a [Value] {
    reply[fam].as_array().map(Vec::as_slice).unwrap_or_else(|| panic!("no {fam} array in {reply}"))
}

#[test]
fn ubus_weft_answers_through_real_rpcd_and_the_acl_holds() {
    require_tools();
    let (m, _) = line_mesh();
    std::fs::create_dir_all(m.dir(0).join("www-empty")).unwrap();
    let r = router(&m, Some(m.dir(0).join("www-empty")), vec![luci_base_standin()]);

    // rpcd ran `weft list`: every method is on the bus.
    let listed = String::from_utf8_lossy(&r.ubus(&["-v", "list", "weft"]).stdout).to_string();
    for method in weft::control::rpcd::METHODS {
        assert!(listed.contains(&format!("\"{method}\"")), "{method} not listed:\n{listed}");
    }

    let status = m.status(0);
    let info = r.call("weft", "get_info");
    assert_eq!(info["my_id"], status["router_id"], "{info}");
    assert_eq!(info["babeld_version"], format!("weft-{}", env!("CARGO_PKG_VERSION")));
    assert!(info["host"].as_str().is_some_and(|h| !h.is_empty()), "{info}");

    // Routes: both remote prefixes, babeld's fields, as the daemon sees them.
    let routes = r.call("weft", "get_routes");
    let v4 = family(&routes, "IPv4");
    for i in [1, 2] {
        let row = v4
            .iter()
            .find(|x| x["address"] == v4_prefix(i) && x["installed"] == true)
            .unwrap_or_else(|| panic!("no installed route to {} in {routes}", v4_prefix(i)));
        for k in [
            "src_prefix",
            "route_metric",
            "route_smoothed_metric",
            "refmetric",
            "id",
            "seqno",
            "age",
            "via",
            "feasible",
        ] {
            assert!(row.get(k).is_some(), "{k} missing from {row}");
        }
        assert_eq!(row["src_prefix"], "0.0.0.0/0");
        assert!(row["via"].as_str().is_some_and(|v| v.starts_with("fe80:")), "{row}");
    }
    let two_hop = v4.iter().find(|x| x["address"] == v4_prefix(2) && x["installed"] == true).unwrap();
    let one_hop = v4.iter().find(|x| x["address"] == v4_prefix(1) && x["installed"] == true).unwrap();
    assert!(two_hop["route_metric"].as_u64() > one_hop["route_metric"].as_u64(), "{routes}");
    let daemon_routes = m.query(0, "routes");
    let ids: Vec<&str> =
        daemon_routes["routes"].as_array().unwrap().iter().filter_map(|x| x["router_id"].as_str()).collect();
    assert!(ids.contains(&two_hop["id"].as_str().unwrap()), "{two_hop} vs {daemon_routes}");

    let xroutes = r.call("weft", "get_xroutes");
    assert!(
        family(&xroutes, "IPv4").iter().any(|x| x["address"] == v4_prefix(0) && x["metric"] == 0),
        "{xroutes}"
    );

    // Neighbours: node1 over its tunnel, with babeld's fields and its name.
    let nb = r.call("weft", "get_neighbours");
    let n1 = family(&nb, "IPv6")
        .iter()
        .find(|n| n["name"] == "node1")
        .unwrap_or_else(|| panic!("node1 is not a neighbour: {nb}"));
    for k in ["address", "dev", "hello_reach", "uhello_reach", "rxcost", "txcost", "rtt", "if_up"] {
        assert!(n1.get(k).is_some(), "{k} missing from {n1}");
    }
    assert!(n1["dev"].as_str().is_some_and(|d| d.starts_with("weft")), "{n1}");
    assert!(n1["hello_reach"].as_u64().is_some_and(|r| r > 0), "{n1}");

    let nodes = r.call("weft", "get_nodes");
    let list = nodes["nodes"].as_array().expect("nodes");
    let node2 = list.iter().find(|n| n["name"] == "node2").unwrap_or_else(|| panic!("{nodes}"));
    assert_eq!(node2["groups"], json!(["backbone"]));
    assert_eq!(node2["prefixes"], json!([v4_prefix(2)]));
    assert_eq!(node2["status"], "valid");
    assert_eq!(node2["tunnel"], Value::Null, "node2 is two hops away: no tunnel of ours");
    let node1 = list.iter().find(|n| n["name"] == "node1").unwrap();
    assert_eq!(node1["tunnel"], n1["dev"], "{nodes}");

    let tunnels = r.call("weft", "get_tunnels");
    let t = tunnels["tunnels"].as_array().expect("tunnels");
    assert_eq!(t.len(), 1, "{tunnels}");
    assert_eq!(t[0]["name"], "node1");
    assert_eq!(t[0]["interface"], n1["dev"]);
    assert_eq!(t[0]["verified"], true);
    assert!(t[0]["endpoint"].as_str().is_some_and(|e| e.contains("%")), "{tunnels}");

    let st = r.call("weft", "get_status");
    assert_eq!(st["router_id"], status["router_id"]);

    // Through uhttpd with a LuCI session: the app's ACL grants ubus weft and
    // uci weft, and nothing else.
    let sid = r.login();
    let ok = r.rpc_call(&sid, "weft", "get_routes", json!({}));
    assert_eq!(ok[0], 0, "weft get_routes denied: {ok}");
    assert!(ok[1]["IPv4"].as_array().is_some_and(|a| !a.is_empty()), "{ok}");
    let uci = r.rpc_call(&sid, "uci", "get", json!({"config": "weft", "section": "main"}));
    assert_eq!(uci[0], 0, "uci get weft denied: {uci}");
    assert_eq!(uci[1]["values"]["control_socket"], m.sock(0).display().to_string());
    // rpcd's uci object refuses configurations outside the session's ACLs
    // (UBUS_STATUS_PERMISSION_DENIED), and objects outside them are refused
    // by uhttpd before rpcd is asked.
    let denied = r.rpc_call(&sid, "uci", "get", json!({"config": "rpcd"}));
    assert_eq!(denied, json!([6]), "uci rpcd must be denied: {denied}");
    let other = r.rpc_call(&sid, "session", "list", json!({}));
    assert_eq!(other["code"], -32002, "session list must be denied: {other}");
    let anon = r.rpc_call("00000000000000000000000000000000", "weft", "get_routes", json!({}));
    assert_eq!(anon["code"], -32002, "no session, no routes: {anon}");
    let set = r.rpc_call(
        &sid,
        "uci",
        "set",
        json!({"config": "weft", "section": "main", "values": {"log_level": "info"}}),
    );
    assert_eq!(set[0], 0, "uci set weft (write ACL) refused: {set}");

    // A stopped daemon is an answer, not a hang or an rpcd error.
    let mut m = m;
    m.stop(0);
    let down = r.call("weft", "get_routes");
    assert!(down["error"].as_str().is_some_and(|e| e.contains("cannot reach")), "{down}");
}

/// The document root: LuCI's client runtime and bootstrap theme, the app's
/// views, and a page shell per view.
fn www(dir: &Path, sid: &str) -> PathBuf {
    let www = dir.join("www");
    let res = www.join("luci-static/resources");
    std::fs::create_dir_all(www.join("luci-static/bootstrap")).unwrap();
    let _ = std::fs::remove_dir_all(&res);
    let luci = luci_src();
    let cp = |from: &Path, to: &Path| {
        let st = Command::new("cp").arg("-r").arg(from).arg(to).status().expect("cp");
        assert!(st.success(), "cp {from:?} {to:?}");
    };
    cp(&luci.join("modules/luci-base/htdocs/luci-static/resources"), &www.join("luci-static"));
    cp(
        &luci.join("themes/luci-theme-bootstrap/htdocs/luci-static/bootstrap/cascade.css"),
        &www.join("luci-static/bootstrap"),
    );
    std::fs::create_dir_all(res.join("view")).unwrap();
    cp(&luci_app().join("htdocs/luci-static/resources/view/weft"), &res.join("view"));
    std::fs::write(www.join("status.html"), page(sid, "admin/status/weft", "weft/status")).unwrap();
    std::fs::write(www.join("config.html"), page(sid, "admin/network/weft", "weft/config")).unwrap();
    www
}

/// What LuCI's dispatcher sends for a view node: the bootstrap theme's
/// page frame, luci.js booted with header.ut's environment, and the view
/// instantiated as the view template does.
fn page(sid: &str, path: &str, view: &str) -> String {
    let env = json!({
        "media": "/luci-static/bootstrap",
        "resource": "/luci-static/resources",
        "scriptname": "/cgi-bin/luci",
        "pathinfo": format!("/{path}"),
        "documentroot": "/www",
        "requestpath": path.split('/').collect::<Vec<_>>(),
        "dispatchpath": path.split('/').collect::<Vec<_>>(),
        "pollinterval": 5,
        "ubuspath": "/ubus/",
        "sessionid": sid,
        "token": "0",
        "nodespec": {"action": {"type": "view", "path": view}},
        "apply_rollback": 90, "apply_holdoff": 4, "apply_timeout": 5, "apply_display": 1.5,
        "rollback_token": null
    });
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>router | weft mesh</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/luci-static/bootstrap/cascade.css">
<script src="/luci-static/resources/cbi.js"></script>
</head>
<body class="lang_en" data-page="{dp}">
<header><a class="brand" href="/">router</a><ul class="nav" id="topmenu" style="display:none"></ul><div id="indicators" class="pull-right"></div></header>
<div id="maincontent" class="container">
<div id="tabmenu" style="display:none"></div>
<script src="/luci-static/resources/luci.js?v=test"></script>
<script>L = new LuCI({env});</script>
<div id="view"><div class="spinning">Loading view…</div>
<script>L.require('ui').then(function(ui) {{ ui.instantiateView('{view}'); }});</script>
</div>
</div>
<footer><span>weft test page (LuCI client runtime)</span></footer>
</body>
</html>
"#,
        dp = path.replace('/', "-"),
    )
}

fn output_dir() -> PathBuf {
    let d = repo().join("target/test-output/luci");
    std::fs::create_dir_all(&d).expect("test output dir");
    d
}

/// Headless Chromium in node `i`'s namespace, driven through chromedriver
/// (tests/openwrt/browser.py): loads `url`, waits until the JavaScript
/// expression `ready` holds (the view rendered what the test checks), then
/// returns the DOM and writes a screenshot to `shot`.
fn browse(net: &Net, i: usize, dir: &Path, url: &str, ready: &str, shot: &Path) -> String {
    let profile = tempdir(dir, "chromium");
    let html = profile.with_extension("html");
    let _ = std::fs::remove_file(shot);
    let script = repo().join("tests/openwrt/browser.py");
    let out = net
        .in_ns(
            i,
            &[
                "timeout",
                "180",
                // Debian's, which has python3-selenium (a pyenv's may not).
                "/usr/bin/python3",
                script.to_str().unwrap(),
                url,
                ready,
                "90",
                html.to_str().unwrap(),
                shot.to_str().unwrap(),
                profile.to_str().unwrap(),
            ],
        )
        .output()
        .expect("run /usr/bin/python3 browser.py");
    let dom = std::fs::read_to_string(&html).unwrap_or_default();
    assert!(
        out.status.success(),
        "browser {url} failed ({}): {}\n{dom}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(shot).is_ok_and(|s| s.len() > 10_000), "no screenshot at {shot:?}");
    dom
}

fn tempdir(dir: &Path, tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = dir.join(format!("{tag}-{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// LuCI shows a failed request or a script error in the page.
fn assert_no_errors(dom: &str) {
    for e in ["RPCError", "TypeError", "ReferenceError", "SyntaxError", "NetworkError", "Loading view"] {
        assert!(!dom.contains(e), "the page shows {e}:\n{dom}");
    }
}

/// The HTML of the table with `id`, from a DOM dump.
fn table<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let end = dom[start..].find("</table>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

#[test]
fn luci_pages_render_the_live_mesh_in_chromium() {
    require_tools();
    let (m, ca_key) = line_mesh();
    let wwwdir = m.dir(0).join("web");
    std::fs::create_dir_all(&wwwdir).unwrap();
    // The session is made first; the page carries it as LuCI's dispatcher
    // does after login.
    let www_root = wwwdir.join("www");
    std::fs::create_dir_all(&www_root).unwrap();
    let r = router(&m, Some(www_root.clone()), vec![luci_base_standin()]);
    let sid = r.login();
    let www = www(&wwwdir, &sid);
    assert_eq!(www, www_root);

    // What the daemon says now; the page must show the same mesh.
    let neighbours = m.query(0, "neighbours");
    let n1 = neighbours["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node1")
        .unwrap_or_else(|| panic!("{neighbours}"))
        .clone();

    // The view renders its tables once its first load() is answered.
    let ready = ["weft-node", "weft-neighbours", "weft-routes", "weft-xroutes", "weft-nodes", "weft-tunnels"]
        .map(|id| format!("document.getElementById('{id}')"))
        .join(" && ");
    let shot = output_dir().join("status.png");
    let dom = browse(&m.net, 0, &wwwdir, "http://127.0.0.1/status.html", &ready, &shot);
    std::fs::write(output_dir().join("status.html"), &dom).unwrap();
    assert_no_errors(&dom);
    let nb = table(&dom, "weft-neighbours");
    assert!(nb.contains("node1"), "neighbour node1 missing:\n{nb}");
    assert!(nb.contains(n1["address"].as_str().unwrap()), "node1's address missing:\n{nb}");
    assert!(nb.contains(n1["interface"].as_str().unwrap()), "node1's tunnel missing:\n{nb}");
    assert!(nb.contains("cbi-progressbar"), "no link quality bar:\n{nb}");
    let routes = table(&dom, "weft-routes");
    for i in [1, 2] {
        assert!(routes.contains(&v4_prefix(i)), "route to {} missing:\n{routes}", v4_prefix(i));
    }
    assert!(table(&dom, "weft-xroutes").contains(&v4_prefix(0)));
    let nodes = table(&dom, "weft-nodes");
    for name in ["node0", "node1", "node2", "backbone"] {
        assert!(nodes.contains(name), "{name} missing from the nodes table:\n{nodes}");
    }
    assert!(table(&dom, "weft-tunnels").contains("node1"));
    let summary = table(&dom, "weft-node");
    assert!(summary.contains(m.status(0)["router_id"].as_str().unwrap()), "{summary}");

    // The configuration page: form.Map('weft') filled from /etc/config/weft
    // through rpcd's uci plugin.
    let shot = output_dir().join("config.png");
    let ready = "document.querySelector('.cbi-map .cbi-section')";
    let dom = browse(&m.net, 0, &wwwdir, "http://127.0.0.1/config.html", ready, &shot);
    std::fs::write(output_dir().join("config.html"), &dom).unwrap();
    assert_no_errors(&dom);
    assert!(dom.contains("cbi-map"), "no form rendered:\n{dom}");
    assert!(dom.contains(&ca_key), "the CA key from uci is not in the form");
    assert!(dom.contains(&m.net.dev(0, 1)), "the interface section is not in the form");
}

#[test]
fn menu_and_acl_files_are_what_luci_and_rpcd_read() {
    let menu: Value = serde_json::from_str(
        &std::fs::read_to_string(luci_app().join("root/usr/share/luci/menu.d/luci-app-weft.json")).unwrap(),
    )
    .expect("menu.d JSON");
    for (node, view) in [("admin/status/weft", "weft/status"), ("admin/network/weft", "weft/config")] {
        let n = &menu[node];
        assert_eq!(n["action"]["type"], "view", "{node}");
        assert_eq!(n["action"]["path"], view, "{node}");
        assert!(
            luci_app().join(format!("htdocs/luci-static/resources/view/{view}.js")).exists(),
            "{view}.js"
        );
        assert_eq!(n["depends"]["acl"], json!(["luci-app-weft"]), "{node}");
    }
    let acl: Value = serde_json::from_str(&acl_file()).expect("ACL JSON");
    let g = &acl["luci-app-weft"];
    assert_eq!(g["read"]["ubus"]["weft"], json!(["*"]));
    assert_eq!(g["read"]["uci"], json!(["weft"]));
    assert_eq!(g["write"]["uci"], json!(["weft"]));
}
