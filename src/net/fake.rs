//! [`FakeBabelSocket`]: an in-memory [`BabelIo`] for tests. A test feeds it
//! datagrams and reads what was sent through a [`FakeBabelHandle`]; received
//! datagrams go through the same checks as on the real socket.

use std::cell::Cell;
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::babel_socket::{
    check_datagram, count, destination, BabelIo, Dest, RecvMeta, SocketStats, Verdict, BABEL_PORT,
};

/// A datagram the fake was asked to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentDatagram {
    pub ifindex: u32,
    pub dest: Dest,
    pub data: Vec<u8>,
}

/// A datagram to hand to the fake, as the kernel would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingDatagram {
    pub ifindex: u32,
    pub source: SocketAddrV6,
    pub destination: Ipv6Addr,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    inbox: Mutex<VecDeque<IncomingDatagram>>,
    arrived: Notify,
    sent: Mutex<Vec<SentDatagram>>,
}

pub struct FakeBabelSocket {
    shared: Arc<Shared>,
    joined: BTreeSet<u32>,
    stats: Cell<SocketStats>,
    /// Interfaces on which join fails with ENODEV (an interface that vanished).
    pub missing_interfaces: BTreeSet<u32>,
}

#[derive(Clone)]
pub struct FakeBabelHandle {
    shared: Arc<Shared>,
}

impl FakeBabelSocket {
    pub fn new() -> (FakeBabelSocket, FakeBabelHandle) {
        let shared = Arc::new(Shared::default());
        (
            FakeBabelSocket {
                shared: shared.clone(),
                joined: BTreeSet::new(),
                stats: Cell::new(SocketStats::default()),
                missing_interfaces: BTreeSet::new(),
            },
            FakeBabelHandle { shared },
        )
    }
}

impl FakeBabelHandle {
    pub fn deliver(&self, d: IncomingDatagram) {
        self.shared.inbox.lock().expect("fake inbox").push_back(d);
        self.shared.arrived.notify_one();
    }

    /// Everything sent so far, oldest first, emptying the record.
    pub fn take_sent(&self) -> Vec<SentDatagram> {
        std::mem::take(&mut *self.shared.sent.lock().expect("fake sent"))
    }
}

impl BabelIo for FakeBabelSocket {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        loop {
            let next = self.shared.inbox.lock().expect("fake inbox").pop_front();
            let Some(d) = next else {
                // notify_one stores a permit when nobody waits: no lost wakeup.
                self.shared.arrived.notified().await;
                continue;
            };
            if d.data.len() > buf.len() {
                let mut s = self.stats.get();
                s.dropped_truncated += 1;
                self.stats.set(s);
                continue;
            }
            let v = check_datagram(&d.source, d.ifindex, BABEL_PORT, &self.joined);
            count(&self.stats, v);
            if v == Verdict::Accept {
                buf[..d.data.len()].copy_from_slice(&d.data);
                return Ok(RecvMeta {
                    len: d.data.len(),
                    ifindex: d.ifindex,
                    source: *d.source.ip(),
                    destination: d.destination,
                });
            }
        }
    }

    async fn send(&self, ifindex: u32, dest: Dest, data: &[u8]) -> io::Result<()> {
        destination(ifindex, dest, BABEL_PORT)?;
        self.shared.sent.lock().expect("fake sent").push(SentDatagram { ifindex, dest, data: data.to_vec() });
        let mut s = self.stats.get();
        s.sent += 1;
        self.stats.set(s);
        Ok(())
    }

    fn join(&mut self, ifindex: u32) -> io::Result<()> {
        if self.missing_interfaces.contains(&ifindex) {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        self.joined.insert(ifindex);
        Ok(())
    }

    fn leave(&mut self, ifindex: u32) -> io::Result<()> {
        self.joined.remove(&ifindex);
        Ok(())
    }

    fn joined(&self) -> &BTreeSet<u32> {
        &self.joined
    }

    fn stats(&self) -> SocketStats {
        self.stats.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::BABEL_GROUP;

    #[test]
    fn fake_filters_like_the_real_socket_and_records_sends() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (mut s, h) = FakeBabelSocket::new();
            s.join(2).unwrap();
            s.missing_interfaces.insert(9);
            assert!(s.join(9).is_err());
            let from = |a: &str, port| SocketAddrV6::new(a.parse().unwrap(), port, 0, 2);
            for (src, ifindex) in [
                (from("2001:db8::1", BABEL_PORT), 2),
                (from("fe80::1", 4000), 2),
                (from("fe80::1", BABEL_PORT), 3),
                (from("fe80::1", BABEL_PORT), 2),
            ] {
                h.deliver(IncomingDatagram {
                    ifindex,
                    source: src,
                    destination: BABEL_GROUP,
                    data: vec![42, 2, 0, 0],
                });
            }
            let mut buf = [0u8; 100];
            let m = s.recv(&mut buf).await.unwrap();
            assert_eq!((m.len, m.ifindex, m.is_multicast()), (4, 2, true));
            assert_eq!(&buf[..4], &[42, 2, 0, 0]);
            let st = s.stats();
            assert_eq!(
                (st.received, st.dropped_not_link_local, st.dropped_bad_port, st.dropped_not_joined),
                (1, 1, 1, 1)
            );
            s.send(2, Dest::Multicast, b"hello").await.unwrap();
            assert!(s.send(2, Dest::Unicast("2001:db8::1".parse().unwrap()), b"x").await.is_err());
            assert_eq!(
                h.take_sent(),
                vec![SentDatagram { ifindex: 2, dest: Dest::Multicast, data: b"hello".to_vec() }]
            );
        })
    }
}
