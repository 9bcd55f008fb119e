//! The one weft binary: daemon, CLI views, key and credential tools.

use std::process::ExitCode;

const USAGE: &str = "usage: weft <command> [options]

commands:
  --version             print the version
  help                  this text
  genkey | pubkey       WireGuard private key / its public key (stdin)
  ca init|sign|revoke   network CA: create, issue credentials, revoke keys
  cert show FILE        show a credential or revocation list
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("version") => {
            println!("weft {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("help") | Some("--help") | Some("-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
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
