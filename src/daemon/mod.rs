//! The daemon: the one event loop that wires the pure engine to the edges
//! (sockets, netlink, WireGuard, control socket, signals).

pub mod e2e;
pub mod forwarding;
pub mod ifaces;
pub mod kernel_routes;
pub mod kernel_switches;
pub mod logger;
pub mod mesh_runtime;
pub mod policy;
pub mod publish;
pub mod runner;
pub mod state_file;
pub mod views;

use std::path::PathBuf;
use std::process::ExitCode;

use log::{error, warn};

use crate::kernel::{RtnlFib, RtnlMonitor};
use crate::net::BabelSocket;
pub use runner::Daemon;

/// When this binary was built (Unix seconds; `SOURCE_DATE_EPOCH` if the
/// build set it): the time is at least that, whatever the clock says.
pub fn build_time() -> u64 {
    env!("WEFT_BUILD_TIME").parse().unwrap_or(0)
}

const USAGE: &str = "usage: weft daemon [-c FILE]   (default /etc/config/weft)";

/// `weft daemon [-c FILE]`: runs in the foreground (procd supervises it),
/// logging to stderr.
pub fn run(args: &[String]) -> ExitCode {
    let mut path = PathBuf::from(crate::config::DEFAULT_PATH);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => match it.next() {
                Some(p) => path = PathBuf::from(p),
                None => {
                    eprintln!("weft daemon: -c needs a file\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("weft daemon: unknown option {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (cfg, warnings) = match crate::config::load(&path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("weft daemon: {e}");
            return ExitCode::from(1);
        }
    };
    logger::init(logger::parse_level(cfg.main.log_level.as_str()).unwrap_or(log::LevelFilter::Info));
    for w in warnings {
        warn!("{w}");
    }
    if !cfg.main.enabled {
        log::info!("disabled in {} (option enabled '0'): not starting", path.display());
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        let mesh_wanted =
            cfg.trust.has_trust_material() || cfg.interfaces.iter().any(|i| i.enabled && i.wireguard);
        let mesh = if mesh_wanted {
            let id = mesh_runtime::load_identity(&cfg)?;
            let store = mesh_runtime::build_store(&cfg)?;
            log::info!("identity: public key {}, router-id {}", id.public, id.router_id);
            let floor = state_file::load_time_floor(&cfg.main.state_file).unwrap_or(0).max(build_time());
            Some(mesh_runtime::MeshRuntime::start(&cfg, id, store, floor, crate::babel::Time(0)).await?)
        } else {
            None
        };
        let fixed_rid = mesh.as_ref().map(|m| m.core.identity().router_id);
        let state = runner::initial_state(&cfg.main.state_file, fixed_rid);
        let monitor = RtnlMonitor::open()?;
        let sock = BabelSocket::open(cfg.main.babel_port)?;
        let daemon = Daemon::new(
            path,
            cfg,
            state,
            Box::new(RtnlFib::open),
            monitor,
            sock,
            ifaces::sysfs_is_wireless,
            mesh,
        )?;
        daemon.run(true, Box::pin(std::future::pending())).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(1)
        }
    }
}
