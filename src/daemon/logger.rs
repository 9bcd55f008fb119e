//! Logging to stderr (procd hands it to logd), with the level from the
//! configuration. A tiny `log::Log` implementation: a logging framework
//! would cost flash for features a router does not use.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

static LEVEL: AtomicUsize = AtomicUsize::new(3); // info

fn to_num(l: LevelFilter) -> usize {
    l as usize
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        (m.level() as usize) <= LEVEL.load(Ordering::Relaxed)
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // Dependencies (netlink crates) only get to speak at warn and above.
        if !r.target().starts_with("weft") && r.level() > Level::Warn {
            return;
        }
        let tag = match r.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        // One write per line: stderr is unbuffered, and a line written in
        // pieces can interleave or be read half-written by procd's logd.
        let line = format!("weft[{tag}]: {}\n", r.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Parses a configured level name.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// Installs the logger (once) and sets the level (any time, e.g. on reload).
pub fn init(level: LevelFilter) {
    LEVEL.store(to_num(level), Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Changes the level by its configured name (on reload); unknown names are
/// ignored (the configuration parser already refused them).
pub fn set_level(name: &str) {
    if let Some(l) = parse_level(name) {
        init(l);
    }
}
