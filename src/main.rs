//! The one weft binary: daemon, CLI views, key and credential tools.

use std::process::ExitCode;

const USAGE: &str = "usage: weft <command> [options]

commands:
  --version             print the version
  check-config [-c FILE]
                        validate a configuration (default /etc/config/weft)
  help                  this text; every command takes --help (-h)
  daemon [-c FILE]      run the routing daemon (foreground; procd supervises it)
  status [--json]       the running daemon's state
  neighbours [--json]   neighbours with their link costs
  routes [--json]       learned routes, selected and installed
  nodes [--json]        every known node and its credential
  rpcd list|call METHOD
                        the rpcd exec plugin behind `ubus call weft`
  metrics               Prometheus metrics of the running daemon
                        (the views take -s SOCKET, or -c FILE whose
                        control_socket names it; default /etc/config/weft)
  simulate FILE ...     run a topology in the deterministic simulator
                        (host builds only: router packages leave it out)
  genkey | pubkey       WireGuard private key / its public key (stdin)
  ca init|sign|revoke   network CA: create, issue credentials, revoke keys
  cert show FILE        show a credential or revocation list
";

fn main() -> ExitCode {
    let mut argv = std::env::args();
    // rpcd runs /usr/libexec/rpcd/weft, a symlink to this binary.
    if argv.next().is_some_and(|a| weft::control::rpcd::invoked_as_plugin(&a)) {
        return weft::control::rpcd::run(&argv.collect::<Vec<_>>());
    }
    let args: Vec<String> = argv.collect();
    if args.first().is_some_and(|a| a != "daemon") {
        // A command's reader may stop early (`weft routes | head`): end
        // quietly as other tools do, not with a panic on the broken pipe.
        // The daemon keeps Rust's default (EPIPE as an error on its sockets).
        // SAFETY: before any thread exists; SIG_DFL is a valid disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match args.first().map(String::as_str) {
        Some("--version") | Some("version") => {
            if args[1..].iter().any(|a| a == "-h" || a == "--help") {
                println!("usage: weft --version   print the version (also: weft version)");
                return ExitCode::SUCCESS;
            }
            println!("weft {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("check-config") => weft::config::check::run(&args[1..]),
        Some("help") | Some("--help") | Some("-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("daemon") => weft::daemon::run(&args[1..]),
        Some("status") => weft::control::run_cli(weft::control::Request::Status, &args[1..]),
        Some("neighbours") | Some("neighbors") => {
            weft::control::run_cli(weft::control::Request::Neighbours, &args[1..])
        }
        Some("routes") => weft::control::run_cli(weft::control::Request::Routes, &args[1..]),
        Some("nodes") => weft::control::run_cli(weft::control::Request::Nodes, &args[1..]),
        Some("rpcd") => weft::control::rpcd::run(&args[1..]),
        Some("metrics") => weft::control::run_cli(weft::control::Request::Metrics, &args[1..]),
        #[cfg(feature = "simulator")]
        Some("simulate") => weft::sim::report::run(&args[1..]),
        #[cfg(not(feature = "simulator"))]
        Some("simulate") => {
            eprintln!(
                "weft: this build has no simulator (a router build; built without the 'simulator' feature)"
            );
            ExitCode::from(2)
        }
        Some("genkey") | Some("pubkey") | Some("ca") | Some("cert") => weft::trust::cli::run(&args),
        Some(other) => {
            eprintln!("weft: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
