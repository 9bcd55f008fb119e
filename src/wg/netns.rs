//! Doing something inside another network namespace without moving the whole
//! process: a helper thread joins the namespace (`setns` only affects the
//! calling thread), runs the closure, and ends. Sockets opened and processes
//! spawned there stay in that namespace. The daemon itself runs in its own
//! namespace and passes `None`; tests and the VM probe drive several
//! namespaces from one process.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use super::WgError;

/// Runs `f` in the network namespace at `netns` (e.g. `/run/netns/NAME`), or
/// on the current thread when `netns` is `None`.
pub fn run_in<T, F>(netns: Option<&Path>, f: F) -> Result<T, WgError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(path) = netns else {
        return Ok(f());
    };
    let file = File::open(path).map_err(|e| WgError::io(format!("opening {}", path.display()), e))?;
    let path: PathBuf = path.to_path_buf();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| WgError::io(format!("joining {}", path.display()), e.into()))?;
        Ok(f())
    })
    .join()
    .map_err(|_| WgError::Spawn("namespace helper thread panicked".into()))?
}

/// Path of a namespace created with `ip netns add NAME`.
pub fn named(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}
