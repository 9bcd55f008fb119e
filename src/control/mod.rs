//! The local control socket: its line protocol, the CLI client, and the
//! rendering of the daemon's JSON views as tables for people.
//!
//! Protocol: the client connects to the Unix socket, writes one request line
//! (`status`, `neighbours`, `routes`, `nodes`, `metrics`) and reads one JSON
//! document until the daemon closes the connection: `{"ok":true,"data":…}`
//! or `{"ok":false,"error":"…"}`. The same JSON is what `--json` prints, so
//! LuCI/rpcd and scripts see exactly what the tables are made from
//! (`metrics` answers with the Prometheus text as a JSON string).
//!
//! The CLI finds the socket as `-s` says, else as `control_socket` in the
//! configuration (`-c`, default /etc/config/weft) says, else at the default.

pub mod render;
pub mod rpcd;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

pub const DEFAULT_SOCKET: &str = "/var/run/weft.sock";

/// What a client may ask the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    Neighbours,
    Routes,
    Nodes,
    Metrics,
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        match line.trim() {
            "status" => Ok(Request::Status),
            "neighbours" | "neighbors" => Ok(Request::Neighbours),
            "routes" => Ok(Request::Routes),
            "nodes" => Ok(Request::Nodes),
            "metrics" => Ok(Request::Metrics),
            other => Err(format!("unknown request {other:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Neighbours => "neighbours",
            Request::Routes => "routes",
            Request::Nodes => "nodes",
            Request::Metrics => "metrics",
        }
    }
}

/// Wraps a view for the wire.
pub fn reply_ok(data: Value) -> String {
    serde_json::json!({ "ok": true, "data": data }).to_string()
}

pub fn reply_err(msg: &str) -> String {
    serde_json::json!({ "ok": false, "error": msg }).to_string()
}

/// Sends one request and returns the daemon's `data`.
pub fn query(socket: &Path, req: Request) -> Result<Value, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the weft daemon at {}: {e} (is it running? -s selects another socket)",
            socket.display()
        )
    })?;
    let timeout = Some(Duration::from_secs(5));
    s.set_read_timeout(timeout).and_then(|_| s.set_write_timeout(timeout)).map_err(|e| e.to_string())?;
    s.write_all(format!("{}\n", req.as_str()).as_bytes()).map_err(|e| format!("sending request: {e}"))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| format!("reading reply: {e}"))?;
    let v: Value = serde_json::from_str(&buf).map_err(|e| format!("daemon sent an unreadable reply: {e}"))?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    } else {
        Err(v.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_string())
    }
}

/// The control socket the configuration file at `path` names: `Ok(None)`
/// when the file or the option is absent. Only the file's syntax matters:
/// a running daemon must stay reachable while its file has a mistake that
/// `weft check-config` would refuse.
pub fn socket_from_config(path: &Path) -> Result<Option<PathBuf>, String> {
    let text = match std::fs::read(path) {
        Ok(b) if b.len() > crate::config::MAX_FILE_SIZE => return Err("file too large".into()),
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let (doc, _) =
        crate::config::uci::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
    let value = doc.sections_of("weft").next().and_then(|s| s.option("control_socket")).map(|o| &o.value);
    match value {
        Some(crate::config::uci::UciValue::Single(v)) if v.starts_with('/') => Ok(Some(PathBuf::from(v))),
        Some(_) => Err("control_socket is not an absolute path".into()),
        None => Ok(None),
    }
}

/// `-s SOCKET` if given, else the configuration's `control_socket` (a
/// missing default file is no error; one named with `-c` must exist), else
/// the default.
fn resolve_socket(socket: Option<String>, config: Option<String>) -> Result<PathBuf, String> {
    if let Some(s) = socket {
        return Ok(PathBuf::from(s));
    }
    let (path, explicit) = match &config {
        Some(c) => (Path::new(c.as_str()), true),
        None => (Path::new(crate::config::DEFAULT_PATH), false),
    };
    match socket_from_config(path) {
        Ok(Some(s)) => Ok(s),
        Ok(None) if explicit && !path.exists() => Err(format!("{}: no such file", path.display())),
        Ok(None) => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Err(e) if explicit => Err(format!("{}: {e}", path.display())),
        Err(e) => {
            eprintln!("weft: ignoring {}: {e}; using {DEFAULT_SOCKET}", path.display());
            Ok(PathBuf::from(DEFAULT_SOCKET))
        }
    }
}

fn cli_usage(req: Request) -> String {
    let json = if req == Request::Metrics { "" } else { " [--json]" };
    format!(
        "usage: weft {}{json} [-s SOCKET] [-c FILE]\n  \
         -s SOCKET  the daemon's control socket (default: control_socket in FILE, else {DEFAULT_SOCKET})\n  \
         -c FILE    the configuration that names the socket (default {})",
        req.as_str(),
        crate::config::DEFAULT_PATH
    )
}

/// `weft status|neighbours|routes|nodes [--json]`, `weft metrics`; both
/// take `-s SOCKET` and `-c FILE`.
pub fn run_cli(req: Request, args: &[String]) -> ExitCode {
    let mut json = false;
    let (mut socket, mut config) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" | "-j" if req != Request::Metrics => json = true,
            "-h" | "--help" => {
                println!("{}", cli_usage(req));
                return ExitCode::SUCCESS;
            }
            "-s" | "--socket" | "-c" | "--config" => {
                let Some(p) = it.next() else {
                    eprintln!("weft {}: {a} needs a path\n{}", req.as_str(), cli_usage(req));
                    return ExitCode::from(2);
                };
                let slot = if matches!(a.as_str(), "-s" | "--socket") { &mut socket } else { &mut config };
                *slot = Some(p.clone());
            }
            other => {
                eprintln!("weft {}: unknown option {other:?}\n{}", req.as_str(), cli_usage(req));
                return ExitCode::from(2);
            }
        }
    }
    let socket = match resolve_socket(socket, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weft {}: {e}", req.as_str());
            return ExitCode::from(1);
        }
    };
    match query(&socket, req) {
        Ok(v) if json => {
            println!("{}", serde_json::to_string_pretty(&v).expect("serialisable"));
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", render::render(req, &v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weft {}: {e}", req.as_str());
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_round_trip() {
        for r in [Request::Status, Request::Neighbours, Request::Routes, Request::Nodes, Request::Metrics] {
            assert_eq!(Request::parse(r.as_str()), Ok(r));
        }
        assert_eq!(Request::parse("neighbors\n"), Ok(Request::Neighbours));
        assert!(Request::parse("reboot").is_err());
    }

    #[test]
    fn query_reports_a_missing_daemon_clearly() {
        let e = query(Path::new("/nonexistent/weft.sock"), Request::Status).unwrap_err();
        assert!(e.contains("cannot reach the weft daemon"), "{e}");
    }

    #[test]
    fn the_socket_comes_from_s_then_the_configuration_then_the_default() {
        let dir = std::env::temp_dir().join(format!("weft-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("weft");
        let s = |p: &str| p.to_string();
        std::fs::write(&conf, "config weft 'main'\n\toption control_socket '/run/x.sock'\n").unwrap();
        let c = Some(conf.display().to_string());
        assert_eq!(resolve_socket(Some(s("/a.sock")), c.clone()), Ok(PathBuf::from("/a.sock")));
        assert_eq!(resolve_socket(None, c.clone()), Ok(PathBuf::from("/run/x.sock")));
        // Semantic mistakes elsewhere do not hide the socket.
        std::fs::write(&conf, "config weft 'main'\n\toption protocol '42'\n\toption control_socket '/y'\n")
            .unwrap();
        assert_eq!(resolve_socket(None, c.clone()), Ok(PathBuf::from("/y")));
        std::fs::write(&conf, "config weft 'main'\n\toption log_level 'info'\n").unwrap();
        assert_eq!(resolve_socket(None, c.clone()), Ok(PathBuf::from(DEFAULT_SOCKET)));
        std::fs::write(&conf, "config weft 'main'\n\toption control_socket 'relative'\n").unwrap();
        assert!(resolve_socket(None, c.clone()).unwrap_err().contains("absolute"));
        std::fs::write(&conf, "config weft 'main\n").unwrap();
        assert!(resolve_socket(None, c.clone()).is_err(), "a syntax error in a file named with -c");
        let missing = Some(dir.join("absent").display().to_string());
        assert!(resolve_socket(None, missing).unwrap_err().contains("no such file"));
        assert_eq!(socket_from_config(&dir.join("absent")), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
