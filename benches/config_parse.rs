//! Cost of reading and diffing a full configuration (the commented fixture
//! with every option), i.e. of `weft check-config` and of a reload.
//! Run: `cargo bench --bench config_parse`.

use std::hint::black_box;
use std::time::Instant;

const FIXTURE: &str = include_str!("../tests/data/weft.config");

fn main() {
    // `cargo bench` passes --bench; under `cargo test --all-targets` this
    // runs as a quick smoke test instead.
    let measuring = std::env::args().any(|a| a == "--bench");
    let rounds: u32 = if measuring { 20_000 } else { 10 };
    let start = Instant::now();
    for _ in 0..rounds {
        let parsed = weft::config::parse_str(black_box(FIXTURE), "weft.config");
        black_box(parsed.expect("fixture parses"));
    }
    let parse = start.elapsed() / rounds;

    let (config, _) = weft::config::parse_str(FIXTURE, "weft.config").expect("fixture parses");
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(weft::config::diff(black_box(&config), black_box(&config)));
    }
    let diff = start.elapsed() / rounds;

    println!(
        "config_parse: fixture of {} bytes: parse_str {:.1} us, diff {:.2} us (mean of {rounds})",
        FIXTURE.len(),
        parse.as_secs_f64() * 1e6,
        diff.as_secs_f64() * 1e6
    );
}
