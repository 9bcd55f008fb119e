#![no_main]
// Owned by the trust work: parse arbitrary bytes as a credential.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
});
