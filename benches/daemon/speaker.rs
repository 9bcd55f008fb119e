//! A scripted Babel neighbour, built on weft's codec, that announces a
//! large table on command. It isolates the measured daemon: unlike a real
//! daemon as announcer, it spends no time reading its own kernel table and
//! sends the whole dump back to back at a known instant, as babeld sends a
//! full dump.
//!
//! It says Hello every second with an IHU (rxcost 96) for the measured
//! node, announces its loopback /128 with every Hello (so the measured
//! daemon's route to it shows the link is up), and, once told to, sends a
//! full dump of its table every 4 s (the update interval it announces).

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use weft::babel::packet::{Message, PacketBuilder, Update};
use weft::babel::{Centisecs, Metric, Prefix, RouterId, SeqNo};

const GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6);
const ROUTER_ID: RouterId = RouterId([2, 0, 0, 0, 0, 0, 0x77, 0x77]);
/// Payload of a 1500-byte link minus IPv6 and UDP headers.
const MAX_LEN: usize = 1452;
const UPDATE_INTERVAL: Duration = Duration::from_secs(4);

pub struct Speaker {
    sock: Arc<UdpSocket>,
    to: SocketAddr,
    dump: Arc<Vec<Vec<u8>>>,
    dumping: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn packets(msgs: &[Message]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = PacketBuilder::new(MAX_LEN);
    for m in msgs {
        if !b.push(m) {
            out.push(b.take());
            assert!(b.push(m), "message does not fit an empty packet");
        }
    }
    if !b.is_empty() {
        out.push(b.take());
    }
    out
}

fn update(prefix: Prefix) -> Message {
    Message::Update(Update {
        prefix,
        router_id: ROUTER_ID,
        next_hop: None,
        v4_via_v6: prefix.is_ipv4(),
        seqno: SeqNo(1),
        metric: Metric(0),
        interval: Centisecs::from_millis(UPDATE_INTERVAL.as_millis() as u64),
    })
}

impl Speaker {
    /// Starts speaking on interface `ifindex` of namespace `ns` (its name
    /// under /run/netns), to the neighbour whose link-local is `peer`;
    /// `own` is the /128 announced with every Hello, `table` the dump.
    pub fn start(
        ns: &str,
        ifindex: u32,
        peer: Ipv6Addr,
        own: Prefix,
        table: &[Prefix],
    ) -> io::Result<Speaker> {
        let nsfile = std::fs::File::open(format!("/run/netns/{ns}"))?;
        let sock = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<UdpSocket> {
                setns(&nsfile, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)?;
                s.set_only_v6(true)?;
                s.set_multicast_hops_v6(1)?;
                s.set_unicast_hops_v6(1)?;
                s.set_multicast_loop_v6(false)?;
                s.set_multicast_if_v6(ifindex)?;
                s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 6696, 0, 0)).into())?;
                s.join_multicast_v6(&GROUP, ifindex)?;
                Ok(s.into())
            })
            .join()
            .map_err(|_| io::Error::other("speaker thread panicked"))?
        })?;
        let sock = Arc::new(sock);
        let to = SocketAddr::V6(SocketAddrV6::new(GROUP, 6696, 0, ifindex));
        let msgs: Vec<Message> = table.iter().map(|p| update(*p)).collect();
        let dump = Arc::new(packets(&msgs));
        let dumping = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (sock, dump, dumping, stop) = (sock.clone(), dump.clone(), dumping.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seqno = SeqNo(1);
                let mut next_hello = Instant::now();
                let mut next_dump: Option<Instant> = None;
                let mut buf = [0u8; 2048];
                sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    // Drain what the neighbour sends (its requests are not
                    // answered: the dump comes when the benchmark says).
                    let _ = sock.recv_from(&mut buf);
                    let now = Instant::now();
                    if now >= next_hello {
                        seqno = seqno.next();
                        let hello = packets(&[
                            Message::Hello { unicast: false, seqno, interval: Centisecs(100) },
                            Message::Ihu {
                                rxcost: Metric(96),
                                interval: Centisecs(300),
                                address: Some(IpAddr::V6(peer)),
                            },
                            update(own),
                        ]);
                        for p in &hello {
                            let _ = sock.send_to(p, to);
                        }
                        next_hello = now + Duration::from_secs(1);
                    }
                    if !dumping.load(Ordering::Relaxed) {
                        next_dump = None;
                    } else if let Some(t) = next_dump {
                        if now >= t {
                            for p in dump.iter() {
                                let _ = sock.send_to(p, to);
                            }
                            next_dump = Some(now + UPDATE_INTERVAL);
                        }
                    } else {
                        // The first dump went out from dump_now().
                        next_dump = Some(now + UPDATE_INTERVAL);
                    }
                }
            })
        };
        Ok(Speaker { sock, to, dump, dumping, stop, thread: Some(thread) })
    }

    /// Sends the full dump now (back to back), then every update interval
    /// until [`Speaker::stop_dumping`]. Returns when the first packet went.
    pub fn dump_now(&self) -> (Instant, usize, usize) {
        let t = Instant::now();
        let bytes = self.dump.iter().map(Vec::len).sum();
        for p in self.dump.iter() {
            let _ = self.sock.send_to(p, self.to);
        }
        self.dumping.store(true, Ordering::Relaxed);
        (t, self.dump.len(), bytes)
    }

    pub fn stop_dumping(&self) {
        self.dumping.store(false, Ordering::Relaxed);
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
