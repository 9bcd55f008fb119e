#![no_main]
// Decode arbitrary bytes as a Babel datagram; re-encode what was read
// (messages with their sub-TLVs); decode that again and require the same
// messages and sub-TLVs, with no error.
use libfuzzer_sys::fuzz_target;
use weft::babel::packet::{decode, encode_messages, Message, SubTlv};
use weft::babel::RouterId;

/// A retraction's router-id is informational and cannot always be
/// expressed again (e.g. after a malformed Router-Id TLV): compare without.
fn canonical(mut msgs: Vec<Message>) -> Vec<Message> {
    for m in &mut msgs {
        if let Message::Update(u) = m {
            if u.is_retraction() {
                u.router_id = RouterId::default();
            }
        }
    }
    msgs
}

fuzz_target!(|data: &[u8]| {
    let Ok(d) = decode(data) else { return };
    for e in &d.errors {
        assert!(e.offset >= 4 && e.offset < data.len());
    }
    let mut items: Vec<(Message, Vec<SubTlv>)> =
        d.messages.into_iter().map(|m| (m, Vec::new())).collect();
    for (i, s) in d.sub_tlvs {
        items[i].1.push(s);
    }
    // A TLV can grow when re-encoded (a compressed prefix sent in full, an
    // AE 3 prefix sent as AE 2) and no longer fit in 255 bytes with its
    // sub-TLVs: such messages are left out.
    items.retain(|it| encode_messages(std::slice::from_ref(it), 1500).is_ok());
    let packets = encode_messages(&items, 1500).expect("each message fits alone");
    let mut msgs = Vec::new();
    let mut subs = Vec::new();
    for p in &packets {
        assert!(p.len() <= 1500);
        let d2 = decode(p).expect("our packet has a good header");
        assert!(d2.errors.is_empty(), "{:?}", d2.errors);
        let base = msgs.len();
        subs.extend(d2.sub_tlvs.into_iter().map(|(i, s)| (base + i, s)));
        msgs.extend(d2.messages);
    }
    let want_subs: Vec<(usize, SubTlv)> = items
        .iter()
        .enumerate()
        .flat_map(|(i, (_, ss))| ss.iter().map(move |s| (i, s.clone())))
        .collect();
    let want: Vec<Message> = items.into_iter().map(|(m, _)| m).collect();
    assert_eq!(canonical(msgs), canonical(want));
    assert_eq!(subs, want_subs);
});
