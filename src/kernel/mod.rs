//! The FIB edge (rtnetlink routes in weft's own protocol number) and link /
//! address monitoring, each behind a narrow trait with an in-memory fake.
//!
//! - [`Fib`]: install, replace and remove routes, flush our own; [`RtnlFib`]
//!   and [`FakeFib`].
//! - [`LinkMonitor`]: links up/down/added/removed and their addresses;
//!   [`RtnlMonitor`] and [`FakeMonitor`].
//! - [`sysctl`]: forwarding and reverse-path switches under /proc/sys.
//! - [`netns::Netns`]: private network namespaces for tests and benchmarks.

mod fib;
mod fib_rtnl;
mod monitor;
mod monitor_rtnl;
pub(crate) mod netlink;
pub mod netns;
pub mod sysctl;

pub use fib::{
    FakeFib, Fib, FibConfig, FibConfigError, FibError, FibFailure, FibOp, FibRoute, RouteKey,
    DEFAULT_PROTOCOL, DEFAULT_TABLE, IP6_RT_PRIO_USER,
};
pub use fib_rtnl::{RtnlFib, DEFAULT_BATCH};
pub use monitor::{FakeMonitor, FakeMonitorHandle, IfAddr, LinkInfo, LinkMonitor, LinkTable, MonitorEvent};
pub use monitor_rtnl::RtnlMonitor;
