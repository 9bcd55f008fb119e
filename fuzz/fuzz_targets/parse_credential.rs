#![no_main]
// Owned by the trust work: arbitrary bytes as a binary credential, a binary
// revocation list, and (when UTF-8) their armoured text forms. Nothing may
// panic, and whatever parses must keep its exact bytes for forwarding.
use libfuzzer_sys::fuzz_target;
use weft::trust::{Credential, RevocationList, TrustStore};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Credential::from_bytes(data) {
        assert_eq!(c.to_bytes(), data);
        assert_eq!(Credential::from_armour(&c.to_armour()).as_ref(), Ok(&c));
        let _ = c.next_change(c.body().not_before);
        // An empty store refuses every credential, never panics.
        assert!(TrustStore::new().verify(&c, 0).is_err());
    }
    if let Ok(l) = RevocationList::from_bytes(data) {
        assert_eq!(l.to_bytes(), data);
        assert!(TrustStore::new().add_revocation_list(l).is_err());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = Credential::from_armour(text) {
            assert_eq!(Credential::from_bytes(c.to_bytes()).as_ref(), Ok(&c));
        }
        let _ = RevocationList::from_armour(text);
    }
});
