//! The local control socket: its line protocol, the CLI client, and the
//! rendering of the daemon's JSON views as tables for people.
//!
//! Protocol: the client connects to the Unix socket, writes one request line
//! (`status`, `neighbours`, `routes`, `nodes`) and reads one JSON document
//! until the daemon closes the connection: `{"ok":true,"data":…}` or
//! `{"ok":false,"error":"…"}`. The same JSON is what `--json` prints, so
//! LuCI/rpcd and scripts see exactly what the tables are made from.

pub mod render;
pub mod rpcd;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
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
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        match line.trim() {
            "status" => Ok(Request::Status),
            "neighbours" | "neighbors" => Ok(Request::Neighbours),
            "routes" => Ok(Request::Routes),
            "nodes" => Ok(Request::Nodes),
            other => Err(format!("unknown request {other:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Neighbours => "neighbours",
            Request::Routes => "routes",
            Request::Nodes => "nodes",
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

/// `weft status|neighbours|routes|nodes [--json] [-s PATH]`.
pub fn run_cli(req: Request, args: &[String]) -> ExitCode {
    let mut json = false;
    let mut socket = DEFAULT_SOCKET.to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" | "-j" => json = true,
            "-h" | "--help" => {
                println!(
                    "usage: weft {} [--json] [-s SOCKET]  (default socket {DEFAULT_SOCKET})",
                    req.as_str()
                );
                return ExitCode::SUCCESS;
            }
            "-s" | "--socket" => match it.next() {
                Some(p) => socket = p.clone(),
                None => {
                    eprintln!("weft {}: {a} needs a path", req.as_str());
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!(
                    "weft {}: unknown option {other:?}\nusage: weft {} [--json] [-s SOCKET]",
                    req.as_str(),
                    req.as_str()
                );
                return ExitCode::from(2);
            }
        }
    }
    match query(Path::new(&socket), req) {
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
        for r in [Request::Status, Request::Neighbours, Request::Routes, Request::Nodes] {
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
}
