//! Kernel WireGuard: links created over rtnetlink (`type wireguard`) and
//! configured through the generic netlink family "wireguard" (neli).
//!
//! Message building and parsing are pure ([`set_device_messages`],
//! [`get_device_message`], [`parse_device`], [`coalesce_peers`]) and tested
//! without a kernel. A device update can be larger than one netlink message
//! may be, so it is split as wireguard-tools does: device attributes and
//! `WGDEVICE_F_REPLACE_PEERS` go in the first message only, peers follow in
//! order, and a peer whose allowed IPs do not fit continues in the next
//! message under its public key again (without `REPLACE_ALLOWEDIPS`, which
//! would undo the first part). The kernel splits its dump answers the same
//! way, so consecutive peers with the same key are merged when reading.
//!
//! The socket calls are blocking: the kernel answers generic netlink requests
//! synchronously, so they never wait on anything but the kernel itself.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use neli::consts::genl::{CtrlAttr, CtrlCmd};
use neli::consts::nl::{GenlId, NlmF, Nlmsg};
use neli::consts::socket::{Msg, NlFamily};
use neli::genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder};
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::socket::NlSocket;
use neli::types::{Buffer, GenlBuffer, NlBuffer};
use neli::utils::Groups;
use neli::{FromBytesWithInput, Header, Size, ToBytes};

use super::model::{AllowedIp, Device, DeviceUpdate, Key, PeerState, PeerUpdate, PrivateKey};
use super::rtnl::Rtnl;
use super::{check_ifname, netns, WgBackend, WgError};

// include/uapi/linux/wireguard.h
pub const WG_GENL_NAME: &str = "wireguard";
pub const WG_GENL_VERSION: u8 = 1;
pub const WG_CMD_GET_DEVICE: u8 = 0;
pub const WG_CMD_SET_DEVICE: u8 = 1;

pub const WGDEVICE_F_REPLACE_PEERS: u32 = 1 << 0;
pub const WGDEVICE_A_IFINDEX: u16 = 1;
pub const WGDEVICE_A_IFNAME: u16 = 2;
pub const WGDEVICE_A_PRIVATE_KEY: u16 = 3;
pub const WGDEVICE_A_PUBLIC_KEY: u16 = 4;
pub const WGDEVICE_A_FLAGS: u16 = 5;
pub const WGDEVICE_A_LISTEN_PORT: u16 = 6;
pub const WGDEVICE_A_FWMARK: u16 = 7;
pub const WGDEVICE_A_PEERS: u16 = 8;

pub const WGPEER_F_REMOVE_ME: u32 = 1 << 0;
pub const WGPEER_F_REPLACE_ALLOWEDIPS: u32 = 1 << 1;
pub const WGPEER_F_UPDATE_ONLY: u32 = 1 << 2;
pub const WGPEER_A_PUBLIC_KEY: u16 = 1;
pub const WGPEER_A_PRESHARED_KEY: u16 = 2;
pub const WGPEER_A_FLAGS: u16 = 3;
pub const WGPEER_A_ENDPOINT: u16 = 4;
pub const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL: u16 = 5;
pub const WGPEER_A_LAST_HANDSHAKE_TIME: u16 = 6;
pub const WGPEER_A_RX_BYTES: u16 = 7;
pub const WGPEER_A_TX_BYTES: u16 = 8;
pub const WGPEER_A_ALLOWEDIPS: u16 = 9;
pub const WGPEER_A_PROTOCOL_VERSION: u16 = 10;

pub const WGALLOWEDIP_A_FAMILY: u16 = 1;
pub const WGALLOWEDIP_A_IPADDR: u16 = 2;
pub const WGALLOWEDIP_A_CIDR_MASK: u16 = 3;

// sockaddr and allowed-IP families, as the kernel's u16 fields carry them.
const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// Bytes one request message may take. wireguard-tools builds its messages in
/// libmnl's ideal socket buffer, min(page size, 8192), i.e. 4096 on the
/// routers we target; staying within it keeps us within what any kernel
/// accepts.
pub const MESSAGE_BUDGET: usize = 4096;

/// A generic netlink message body: command, version, attributes.
pub type GenlMsg = Genlmsghdr<u8, u16>;
type Attr = Nlattr<u16, Buffer>;
/// A whole generic netlink message (the family id is the message type).
type GenlNlmsg = Nlmsghdr<u16, GenlMsg>;

fn enc(what: &str, e: impl std::fmt::Display) -> WgError {
    WgError::NetlinkDecode(format!("building {what}: {e}"))
}

fn attr(t: u16, payload: &[u8]) -> Result<Attr, WgError> {
    NlattrBuilder::default()
        .nla_type(AttrTypeBuilder::default().nla_type(t).build().map_err(|e| enc("attribute type", e))?)
        .nla_payload(Buffer::from(payload))
        .build()
        .map_err(|e| enc("attribute", e))
}

/// A nested attribute holding `children`, with NLA_F_NESTED set as libmnl's
/// `mnl_attr_nest_start` does.
fn nest(t: u16, children: &[Attr]) -> Result<Attr, WgError> {
    let mut a = NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(t)
                .nla_nested(true)
                .build()
                .map_err(|e| enc("attribute type", e))?,
        )
        .nla_payload(Buffer::new())
        .build()
        .map_err(|e| enc("nest", e))?;
    for c in children {
        a = a.nest(c).map_err(|e| enc("nested attribute", e))?;
    }
    Ok(a)
}

fn genl(cmd: u8, version: u8, attrs: Vec<Attr>) -> Result<GenlMsg, WgError> {
    GenlmsghdrBuilder::<u8, u16>::default()
        .cmd(cmd)
        .version(version)
        .attrs(attrs.into_iter().collect::<GenlBuffer<u16, Buffer>>())
        .build()
        .map_err(|e| enc("genl header", e))
}

fn ifname_attr(name: &str) -> Result<Attr, WgError> {
    let mut b = name.as_bytes().to_vec();
    b.push(0);
    attr(WGDEVICE_A_IFNAME, &b)
}

/// `struct sockaddr_in` / `sockaddr_in6` as the kernel lays them out.
pub fn encode_sockaddr(e: &SocketAddr) -> Vec<u8> {
    match e {
        SocketAddr::V4(a) => {
            let mut b = Vec::with_capacity(16);
            b.extend_from_slice(&AF_INET.to_ne_bytes());
            b.extend_from_slice(&a.port().to_be_bytes());
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&[0; 8]);
            b
        }
        SocketAddr::V6(a) => {
            let mut b = Vec::with_capacity(28);
            b.extend_from_slice(&AF_INET6.to_ne_bytes());
            b.extend_from_slice(&a.port().to_be_bytes());
            b.extend_from_slice(&a.flowinfo().to_be_bytes());
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&a.scope_id().to_ne_bytes());
            b
        }
    }
}

/// Inverse of [`encode_sockaddr`]; `None` for other families or lengths
/// (an all-zero endpoint means "none").
pub fn decode_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let fam = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match (fam, b.len()) {
        (AF_INET, 16) => {
            let ip: [u8; 4] = b[4..8].try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        (AF_INET6, 28) => {
            let flow = u32::from_be_bytes(b[4..8].try_into().ok()?);
            let ip: [u8; 16] = b[8..24].try_into().ok()?;
            let scope = u32::from_ne_bytes(b[24..28].try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope)))
        }
        _ => None,
    }
}

fn allowed_ip_attr(a: &AllowedIp) -> Result<Attr, WgError> {
    let (fam, bytes) = match a.addr() {
        IpAddr::V4(v) => (AF_INET, v.octets().to_vec()),
        IpAddr::V6(v) => (AF_INET6, v.octets().to_vec()),
    };
    nest(
        0,
        &[
            attr(WGALLOWEDIP_A_FAMILY, &fam.to_ne_bytes())?,
            attr(WGALLOWEDIP_A_IPADDR, &bytes)?,
            attr(WGALLOWEDIP_A_CIDR_MASK, &[a.cidr()])?,
        ],
    )
}

/// The attributes of a peer's first (or only) part.
fn peer_head(p: &PeerUpdate) -> Result<Vec<Attr>, WgError> {
    let mut v = vec![attr(WGPEER_A_PUBLIC_KEY, &p.public_key.0)?];
    let mut flags = 0;
    if p.remove {
        flags |= WGPEER_F_REMOVE_ME;
    } else {
        if p.update_only {
            flags |= WGPEER_F_UPDATE_ONLY;
        }
        if p.replace_allowed_ips {
            flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
        }
    }
    if flags != 0 {
        v.push(attr(WGPEER_A_FLAGS, &flags.to_ne_bytes())?);
    }
    if p.remove {
        return Ok(v);
    }
    if let Some(e) = &p.endpoint {
        v.push(attr(WGPEER_A_ENDPOINT, &encode_sockaddr(e))?);
    }
    if let Some(k) = p.persistent_keepalive {
        v.push(attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, &k.to_ne_bytes())?);
    }
    Ok(v)
}

/// The attributes that continue a peer in a later message: its key, and
/// UPDATE_ONLY if the first part had it (never REPLACE_ALLOWEDIPS).
fn peer_continuation(p: &PeerUpdate) -> Result<Vec<Attr>, WgError> {
    let mut v = vec![attr(WGPEER_A_PUBLIC_KEY, &p.public_key.0)?];
    if p.update_only {
        v.push(attr(WGPEER_A_FLAGS, &WGPEER_F_UPDATE_ONLY.to_ne_bytes())?);
    }
    Ok(v)
}

fn padded(attrs: &[Attr]) -> usize {
    attrs.iter().map(Size::padded_size).sum()
}

/// Splits `update` into `WG_CMD_SET_DEVICE` bodies of at most `budget` bytes
/// each (netlink header included). Always at least one message.
pub fn set_device_messages(
    ifname: &str,
    update: &DeviceUpdate,
    budget: usize,
) -> Result<Vec<GenlMsg>, WgError> {
    check_ifname(ifname)?;
    let mut first = vec![ifname_attr(ifname)?];
    if let Some(k) = update.private_key {
        first.push(attr(WGDEVICE_A_PRIVATE_KEY, &k.0 .0)?);
    }
    if let Some(p) = update.listen_port {
        first.push(attr(WGDEVICE_A_LISTEN_PORT, &p.to_ne_bytes())?);
    }
    if let Some(m) = update.fwmark {
        first.push(attr(WGDEVICE_A_FWMARK, &m.to_ne_bytes())?);
    }
    if update.replace_peers {
        first.push(attr(WGDEVICE_A_FLAGS, &WGDEVICE_F_REPLACE_PEERS.to_ne_bytes())?);
    }

    let mut out = Vec::new();
    let mut base = first;
    let mut peers: Vec<Attr> = Vec::new();
    // Size of the message as it stands, with the peers nest if it has peers.
    let nla_hdrlen = Attr::header_size();
    let used = |base: &[Attr], peers: &[Attr]| {
        GenlNlmsg::header_size()
            + GenlMsg::header_size()
            + padded(base)
            + if peers.is_empty() { 0 } else { nla_hdrlen + padded(peers) }
    };
    let too_small = || WgError::NetlinkDecode(format!("message budget {budget} fits no peer"));
    let flush = |base: &mut Vec<Attr>, peers: &mut Vec<Attr>, out: &mut Vec<GenlMsg>| {
        let mut attrs = std::mem::replace(base, vec![ifname_attr(ifname)?]);
        if !peers.is_empty() {
            attrs.push(nest(WGDEVICE_A_PEERS, peers)?);
            peers.clear();
        }
        out.push(genl(WG_CMD_SET_DEVICE, WG_GENL_VERSION, attrs)?);
        Ok::<(), WgError>(())
    };

    for p in &update.peers {
        let ips: Vec<Attr> = if p.remove {
            Vec::new()
        } else {
            p.allowed_ips.iter().map(allowed_ip_attr).collect::<Result<_, _>>()?
        };
        let mut next = 0;
        let mut first_part = true;
        loop {
            let head = if first_part { peer_head(p)? } else { peer_continuation(p)? };
            let peers_nest = if peers.is_empty() { nla_hdrlen } else { 0 };
            let fixed = used(&base, &peers) + peers_nest + nla_hdrlen + padded(&head);
            if fixed > budget {
                if peers.is_empty() {
                    return Err(too_small());
                }
                flush(&mut base, &mut peers, &mut out)?;
                continue;
            }
            let mut room = budget - fixed;
            let mut take = 0;
            if next < ips.len() {
                if room >= nla_hdrlen {
                    room -= nla_hdrlen;
                    while next + take < ips.len() && ips[next + take].padded_size() <= room {
                        room -= ips[next + take].padded_size();
                        take += 1;
                    }
                }
                if take == 0 {
                    if peers.is_empty() {
                        return Err(too_small());
                    }
                    flush(&mut base, &mut peers, &mut out)?;
                    continue;
                }
            }
            let mut children = head;
            if take > 0 {
                children.push(nest(WGPEER_A_ALLOWEDIPS, &ips[next..next + take])?);
            }
            peers.push(nest(0, &children)?);
            next += take;
            first_part = false;
            if next == ips.len() {
                break;
            }
            flush(&mut base, &mut peers, &mut out)?;
        }
    }
    if !peers.is_empty() || out.is_empty() {
        flush(&mut base, &mut peers, &mut out)?;
    }
    Ok(out)
}

/// The `WG_CMD_GET_DEVICE` body for `ifname` (sent as a dump request).
pub fn get_device_message(ifname: &str) -> Result<GenlMsg, WgError> {
    check_ifname(ifname)?;
    genl(WG_CMD_GET_DEVICE, WG_GENL_VERSION, vec![ifname_attr(ifname)?])
}

/// A whole netlink message: header (type, flags, seq, port 0) + body.
pub fn to_bytes(nl_type: u16, flags: u16, seq: u32, body: &GenlMsg) -> Result<Vec<u8>, WgError> {
    let msg: GenlNlmsg = NlmsghdrBuilder::default()
        .nl_type(nl_type)
        .nl_flags(NlmF::from_bits_retain(flags))
        .nl_seq(seq)
        .nl_payload(NlPayload::Payload(body.clone()))
        .build()
        .map_err(|e| enc("netlink header", e))?;
    let mut c = Cursor::new(Vec::new());
    msg.to_bytes(&mut c).map_err(|e| enc("message", e))?;
    Ok(c.into_inner())
}

fn dec(what: &str) -> WgError {
    WgError::NetlinkDecode(what.to_string())
}

/// Parses a run of attributes (a message body after the genl header, or a
/// nest's payload).
pub fn parse_attrs(b: &[u8]) -> Result<Vec<Attr>, WgError> {
    let buf = GenlBuffer::<u16, Buffer>::from_bytes_with_input(&mut Cursor::new(b), b.len())
        .map_err(|e| WgError::NetlinkDecode(format!("attributes: {e}")))?;
    Ok(buf.into_iter().collect())
}

fn atype(a: &Attr) -> u16 {
    *a.nla_type().nla_type()
}

fn payload(a: &Attr) -> &[u8] {
    a.nla_payload().as_ref()
}

fn fixed<const N: usize>(a: &Attr, what: &str) -> Result<[u8; N], WgError> {
    payload(a)
        .get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| dec(&format!("{what}: {} bytes, want {N}", payload(a).len())))
}

/// What a device dump message (or a set request, for tests) carries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParsedDevice {
    pub ifindex: Option<u32>,
    pub ifname: Option<String>,
    pub flags: u32,
    pub device: Device,
    /// WGPEER_A_FLAGS of each peer, in order (set requests only).
    pub peer_flags: Vec<u32>,
}

/// Parses one `WG_CMD_GET_DEVICE` answer body (or a set body).
pub fn parse_device(body: &GenlMsg) -> Result<ParsedDevice, WgError> {
    let mut out = ParsedDevice::default();
    for a in body.attrs().iter() {
        match atype(a) {
            WGDEVICE_A_IFINDEX => out.ifindex = Some(u32::from_ne_bytes(fixed(a, "ifindex")?)),
            WGDEVICE_A_IFNAME => {
                let s = payload(a).split(|&c| c == 0).next().unwrap_or(&[]);
                out.ifname = Some(String::from_utf8_lossy(s).into_owned());
            }
            WGDEVICE_A_PRIVATE_KEY => {
                let k = Key(fixed(a, "private key")?);
                out.device.private_key = (!k.is_zero()).then_some(PrivateKey(k));
            }
            WGDEVICE_A_PUBLIC_KEY => {
                let k = Key(fixed(a, "public key")?);
                out.device.public_key = (!k.is_zero()).then_some(k);
            }
            WGDEVICE_A_FLAGS => out.flags = u32::from_ne_bytes(fixed(a, "flags")?),
            WGDEVICE_A_LISTEN_PORT => out.device.listen_port = u16::from_ne_bytes(fixed(a, "listen port")?),
            WGDEVICE_A_FWMARK => out.device.fwmark = u32::from_ne_bytes(fixed(a, "fwmark")?),
            WGDEVICE_A_PEERS => {
                for pa in parse_attrs(payload(a))? {
                    let (peer, flags) = parse_peer(payload(&pa))?;
                    out.device.peers.push(peer);
                    out.peer_flags.push(flags);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn parse_peer(b: &[u8]) -> Result<(PeerState, u32), WgError> {
    let mut key = None;
    let mut p = PeerState::new(Key([0; 32]));
    let mut flags = 0;
    for a in parse_attrs(b)? {
        match atype(&a) {
            WGPEER_A_PUBLIC_KEY => key = Some(Key(fixed(&a, "peer public key")?)),
            WGPEER_A_FLAGS => flags = u32::from_ne_bytes(fixed(&a, "peer flags")?),
            WGPEER_A_ENDPOINT => p.endpoint = decode_sockaddr(payload(&a)),
            WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL => {
                p.persistent_keepalive = u16::from_ne_bytes(fixed(&a, "keepalive")?)
            }
            WGPEER_A_LAST_HANDSHAKE_TIME => {
                let t: [u8; 16] = fixed(&a, "handshake time")?;
                let sec = i64::from_ne_bytes(t[..8].try_into().unwrap_or_default());
                let nsec = i64::from_ne_bytes(t[8..].try_into().unwrap_or_default());
                p.last_handshake = match (u64::try_from(sec), u32::try_from(nsec)) {
                    (Ok(0), Ok(0)) => None,
                    (Ok(s), Ok(n)) if n < 1_000_000_000 => UNIX_EPOCH.checked_add(Duration::new(s, n)),
                    _ => return Err(dec("handshake time out of range")),
                };
            }
            WGPEER_A_RX_BYTES => p.rx_bytes = u64::from_ne_bytes(fixed(&a, "rx bytes")?),
            WGPEER_A_TX_BYTES => p.tx_bytes = u64::from_ne_bytes(fixed(&a, "tx bytes")?),
            WGPEER_A_ALLOWEDIPS => {
                for ia in parse_attrs(payload(&a))? {
                    p.allowed_ips.push(parse_allowed_ip(payload(&ia))?);
                }
            }
            _ => {} // preshared key, protocol version
        }
    }
    p.public_key = key.ok_or_else(|| dec("peer without public key"))?;
    Ok((p, flags))
}

fn parse_allowed_ip(b: &[u8]) -> Result<AllowedIp, WgError> {
    let (mut fam, mut addr, mut cidr) = (None, None, None);
    for a in parse_attrs(b)? {
        match atype(&a) {
            WGALLOWEDIP_A_FAMILY => fam = Some(u16::from_ne_bytes(fixed(&a, "family")?)),
            WGALLOWEDIP_A_IPADDR => addr = Some(payload(&a).to_vec()),
            WGALLOWEDIP_A_CIDR_MASK => cidr = Some(fixed::<1>(&a, "cidr")?[0]),
            _ => {}
        }
    }
    let ip = match (fam, addr.as_deref()) {
        (Some(AF_INET), Some(b)) if b.len() == 4 => {
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).map_err(|_| dec("ipv4"))?))
        }
        (Some(AF_INET6), Some(b)) if b.len() == 16 => {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).map_err(|_| dec("ipv6"))?))
        }
        _ => return Err(dec("allowed IP with bad family or address")),
    };
    let cidr = cidr.ok_or_else(|| dec("allowed IP without prefix length"))?;
    AllowedIp::new(ip, cidr).ok_or_else(|| dec("allowed IP prefix length too long"))
}

/// Merges the parts of a dump into one device: device fields from the first
/// part, and a peer continued in the next part (same key, adjacent) gets the
/// later allowed IPs appended.
pub fn coalesce_peers(parts: Vec<ParsedDevice>) -> Device {
    let mut it = parts.into_iter();
    let Some(first) = it.next() else {
        return Device::default();
    };
    let mut dev = first.device;
    for part in it {
        for p in part.device.peers {
            match dev.peers.last_mut() {
                Some(last) if last.public_key == p.public_key => last.allowed_ips.extend(p.allowed_ips),
                _ => dev.peers.push(p),
            }
        }
    }
    dev
}

/// A generic netlink socket with the "wireguard" family resolved.
pub struct GenlSocket {
    sock: NlSocket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
}

/// What one request got back.
enum Reply {
    Ack,
    Bodies(Vec<GenlMsg>),
}

impl GenlSocket {
    /// Opens a socket (in `netns` if given) and resolves the family. `None`
    /// when the kernel has no "wireguard" family (module not loaded / absent).
    pub fn open(netns: Option<&Path>) -> Result<Option<Self>, WgError> {
        let sock = netns::run_in(netns, || NlSocket::connect(NlFamily::Generic, None, Groups::empty()))?
            .map_err(|e| WgError::io("opening generic netlink socket", e))?;
        let ctrl = u16::from(GenlId::Ctrl);
        let mut s = GenlSocket { sock, family: ctrl, seq: 0, buf: vec![0; 64 * 1024] };
        let mut name = WG_GENL_NAME.as_bytes().to_vec();
        name.push(0);
        let q = genl(CtrlCmd::Getfamily.into(), 1, vec![attr(CtrlAttr::FamilyName.into(), &name)?])?;
        let bodies = match s.request(ctrl, &q, false) {
            Ok(Reply::Bodies(b)) => b,
            Ok(Reply::Ack) => return Err(dec("family lookup answered with a bare ack")),
            Err(WgError::Netlink { errno: libc::ENOENT, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let family_id = u16::from(CtrlAttr::FamilyId);
        for b in &bodies {
            for a in b.attrs().iter() {
                if atype(a) == family_id {
                    s.family = u16::from_ne_bytes(fixed(a, "family id")?);
                    return Ok(Some(s));
                }
            }
        }
        Err(dec("family lookup answer has no family id"))
    }

    /// The resolved family id.
    pub fn family(&self) -> u16 {
        self.family
    }

    fn request(&mut self, nl_type: u16, body: &GenlMsg, dump: bool) -> Result<Reply, WgError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut flags = NlmF::REQUEST.bits();
        flags |= if dump { NlmF::DUMP.bits() } else { NlmF::ACK.bits() };
        let msg = to_bytes(nl_type, flags, seq, body)?;
        self.sock.send(&msg, Msg::empty()).map_err(|e| WgError::io("sending generic netlink request", e))?;
        let ctrl = nl_type == u16::from(GenlId::Ctrl);
        let what = if body.cmd() == &WG_CMD_SET_DEVICE {
            "WG_CMD_SET_DEVICE"
        } else if ctrl {
            "resolving generic netlink family"
        } else {
            "WG_CMD_GET_DEVICE"
        };
        let failed = |errno: i32| WgError::Netlink { what: what.into(), errno: errno.saturating_abs() };
        let mut bodies = Vec::new();
        loop {
            let (n, _) = self
                .sock
                .recv(&mut self.buf[..], Msg::empty())
                .map_err(|e| WgError::io("reading generic netlink answer", e))?;
            let datagram = &self.buf[..n];
            let msgs = NlBuffer::<u16, GenlMsg>::from_bytes_with_input(&mut Cursor::new(datagram), n)
                .map_err(|e| WgError::NetlinkDecode(format!("{what}: {e}")))?;
            for m in msgs {
                if *m.nl_seq() != seq {
                    continue; // a late answer to an earlier request
                }
                let done = *m.nl_type() == u16::from(Nlmsg::Done);
                match m.nl_payload() {
                    NlPayload::Err(e) => return Err(failed(*e.error())),
                    NlPayload::DumpExtAck(e) if *e.error() != 0 => return Err(failed(*e.error())),
                    NlPayload::Ack(_) | NlPayload::DumpExtAck(_) | NlPayload::Empty => {
                        return Ok(if done || !bodies.is_empty() {
                            Reply::Bodies(bodies)
                        } else {
                            Reply::Ack
                        });
                    }
                    NlPayload::Payload(g) => {
                        bodies.push(g.clone());
                        // Answers to non-dump requests are one message,
                        // followed by an ack only if ACK was asked for.
                        if !dump && ctrl {
                            return Ok(Reply::Bodies(bodies));
                        }
                    }
                }
            }
        }
    }

    /// Sends an update, split as [`set_device_messages`] does.
    pub fn set_device(&mut self, ifname: &str, update: &DeviceUpdate) -> Result<(), WgError> {
        for body in set_device_messages(ifname, update, MESSAGE_BUDGET)? {
            self.request(self.family, &body, false).map_err(|e| map_dev_err(ifname, e))?;
        }
        Ok(())
    }

    /// Reads a device.
    pub fn get_device(&mut self, ifname: &str) -> Result<Device, WgError> {
        let body = get_device_message(ifname)?;
        let parts = match self.request(self.family, &body, true).map_err(|e| map_dev_err(ifname, e))? {
            Reply::Bodies(b) => b,
            Reply::Ack => Vec::new(),
        };
        let parsed = parts.iter().map(parse_device).collect::<Result<Vec<_>, _>>()?;
        Ok(coalesce_peers(parsed))
    }
}

fn map_dev_err(ifname: &str, e: WgError) -> WgError {
    match e {
        // ENODEV: no such link; EOPNOTSUPP: a link that is not WireGuard.
        WgError::Netlink { errno: libc::ENODEV | libc::EOPNOTSUPP, .. } => {
            WgError::NoSuchInterface(ifname.to_string())
        }
        e => e,
    }
}

/// The kernel backend.
pub struct KernelBackend {
    genl: GenlSocket,
    rtnl: Rtnl,
}

impl KernelBackend {
    /// Connects (in `netns` if given). Fails when the kernel has no WireGuard.
    pub async fn new(netns: Option<&Path>) -> Result<Self, WgError> {
        Self::probe(netns).await?.ok_or_else(|| WgError::Spawn("the kernel has no WireGuard support".into()))
    }

    /// `Some` when kernel WireGuard is usable: the family resolves, or creating
    /// a probe link of type wireguard succeeds (the kernel then loads the
    /// module and registers the family).
    pub async fn probe(netns: Option<&Path>) -> Result<Option<Self>, WgError> {
        let rtnl = Rtnl::connect(netns).await?;
        if let Some(genl) = GenlSocket::open(netns)? {
            return Ok(Some(KernelBackend { genl, rtnl }));
        }
        let probe = format!("wgprobe{}", std::process::id() % 10_000_000);
        if rtnl.create_wireguard(&probe).await.is_err() {
            return Ok(None);
        }
        let _ = rtnl.delete(&probe).await;
        Ok(GenlSocket::open(netns)?.map(|genl| KernelBackend { genl, rtnl }))
    }

    /// The route-netlink connection, for callers that need more link work.
    pub fn rtnl(&self) -> &Rtnl {
        &self.rtnl
    }
}

impl WgBackend for KernelBackend {
    async fn create_interface(&mut self, name: &str, mtu: u32) -> Result<(), WgError> {
        check_ifname(name)?;
        self.rtnl.create_wireguard(name).await?;
        if let Err(e) = self.rtnl.set_mtu_up(name, mtu).await {
            let _ = self.rtnl.delete(name).await;
            return Err(e);
        }
        Ok(())
    }

    async fn delete_interface(&mut self, name: &str) -> Result<(), WgError> {
        check_ifname(name)?;
        self.rtnl.delete(name).await
    }

    async fn set(&mut self, name: &str, update: &DeviceUpdate) -> Result<(), WgError> {
        self.genl.set_device(name, update)
    }

    async fn get(&mut self, name: &str) -> Result<Device, WgError> {
        self.genl.get_device(name)
    }

    async fn add_address(&mut self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), WgError> {
        self.rtnl.add_address(name, addr, prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wg::model::{apply, DeviceConfig, PeerConfig};

    fn key(n: u16) -> Key {
        let mut k = [0u8; 32];
        k[..2].copy_from_slice(&n.to_be_bytes());
        k[31] = 1;
        Key(k)
    }

    fn bytes(body: &GenlMsg) -> Vec<u8> {
        to_bytes(0x1234, 5, 7, body).unwrap()
    }

    fn reparse(msgs: &[GenlMsg]) -> Vec<ParsedDevice> {
        msgs.iter()
            .map(|m| {
                let b = bytes(m);
                let body = &b[GenlNlmsg::header_size()..];
                let g = GenlMsg::from_bytes_with_input(&mut Cursor::new(body), body.len()).unwrap();
                parse_device(&g).unwrap()
            })
            .collect()
    }

    #[test]
    fn small_update_is_one_message_with_exact_bytes() {
        let mut p = PeerUpdate::new(Key([0x11; 32]));
        p.endpoint = Some("192.0.2.1:51820".parse().unwrap());
        p.persistent_keepalive = Some(25);
        p.allowed_ips = vec!["10.0.0.0/8".parse().unwrap()];
        let up = DeviceUpdate { listen_port: Some(51820), peers: vec![p], ..Default::default() };
        let msgs = set_device_messages("wg0", &up, MESSAGE_BUDGET).unwrap();
        assert_eq!(msgs.len(), 1);
        let b = bytes(&msgs[0]);
        let ne16 = |v: u16| v.to_ne_bytes();
        let mut want = Vec::new();
        let len: u32 = 16 + 4 + 8 + 8 + (4 + 4 + 36 + 20 + 8 + (4 + 4 + 8 + 8 + 8));
        want.extend_from_slice(&len.to_ne_bytes());
        want.extend_from_slice(&ne16(0x1234));
        want.extend_from_slice(&ne16(5));
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[WG_CMD_SET_DEVICE, 1, 0, 0]);
        // WGDEVICE_A_IFNAME "wg0\0"
        want.extend_from_slice(&ne16(8));
        want.extend_from_slice(&ne16(WGDEVICE_A_IFNAME));
        want.extend_from_slice(b"wg0\0");
        // WGDEVICE_A_LISTEN_PORT 51820 (host order) + 2 bytes padding
        want.extend_from_slice(&ne16(6));
        want.extend_from_slice(&ne16(WGDEVICE_A_LISTEN_PORT));
        want.extend_from_slice(&ne16(51820));
        want.extend_from_slice(&[0, 0]);
        // WGDEVICE_A_PEERS (nested) > peer 0 (nested)
        want.extend_from_slice(&ne16(4 + 4 + 36 + 20 + 8 + 32));
        want.extend_from_slice(&ne16(WGDEVICE_A_PEERS | 0x8000));
        want.extend_from_slice(&ne16(4 + 36 + 20 + 8 + 32));
        want.extend_from_slice(&ne16(0x8000));
        want.extend_from_slice(&ne16(36));
        want.extend_from_slice(&ne16(WGPEER_A_PUBLIC_KEY));
        want.extend_from_slice(&[0x11; 32]);
        want.extend_from_slice(&ne16(20));
        want.extend_from_slice(&ne16(WGPEER_A_ENDPOINT));
        want.extend_from_slice(&ne16(AF_INET));
        want.extend_from_slice(&51820u16.to_be_bytes());
        want.extend_from_slice(&[192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&ne16(6));
        want.extend_from_slice(&ne16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL));
        want.extend_from_slice(&ne16(25));
        want.extend_from_slice(&[0, 0]);
        // WGPEER_A_ALLOWEDIPS (nested) > entry 0 (nested)
        want.extend_from_slice(&ne16(32));
        want.extend_from_slice(&ne16(WGPEER_A_ALLOWEDIPS | 0x8000));
        want.extend_from_slice(&ne16(28));
        want.extend_from_slice(&ne16(0x8000));
        want.extend_from_slice(&ne16(6));
        want.extend_from_slice(&ne16(WGALLOWEDIP_A_FAMILY));
        want.extend_from_slice(&ne16(AF_INET));
        want.extend_from_slice(&[0, 0]);
        want.extend_from_slice(&ne16(8));
        want.extend_from_slice(&ne16(WGALLOWEDIP_A_IPADDR));
        want.extend_from_slice(&[10, 0, 0, 0]);
        want.extend_from_slice(&ne16(5));
        want.extend_from_slice(&ne16(WGALLOWEDIP_A_CIDR_MASK));
        want.extend_from_slice(&[8, 0, 0, 0]);
        assert_eq!(b, want);
    }

    #[test]
    fn flags_go_where_the_kernel_expects_them() {
        let mut change = PeerUpdate::new(key(1));
        change.update_only = true;
        change.replace_allowed_ips = true;
        change.allowed_ips = vec![AllowedIp::any_v6()];
        let up = DeviceUpdate {
            private_key: Some(PrivateKey(Key([7; 32]))),
            fwmark: Some(0),
            replace_peers: true,
            peers: vec![PeerUpdate::remove(key(2)), change],
            ..Default::default()
        };
        let msgs = set_device_messages("wg0", &up, MESSAGE_BUDGET).unwrap();
        let p = reparse(&msgs);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].ifname.as_deref(), Some("wg0"));
        assert_eq!(p[0].flags, WGDEVICE_F_REPLACE_PEERS);
        assert_eq!(p[0].device.private_key, Some(PrivateKey(Key([7; 32]))));
        assert_eq!(
            p[0].peer_flags,
            vec![WGPEER_F_REMOVE_ME, WGPEER_F_UPDATE_ONLY | WGPEER_F_REPLACE_ALLOWEDIPS]
        );
        assert_eq!(p[0].device.peers[1].allowed_ips, vec![AllowedIp::any_v6()]);
    }

    #[test]
    fn a_thousand_peers_split_within_budget_and_reassemble() {
        let cfg = DeviceConfig {
            private_key: PrivateKey(Key([9; 32])),
            listen_port: Some(51820),
            fwmark: Some(3),
            peers: (0..1000u16)
                .map(|i| PeerConfig {
                    public_key: key(i),
                    endpoint: Some(SocketAddr::V6(SocketAddrV6::new(
                        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, i),
                        51820,
                        0,
                        u32::from(i % 7) + 1,
                    ))),
                    allowed_ips: vec![
                        AllowedIp::new(IpAddr::V6(Ipv6Addr::new(0xfd00, i, 0, 0, 0, 0, 0, 0)), 32).unwrap(),
                        AllowedIp::new(IpAddr::V4(Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 0)), 24)
                            .unwrap(),
                    ],
                    persistent_keepalive: Some(25),
                })
                .collect(),
        };
        let up = DeviceUpdate::replace_all(&cfg);
        let msgs = set_device_messages("wg-big", &up, MESSAGE_BUDGET).unwrap();
        // Each peer takes 152 bytes: 1000 of them need at least 38 messages.
        assert!((38..=40).contains(&msgs.len()), "{} messages", msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let n = bytes(m).len();
            assert!(n <= MESSAGE_BUDGET, "message {i} is {n} bytes");
            if i + 1 < msgs.len() {
                assert!(n > MESSAGE_BUDGET - 152, "message {i} is only {n} bytes: poor packing");
            }
        }
        let parts = reparse(&msgs);
        assert_eq!(parts[0].flags, WGDEVICE_F_REPLACE_PEERS);
        assert!(parts[0].device.private_key.is_some());
        for p in &parts[1..] {
            assert_eq!(p.flags, 0, "REPLACE_PEERS only in the first message");
            assert_eq!(p.device.private_key, None);
            assert_eq!(p.ifname.as_deref(), Some("wg-big"));
        }
        // Applying the parts in order gives the configured device.
        let dev = coalesce_peers(parts);
        let want = apply(&Device::default(), &up);
        assert_eq!(dev.peers, want.peers);
    }

    #[test]
    fn a_peer_with_many_allowed_ips_continues_without_replace() {
        let mut p = PeerUpdate::new(key(1));
        p.update_only = true;
        p.replace_allowed_ips = true;
        p.endpoint = Some("192.0.2.1:1".parse().unwrap());
        p.allowed_ips = (0..400u32)
            .map(|i| AllowedIp::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), 24).unwrap())
            .collect();
        let up = DeviceUpdate {
            peers: vec![PeerUpdate::add(&PeerConfig::new(key(0))), p.clone()],
            ..Default::default()
        };
        let msgs = set_device_messages("wg0", &up, MESSAGE_BUDGET).unwrap();
        assert!(msgs.len() >= 3, "400 x 28 bytes need 3 messages");
        let parts = reparse(&msgs);
        assert_eq!(parts[0].peer_flags, vec![0, WGPEER_F_UPDATE_ONLY | WGPEER_F_REPLACE_ALLOWEDIPS]);
        assert_eq!(parts[0].device.peers[1].endpoint, p.endpoint);
        for part in &parts[1..] {
            assert_eq!(part.peer_flags, vec![WGPEER_F_UPDATE_ONLY]);
            assert_eq!(part.device.peers[0].public_key, key(1));
            assert_eq!(part.device.peers[0].endpoint, None, "sent once");
        }
        let dev = coalesce_peers(parts);
        assert_eq!(dev.peers.len(), 2);
        assert_eq!(dev.peers[1].allowed_ips, p.allowed_ips);
    }

    #[test]
    fn empty_update_is_one_message_and_budget_too_small_is_an_error() {
        let msgs = set_device_messages("wg0", &DeviceUpdate::default(), MESSAGE_BUDGET).unwrap();
        assert_eq!(msgs.len(), 1);
        let up = DeviceUpdate { peers: vec![PeerUpdate::new(key(1))], ..Default::default() };
        assert!(set_device_messages("wg0", &up, 64).is_err());
        assert!(set_device_messages("bad name", &up, MESSAGE_BUDGET).is_err());
    }

    #[test]
    fn sockaddrs_both_ways() {
        for s in ["192.0.2.1:51820", "[fe80::1%3]:51820", "[2001:db8::2]:1"] {
            let a: SocketAddr = s.parse().unwrap();
            assert_eq!(decode_sockaddr(&encode_sockaddr(&a)), Some(a));
        }
        assert_eq!(decode_sockaddr(&[0; 16]), None);
        assert_eq!(decode_sockaddr(&[2, 0]), None);
    }

    #[test]
    fn parses_a_dump_answer_with_handshake_and_counters() {
        let peer = nest(
            0,
            &[
                attr(WGPEER_A_PUBLIC_KEY, &[5; 32]).unwrap(),
                attr(WGPEER_A_PRESHARED_KEY, &[0; 32]).unwrap(),
                attr(
                    WGPEER_A_LAST_HANDSHAKE_TIME,
                    &[1_700_000_000i64.to_ne_bytes(), 42i64.to_ne_bytes()].concat(),
                )
                .unwrap(),
                attr(WGPEER_A_RX_BYTES, &1234u64.to_ne_bytes()).unwrap(),
                attr(WGPEER_A_TX_BYTES, &99u64.to_ne_bytes()).unwrap(),
                attr(WGPEER_A_PROTOCOL_VERSION, &1u32.to_ne_bytes()).unwrap(),
                nest(WGPEER_A_ALLOWEDIPS, &[]).unwrap(),
            ],
        )
        .unwrap();
        let body = genl(
            WG_CMD_GET_DEVICE,
            1,
            vec![
                attr(WGDEVICE_A_IFINDEX, &4u32.to_ne_bytes()).unwrap(),
                ifname_attr("wg0").unwrap(),
                attr(WGDEVICE_A_PUBLIC_KEY, &[6; 32]).unwrap(),
                attr(WGDEVICE_A_PRIVATE_KEY, &[0; 32]).unwrap(),
                attr(WGDEVICE_A_LISTEN_PORT, &51820u16.to_ne_bytes()).unwrap(),
                nest(WGDEVICE_A_PEERS, &[peer]).unwrap(),
            ],
        )
        .unwrap();
        let p = reparse(&[body]).remove(0);
        assert_eq!(p.ifindex, Some(4));
        assert_eq!(p.device.private_key, None, "zero key means none");
        assert_eq!(p.device.public_key, Some(Key([6; 32])));
        let peer = &p.device.peers[0];
        assert_eq!(peer.last_handshake, Some(UNIX_EPOCH + Duration::new(1_700_000_000, 42)));
        assert_eq!((peer.rx_bytes, peer.tx_bytes), (1234, 99));
        assert!(peer.allowed_ips.is_empty());
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        // A peer without a key, a short key, an allowed IP without a family.
        let bad_bodies = [
            vec![nest(WGDEVICE_A_PEERS, &[nest(0, &[attr(WGPEER_A_RX_BYTES, &[1; 8]).unwrap()]).unwrap()])
                .unwrap()],
            vec![attr(WGDEVICE_A_PUBLIC_KEY, &[1; 5]).unwrap()],
            vec![nest(
                WGDEVICE_A_PEERS,
                &[nest(
                    0,
                    &[
                        attr(WGPEER_A_PUBLIC_KEY, &[1; 32]).unwrap(),
                        nest(
                            WGPEER_A_ALLOWEDIPS,
                            &[nest(0, &[attr(WGALLOWEDIP_A_CIDR_MASK, &[8]).unwrap()]).unwrap()],
                        )
                        .unwrap(),
                    ],
                )
                .unwrap()],
            )
            .unwrap()],
        ];
        for attrs in bad_bodies {
            let body = genl(WG_CMD_GET_DEVICE, 1, attrs).unwrap();
            assert!(parse_device(&body).is_err(), "{body:?}");
        }
        // Truncated attribute bytes.
        assert!(parse_attrs(&[8, 0, 1, 0, 1]).is_err());
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let _ = parse_attrs(&junk);
        }
    }
}
