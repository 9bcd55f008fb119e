//! UCI configuration: our own strict parser, the typed configuration, and
//! its validation.
//!
//! `/etc/config/weft` is read in two steps, both pure: [`uci::parse`]
//! turns text into sections and options exactly as libuci would, and
//! [`schema`] turns those into a typed [`Config`] with effective values,
//! refusing wrong values with `FILE:LINE: option 'NAME': expected ...`.
//! Unknown options and section types are warnings, so a file written for a
//! newer weft still loads. [`diff`] says what a reload changes.

// A ConfigError carries the file, line, option, value and expectation so
// that one message says everything; at most one is built per refused file,
// so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

pub mod check;
pub mod diff;
pub mod error;
pub mod schema;
pub mod uci;
pub mod value;

use std::io::Read;
use std::path::Path;

pub use diff::{diff, Changed, Changes, ConfigDiff};
pub use error::{ConfigError, ErrorKind, Warning};
pub use schema::{
    AnnounceConfig, Config, InterfaceConfig, InterfaceType, LinkParams, LogLevel, MainConfig, PeerConfig,
    TrustConfig, WireguardBackend,
};
pub use value::{Endpoint, Host, PublicKey};

/// Where OpenWrt keeps weft's configuration.
pub const DEFAULT_PATH: &str = "/etc/config/weft";

/// Larger files are refused unread: a configuration is a few kilobytes,
/// and `-c /dev/zero` must not eat the router's memory.
pub const MAX_FILE_SIZE: usize = 1 << 20;

/// Parses configuration text. `file_name` only names the source in
/// messages. Pure: no file is read, keys are checked only for their form.
pub fn parse_str(text: &str, file_name: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
    let (doc, mut warnings) = uci::parse(text, file_name)?;
    let config = schema::from_document(&doc, file_name, &mut warnings)?;
    Ok((config, warnings))
}

/// Reads and parses a configuration file.
pub fn load(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    let name = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_SIZE as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| ConfigError::whole_file(&name, ErrorKind::Io(e.to_string())))?;
    if bytes.len() > MAX_FILE_SIZE {
        return Err(ConfigError::whole_file(&name, ErrorKind::TooLarge { limit: MAX_FILE_SIZE }));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        // Name the line of the first bad byte.
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigError::at(&name, line, ErrorKind::NotUtf8)
    })?;
    parse_str(&text, &name)
}
