//! Userspace WireGuard: one implementation process (wireguard-go, boringtun)
//! per interface, configured over its UAPI unix socket `SOCKET_DIR/IFNAME.sock`.
//!
//! The implementation creates the TUN device; MTU, link state and addresses
//! are then set over rtnetlink like for kernel interfaces. Starting follows
//! wg-quick: run `PROGRAM [ARGS] IFNAME`; wireguard-go and boringtun detach
//! themselves once their socket listens, an implementation run in the
//! foreground is kept as a child and stopped on delete. Either way the start
//! is bounded: the socket must accept a connection within `start_timeout`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::model::{Device, DeviceUpdate};
use super::rtnl::Rtnl;
use super::uapi::{self, Quirks};
use super::{check_ifname, netns, WgBackend, WgError};

/// Where wireguard-go and boringtun put their sockets (compiled in).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/wireguard";

/// How to run and reach the userspace implementation.
#[derive(Clone, Debug)]
pub struct UserspaceOptions {
    /// The implementation's executable.
    pub program: PathBuf,
    /// Arguments before the interface name.
    pub args: Vec<OsString>,
    /// Directory holding `IFNAME.sock`.
    pub socket_dir: PathBuf,
    pub quirks: Quirks,
    /// Network namespace to create interfaces in (`None`: our own).
    pub netns: Option<PathBuf>,
    /// Bound on starting the implementation until its socket answers.
    pub start_timeout: Duration,
    /// Bound on one UAPI exchange, and on waiting for a deleted interface's
    /// socket to go away.
    pub io_timeout: Duration,
}

impl UserspaceOptions {
    /// wireguard-go from PATH, default socket directory.
    pub fn wireguard_go() -> Self {
        UserspaceOptions {
            program: "wireguard-go".into(),
            args: Vec::new(),
            socket_dir: DEFAULT_SOCKET_DIR.into(),
            quirks: Quirks::WIREGUARD_GO,
            netns: None,
            start_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(5),
        }
    }

    /// boringtun-cli from PATH. It would otherwise drop privileges to nobody
    /// and then fail to reconfigure its own device.
    pub fn boringtun() -> Self {
        UserspaceOptions {
            program: "boringtun-cli".into(),
            args: vec!["--disable-drop-privileges".into()],
            quirks: Quirks::BORINGTUN,
            ..Self::wireguard_go()
        }
    }
}

/// UAPI client for one socket directory (no process management).
#[derive(Clone, Debug)]
pub struct UapiClient {
    pub socket_dir: PathBuf,
    pub timeout: Duration,
}

impl UapiClient {
    /// `SOCKET_DIR/IFNAME.sock`.
    pub fn socket_path(&self, ifname: &str) -> PathBuf {
        self.socket_dir.join(format!("{ifname}.sock"))
    }

    /// Sends one request and reads the answer up to its terminating empty line.
    pub async fn exchange(&self, ifname: &str, request: &str) -> Result<String, WgError> {
        check_ifname(ifname)?;
        let path = self.socket_path(ifname);
        let fut = async {
            let mut s = UnixStream::connect(&path).await.map_err(|e| match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    WgError::NoSuchInterface(ifname.to_string())
                }
                _ => WgError::io(format!("connecting to {}", path.display()), e),
            })?;
            s.write_all(request.as_bytes())
                .await
                .map_err(|e| WgError::io(format!("writing to {}", path.display()), e))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s
                    .read(&mut chunk)
                    .await
                    .map_err(|e| WgError::io(format!("reading {}", path.display()), e))?;
                buf.extend_from_slice(&chunk[..n]);
                // An answer ends at its first empty line; EOF ends it too.
                if n == 0 || buf.starts_with(b"\n") || buf.windows(2).any(|w| w == b"\n\n") {
                    break;
                }
                if buf.len() > 64 << 20 {
                    return Err(WgError::Uapi(uapi::UapiError::BadLine {
                        line: 0,
                        text: String::new(),
                        why: "answer larger than 64 MiB".into(),
                    }));
                }
            }
            String::from_utf8(buf).map_err(|_| {
                WgError::Uapi(uapi::UapiError::BadLine {
                    line: 0,
                    text: String::new(),
                    why: "answer is not UTF-8".into(),
                })
            })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| WgError::Timeout(format!("UAPI exchange on {}", path.display())))?
    }

    /// `get=1`, decoded. Zones given by interface name are resolved with
    /// `resolve` (called only when there are any).
    pub async fn get(&self, ifname: &str, quirks: Quirks, names: Option<&Rtnl>) -> Result<Device, WgError> {
        let answer = self.exchange(ifname, uapi::GET_REQUEST).await?;
        let map = match (uapi::zone_names(&answer).is_empty(), names) {
            (false, Some(r)) => r.link_indices().await?,
            _ => HashMap::new(),
        };
        let resolve = uapi::zone_map(map);
        Ok(uapi::decode_get(&answer, quirks, SystemTime::now(), &resolve)?)
    }

    /// `set=1` with the encoded update.
    pub async fn set(&self, ifname: &str, update: &DeviceUpdate, quirks: Quirks) -> Result<(), WgError> {
        let req = uapi::encode_set(update, quirks)?;
        let answer = self.exchange(ifname, &req).await?;
        Ok(uapi::decode_errno(&answer)?)
    }
}

/// The userspace backend.
pub struct UserspaceBackend {
    opts: UserspaceOptions,
    client: UapiClient,
    rtnl: Rtnl,
    /// Implementations still running as our children (foreground ones).
    children: HashMap<String, Child>,
    /// What we wrote, per interface, for what `get` does not report.
    written: HashMap<String, uapi::Written>,
}

impl UserspaceBackend {
    pub async fn new(opts: UserspaceOptions) -> Result<Self, WgError> {
        let rtnl = Rtnl::connect(opts.netns.as_deref()).await?;
        let client = UapiClient { socket_dir: opts.socket_dir.clone(), timeout: opts.io_timeout };
        Ok(UserspaceBackend { opts, client, rtnl, children: HashMap::new(), written: HashMap::new() })
    }

    /// The UAPI client this backend uses.
    pub fn client(&self) -> &UapiClient {
        &self.client
    }

    async fn socket_answers(&self, ifname: &str) -> bool {
        UnixStream::connect(self.client.socket_path(ifname)).await.is_ok()
    }

    /// Drops (reaps) children that have exited: an implementation that
    /// detached itself leaves its first process to us.
    fn reap_exited(&mut self) {
        self.children.retain(|_, c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }

    fn spawn(&self, ifname: &str) -> Result<Child, WgError> {
        let prog = self.opts.program.clone();
        let args = self.opts.args.clone();
        let name = ifname.to_string();
        netns::run_in(self.opts.netns.as_deref(), move || {
            Command::new(&prog)
                .args(&args)
                .arg(&name)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| WgError::Spawn(format!("{}: {e}", prog.display())))
        })?
    }
}

impl WgBackend for UserspaceBackend {
    async fn create_interface(&mut self, name: &str, mtu: u32) -> Result<(), WgError> {
        check_ifname(name)?;
        self.reap_exited();
        if self.rtnl.index_of(name).await?.is_some() || self.socket_answers(name).await {
            return Err(WgError::Netlink { what: format!("creating {name}"), errno: libc::EEXIST });
        }
        let mut child = self.spawn(name)?;
        let deadline = Instant::now() + self.opts.start_timeout;
        let mut exited = None;
        loop {
            if self.socket_answers(name).await {
                break;
            }
            if exited.is_none() {
                match child.try_wait() {
                    Ok(Some(st)) if !st.success() => {
                        return Err(WgError::Spawn(format!(
                            "{} {name} exited with {st}",
                            self.opts.program.display()
                        )))
                    }
                    Ok(Some(st)) => exited = Some(st),
                    Ok(None) => {}
                    Err(e) => return Err(WgError::io("waiting for the implementation", e)),
                }
            }
            if Instant::now() >= deadline {
                if exited.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(WgError::Timeout(format!(
                    "{} did not open {} within {:?}",
                    self.opts.program.display(),
                    self.client.socket_path(name).display(),
                    self.opts.start_timeout
                )));
            }
            // No event tells us when the socket starts listening; poll briefly.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if exited.is_none() {
            match child.try_wait() {
                Ok(Some(_)) => {}
                _ => {
                    self.children.insert(name.to_string(), child);
                }
            }
        }
        if let Err(e) = self.rtnl.set_mtu_up(name, mtu).await {
            let _ = self.delete_interface(name).await;
            return Err(e);
        }
        Ok(())
    }

    async fn delete_interface(&mut self, name: &str) -> Result<(), WgError> {
        check_ifname(name)?;
        // Removing the TUN device makes the implementation exit and remove
        // its socket.
        let res = self.rtnl.delete(name).await;
        let deadline = Instant::now() + self.opts.io_timeout;
        while self.socket_answers(name).await && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.written.remove(name);
        if let Some(mut c) = self.children.remove(name) {
            if !matches!(c.try_wait(), Ok(Some(_))) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        res
    }

    async fn set(&mut self, name: &str, update: &DeviceUpdate) -> Result<(), WgError> {
        if self.opts.quirks.readd_to_modify && update.peers.iter().any(|p| !p.remove) {
            let current = self.get(name).await?;
            for step in uapi::readd_modified_peers(update, &current) {
                self.client.set(name, &step, self.opts.quirks).await?;
            }
        } else {
            self.client.set(name, update, self.opts.quirks).await?;
        }
        self.written.entry(name.to_string()).or_default().remember(update);
        Ok(())
    }

    async fn get(&mut self, name: &str) -> Result<Device, WgError> {
        let mut dev = self.client.get(name, self.opts.quirks, Some(&self.rtnl)).await?;
        if let Some(w) = self.written.get(name) {
            w.restore(&mut dev, self.opts.quirks);
        }
        Ok(dev)
    }

    async fn add_address(&mut self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), WgError> {
        self.rtnl.add_address(name, addr, prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wg::model::{Key, PeerUpdate, PrivateKey};
    use tokio::net::UnixListener;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weft-uapi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A stand-in implementation: answers each request on a connection with
    /// the next canned answer and records what it was sent.
    async fn serve(listener: UnixListener, answers: Vec<&'static str>) -> Vec<String> {
        let mut seen = Vec::new();
        for a in answers {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(2).any(|w| w == b"\n\n") {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            seen.push(String::from_utf8(buf).unwrap());
            if !a.is_empty() {
                s.write_all(a.as_bytes()).await.unwrap();
            } else {
                // Hang: never answer (the client must time out).
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
        seen
    }

    #[test]
    fn get_and_set_over_a_socket() {
        let dir = tmpdir("ok");
        let client = UapiClient { socket_dir: dir.clone(), timeout: Duration::from_secs(5) };
        rt().block_on(async {
            let listener = UnixListener::bind(client.socket_path("wgt0")).unwrap();
            let server = tokio::spawn(serve(
                listener,
                vec![
                    "listen_port=7\npublic_key=0101010101010101010101010101010101010101010101010101010101010101\nlast_handshake_time_sec=3\nerrno=0\n\n",
                    "errno=0\n\n",
                    "errno=-22\n\n",
                ],
            ));
            let d = client.get("wgt0", Quirks::BORINGTUN, None).await.unwrap();
            assert_eq!(d.listen_port, 7);
            let ago = SystemTime::now()
                .duration_since(d.peers[0].last_handshake.unwrap())
                .unwrap();
            assert!(ago >= Duration::from_secs(3) && ago < Duration::from_secs(60));
            let mut up = DeviceUpdate {
                private_key: Some(PrivateKey(Key([1; 32]))),
                ..Default::default()
            };
            up.peers.push(PeerUpdate::remove(Key([2; 32])));
            client.set("wgt0", &up, Quirks::default()).await.unwrap();
            assert!(matches!(
                client.set("wgt0", &up, Quirks::default()).await,
                Err(WgError::Uapi(uapi::UapiError::Errno(22)))
            ));
            let seen = server.await.unwrap();
            assert_eq!(seen[0], uapi::GET_REQUEST);
            assert_eq!(seen[1], uapi::encode_set(&up, Quirks::default()).unwrap());
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_socket_and_silent_implementation() {
        let dir = tmpdir("err");
        let client = UapiClient { socket_dir: dir.clone(), timeout: Duration::from_millis(300) };
        rt().block_on(async {
            assert!(matches!(
                client.get("nosuch0", Quirks::default(), None).await,
                Err(WgError::NoSuchInterface(_))
            ));
            let listener = UnixListener::bind(client.socket_path("wgt1")).unwrap();
            let server = tokio::spawn(serve(listener, vec![""]));
            let t = Instant::now();
            assert!(matches!(client.get("wgt1", Quirks::default(), None).await, Err(WgError::Timeout(_))));
            assert!(t.elapsed() < Duration::from_secs(5));
            server.abort();
            assert!(matches!(client.exchange("../x", "get=1\n\n").await, Err(WgError::BadInterfaceName(_))));
        });
        let _ = std::fs::remove_dir_all(dir);
    }
}
