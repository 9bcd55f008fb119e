//! Records when the binary was built, for the mesh core's time floor (a
//! router whose clock reads 1970 still knows the time is at least this).
//! `SOURCE_DATE_EPOCH` wins when set (reproducible builds, the OpenWrt SDK).

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    println!("cargo:rustc-env=WEFT_BUILD_TIME={t}");
}
