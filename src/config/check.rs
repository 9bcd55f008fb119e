//! `weft check-config [-c FILE]`: validate a configuration without applying
//! it (the init script runs it before a reload).
//!
//! Exit status: 0 valid (a one-line summary on stdout, warnings on
//! stderr), 1 invalid (`FILE:LINE: ...` on stderr), 2 usage error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{load, Config, DEFAULT_PATH};

const USAGE: &str = "usage: weft check-config [-c FILE]

Checks a weft UCI configuration (default /etc/config/weft) and prints a
summary. Exit status: 0 valid, 1 invalid, 2 usage error.

  -c, --config FILE   the file to check
  -h, --help          this text
";

/// Entry point of the subcommand; `args` are the arguments after
/// `check-config`.
pub fn run(args: &[String]) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    ExitCode::from(run_with(args, &mut stdout.lock(), &mut stderr.lock()))
}

/// [`run`] with its output streams given, for tests. Returns the exit code.
pub fn run_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    // Output errors (a closed pipe) cannot be reported anywhere useful.
    let path = match parse_args(args) {
        Ok(Some(p)) => p,
        Ok(None) => {
            let _ = out.write_all(USAGE.as_bytes());
            return 0;
        }
        Err(msg) => {
            let _ = write!(err, "weft check-config: {msg}\n{USAGE}");
            return 2;
        }
    };
    match load(&path) {
        Ok((config, warnings)) => {
            for w in &warnings {
                let _ = writeln!(err, "{w}");
            }
            let _ = writeln!(
                out,
                "{}: valid: {}{}",
                path.display(),
                summary(&config),
                match warnings.len() {
                    0 => String::new(),
                    1 => " (1 warning)".into(),
                    n => format!(" ({n} warnings)"),
                }
            );
            0
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            1
        }
    }
}

/// `Ok(None)`: help was asked for.
fn parse_args(args: &[String]) -> Result<Option<PathBuf>, String> {
    let mut path: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "-c" | "--config" => it.next().ok_or_else(|| format!("{a} needs a file name"))?.as_str(),
            s if s.starts_with("--config=") => &s["--config=".len()..],
            s => return Err(format!("unexpected argument {s:?}")),
        };
        if value.is_empty() {
            return Err(format!("{a}: empty file name"));
        }
        if path.replace(PathBuf::from(value)).is_some() {
            return Err("-c given more than once".into());
        }
    }
    Ok(Some(path.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One line saying what the configuration will do.
pub fn summary(c: &Config) -> String {
    let ifaces = c.interfaces.iter().filter(|i| i.enabled).count();
    let wg = c.interfaces.iter().filter(|i| i.enabled && i.wireguard).count();
    let announces = c.announces.iter().filter(|a| a.enabled).count();
    let peers = c.peers.iter().filter(|p| p.enabled).count();
    let trust = match (c.trust.ca_public_keys.len(), c.trust.trusted_keys.len()) {
        (0, 0) => "no trust material".to_string(),
        (ca, 0) => plural(ca, "CA key", "CA keys"),
        (0, t) => plural(t, "trusted key", "trusted keys"),
        (ca, t) => {
            format!("{}, {}", plural(ca, "CA key", "CA keys"), plural(t, "trusted key", "trusted keys"))
        }
    };
    format!(
        "{}{} ({wg} with WireGuard), {}, {}, {trust}",
        if c.main.enabled { "" } else { "disabled, " },
        plural(ifaces, "interface", "interfaces"),
        plural(announces, "announce", "announces"),
        plural(peers, "peer", "peers"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args(&[]), Ok(Some(PathBuf::from(DEFAULT_PATH))));
        assert_eq!(parse_args(&args(&["-c", "/x"])), Ok(Some(PathBuf::from("/x"))));
        assert_eq!(parse_args(&args(&["--config=/y"])), Ok(Some(PathBuf::from("/y"))));
        assert_eq!(parse_args(&args(&["--help"])), Ok(None));
        assert!(parse_args(&args(&["-c"])).is_err());
        assert!(parse_args(&args(&["-c", ""])).is_err());
        assert!(parse_args(&args(&["-c", "a", "-c", "b"])).is_err());
        assert!(parse_args(&args(&["-x"])).is_err());
        assert!(parse_args(&args(&["file"])).is_err());
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run_with(&args(&["--bogus"]), &mut out, &mut err), 2);
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("unexpected argument \"--bogus\""), "{err}");
        assert!(err.contains("usage: weft check-config"), "{err}");

        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run_with(&args(&["-h"]), &mut out, &mut err), 0);
        assert!(String::from_utf8(out).unwrap().starts_with("usage:"));
        assert!(err.is_empty());
    }

    #[test]
    fn summary_counts_enabled_things() {
        let (c, _) = super::super::parse_str(
            "config weft 'main'\n list trusted_key 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo='\n\
             config interface\n option ifname a\n\
             config interface\n option ifname b\n option wireguard 0\n\
             config interface\n option ifname c\n option enabled 0\n\
             config announce\n option prefix 10.0.0.0/8\n",
            "t",
        )
        .unwrap();
        assert_eq!(summary(&c), "2 interfaces (1 with WireGuard), 1 announce, 0 peers, 1 trusted key");
    }
}
