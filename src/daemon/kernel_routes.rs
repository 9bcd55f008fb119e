//! The engine's FIB operations as kernel route operations, batched.
//!
//! The daemon keeps no copy of the routes it installed: the engine's table
//! says which prefixes hold a route of ours, and each of its operations says
//! whether it replaces one ([`babel::FibOp`]). What the engine does not hear
//! of is the kernel refusing an install (an administrator's route at the same
//! prefix and metric, a link that just went down): such prefixes are kept
//! here, normally none, so that their next install is an add, which never
//! clobbers a route that is not ours, and their removal is not sent.

// HashMap<Prefix, usize> rather than BTreeMaps of their own: the type is
// in the binary already, and each new map type costs kilobytes of flash.
use std::collections::{BTreeSet, HashMap};

use crate::babel::{self, Prefix};
use crate::kernel::{FibFailure, FibOp, FibRoute};
use crate::mesh::e2e::Steer;

use super::e2e::E2eRouting;

pub struct KernelRoutes {
    /// The kernel priority (metric) of every route weft installs.
    priority: u32,
    /// Prefixes the engine believes installed whose install failed: no
    /// route of ours is there.
    missing: BTreeSet<Prefix>,
    /// The batch being built.
    ops: Vec<FibOp>,
    /// Prefixes added in this batch, and where: a later change of the same
    /// prefix in the batch is folded into the add, since the add may fail.
    adds: HashMap<Prefix, usize>,
    /// An IPv4 route is in the batch.
    ipv4: bool,
    /// End to end: which selected prefixes go into the end-to-end
    /// interface (or nowhere) instead of their Babel next hop.
    e2e: Option<E2eRouting>,
}

impl KernelRoutes {
    pub fn new(priority: u32) -> KernelRoutes {
        KernelRoutes {
            priority,
            missing: BTreeSet::new(),
            ops: Vec::new(),
            adds: HashMap::new(),
            ipv4: false,
            e2e: None,
        }
    }

    fn route(&self, r: &babel::FibRoute) -> FibRoute {
        let hop = FibRoute {
            prefix: r.prefix,
            next_hop: r.next_hop,
            ifindex: r.ifindex,
            metric: self.priority,
            src: None,
        };
        let Some(e) = &self.e2e else { return hop };
        match e.steer(&r.prefix) {
            None => hop,
            Some(Steer::Unreachable) => FibRoute::unreachable(r.prefix, self.priority),
            Some(Steer::EndToEnd) => {
                let src = if r.prefix.is_ipv4() {
                    e.sources.v4.map(Into::into)
                } else {
                    e.sources.v6.map(Into::into)
                };
                FibRoute::device(r.prefix, e.ifindex, self.priority, src)
            }
        }
    }

    /// Routes we hold besides the engine's: the transport prefix,
    /// unreachable, so that a shorter route covering it (a gateway's `::/0`)
    /// never carries a transport address whose own route is gone.
    fn fixed(&self) -> Option<FibRoute> {
        self.e2e.as_ref().map(|e| FibRoute::unreachable(e.transport_prefix, self.priority))
    }

    pub fn e2e_is(&self, e2e: &Option<E2eRouting>) -> bool {
        self.e2e == *e2e
    }

    /// A new end-to-end steering: every selected route whose kernel route
    /// it changes is replaced (`engine_routes`: the engine's FIB now).
    pub fn set_e2e(&mut self, e2e: Option<E2eRouting>, engine_routes: &[babel::FibOp]) {
        if e2e == self.e2e {
            return;
        }
        let before: Vec<Option<FibRoute>> = engine_routes.iter().map(|op| self.want(op)).collect();
        let fixed_before = self.fixed();
        self.e2e = e2e;
        let fixed_after = self.fixed();
        if fixed_before != fixed_after {
            if let Some(f) = fixed_before {
                self.ops.push(FibOp::Remove(f.key()));
            }
            if let Some(f) = fixed_after {
                self.replace(f);
            }
        }
        for (op, old) in engine_routes.iter().zip(before) {
            match (old, self.want(op)) {
                (Some(old), Some(new)) if old != new => self.replace(new),
                _ => {}
            }
        }
    }

    /// The kernel route for one of the engine's FIB entries.
    fn want(&self, op: &babel::FibOp) -> Option<FibRoute> {
        match op {
            babel::FibOp::Install(r) | babel::FibOp::Replace(r) => Some(self.route(r)),
            babel::FibOp::Unreachable(p) => Some(FibRoute::unreachable(*p, self.priority)),
            babel::FibOp::Remove(_) => None,
        }
    }

    fn add(&mut self, r: FibRoute) {
        self.ipv4 |= r.prefix.is_ipv4();
        self.adds.insert(r.prefix, self.ops.len());
        self.ops.push(FibOp::Add(r));
    }

    fn replace(&mut self, r: FibRoute) {
        self.ipv4 |= r.prefix.is_ipv4();
        if let Some(&i) = self.adds.get(&r.prefix) {
            self.ops[i] = FibOp::Add(r);
        } else if self.missing.contains(&r.prefix) {
            self.add(r);
        } else {
            self.ops.push(FibOp::Replace(r));
        }
    }

    /// Adds what the engine asked for to the batch.
    pub fn push(&mut self, op: babel::FibOp) {
        match op {
            babel::FibOp::Install(r) => self.add(self.route(&r)),
            babel::FibOp::Replace(r) => self.replace(self.route(&r)),
            babel::FibOp::Unreachable(p) => self.replace(FibRoute::unreachable(p, self.priority)),
            babel::FibOp::Remove(p) => {
                let added = self.adds.remove(&p).is_some();
                if added || !self.missing.remove(&p) {
                    let key = FibRoute::unreachable(p, self.priority).key();
                    self.ops.push(FibOp::Remove(key));
                }
            }
        }
    }

    /// Everything the engine has in the FIB, into an empty one (another
    /// table, protocol or priority): nothing of ours is there yet.
    pub fn reinstall(&mut self, priority: u32, engine_routes: Vec<babel::FibOp>) {
        self.priority = priority;
        self.missing.clear();
        if let Some(f) = self.fixed() {
            self.add(f);
        }
        for op in engine_routes {
            match op {
                babel::FibOp::Install(r) | babel::FibOp::Replace(r) => self.add(self.route(&r)),
                babel::FibOp::Unreachable(p) => self.add(FibRoute::unreachable(p, priority)),
                babel::FibOp::Remove(_) => {}
            }
        }
    }

    /// The batch to apply.
    pub fn batch(&self) -> &[FibOp] {
        &self.ops
    }

    /// Whether the batch installs an IPv4 route.
    pub fn has_ipv4(&self) -> bool {
        self.ipv4
    }

    /// The batch was applied and these of its operations failed (ordered by
    /// index, as [`crate::kernel::Fib::apply`] returns them): notes which
    /// prefixes hold no route of ours, and starts the next batch.
    pub fn applied(&mut self, failures: &[FibFailure]) {
        let mut failed = failures.iter().map(|f| f.index).peekable();
        for (i, op) in self.ops.iter().enumerate() {
            let mut ok = true;
            while let Some(&j) = failed.peek() {
                if j > i {
                    break;
                }
                ok &= j != i;
                failed.next();
            }
            match op {
                // Not ours if it failed (an answer lost included: an add
                // that did succeed then fails with EEXIST next time, which
                // is safer than replacing someone else's route).
                FibOp::Add(r) if !ok => {
                    self.missing.insert(r.prefix);
                }
                FibOp::Add(r) => {
                    self.missing.remove(&r.prefix);
                }
                // A failed replace leaves the route it would have replaced.
                FibOp::Replace(_) => {}
                FibOp::Remove(k) => {
                    self.missing.remove(&k.prefix);
                }
            }
        }
        self.ops.clear();
        self.adds.clear();
        self.ipv4 = false;
    }

    /// Brings the kernel in line with the engine when the outcome of a batch
    /// is unknown (an answer lost, a socket error, a replace or remove that
    /// failed) or to retry refused installs: `kernel` is what a dump shows of
    /// our routes, `engine_routes` what the engine has installed. Queues an
    /// add for what is absent, a replace for what differs and a removal for
    /// what the engine no longer has; the outcome of that batch decides what
    /// is missing.
    pub fn reconcile(&mut self, kernel: Vec<FibRoute>, engine_routes: Vec<babel::FibOp>) {
        self.missing.clear();
        let mut index: HashMap<Prefix, usize> =
            kernel.iter().enumerate().map(|(i, r)| (r.prefix, i)).collect();
        let mut have: Vec<Option<FibRoute>> = kernel.into_iter().map(Some).collect();
        let fixed = self.fixed();
        for want in engine_routes.iter().filter_map(|op| self.want(op)).chain(fixed).collect::<Vec<_>>() {
            match index.remove(&want.prefix).and_then(|i| have[i].take()) {
                None => self.add(want),
                Some(k) if same_route(&k, &want) => {}
                Some(_) => {
                    self.ipv4 |= want.prefix.is_ipv4();
                    self.ops.push(FibOp::Replace(want));
                }
            }
        }
        for stale in have.into_iter().flatten() {
            self.ops.push(FibOp::Remove(stale.key()));
        }
    }

    /// Prefixes whose last install failed.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }
}

/// Whether a dumped route is the one we would install (the kernel stores an
/// IPv6 priority of 0 as 1024).
fn same_route(dumped: &FibRoute, want: &FibRoute) -> bool {
    dumped.key() == want.key()
        && dumped.next_hop == want.next_hop
        && dumped.ifindex == want.ifindex
        && dumped.src == want.src
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::babel::Metric;
    use crate::kernel::FibError;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn engine_route(prefix: &str, nh: &str) -> babel::FibRoute {
        babel::FibRoute { prefix: p(prefix), next_hop: nh.parse().unwrap(), ifindex: 3, metric: Metric(96) }
    }

    fn kernel_route(prefix: &str, nh: &str) -> FibRoute {
        FibRoute { prefix: p(prefix), next_hop: nh.parse().unwrap(), ifindex: 3, metric: 7, src: None }
    }

    fn failed(index: usize, op: FibOp) -> FibFailure {
        FibFailure { index, op, error: FibError::kernel(libc::EEXIST, None) }
    }

    #[test]
    fn engine_operations_become_adds_replaces_and_removes_by_key() {
        let mut k = KernelRoutes::new(7);
        k.push(babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::1")));
        k.push(babel::FibOp::Replace(engine_route("2001:db8:2::/48", "fe80::2")));
        k.push(babel::FibOp::Unreachable(p("10.0.0.0/8")));
        k.push(babel::FibOp::Remove(p("2001:db8:3::/48")));
        assert!(k.has_ipv4());
        assert_eq!(
            k.batch(),
            [
                FibOp::Add(kernel_route("2001:db8:1::/48", "fe80::1")),
                FibOp::Replace(kernel_route("2001:db8:2::/48", "fe80::2")),
                FibOp::Replace(FibRoute::unreachable(p("10.0.0.0/8"), 7)),
                FibOp::Remove(kernel_route("2001:db8:3::/48", "fe80::9").key()),
            ]
        );
        k.applied(&[]);
        assert!(k.batch().is_empty() && !k.has_ipv4());
    }

    #[test]
    fn a_refused_install_is_never_replaced_in_place_nor_removed() {
        let mut k = KernelRoutes::new(7);
        let a = kernel_route("2001:db8:1::/48", "fe80::1");
        k.push(babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::1")));
        k.applied(&[failed(0, FibOp::Add(a))]);
        assert_eq!(k.missing(), 1);
        // The engine believes it installed: its next change is an add.
        k.push(babel::FibOp::Replace(engine_route("2001:db8:1::/48", "fe80::2")));
        k.push(babel::FibOp::Unreachable(p("2001:db8:1::/48")));
        assert_eq!(k.batch(), [FibOp::Add(FibRoute::unreachable(p("2001:db8:1::/48"), 7))], "folded");
        k.applied(&[failed(0, k.batch()[0])]);
        // Its removal has nothing to remove.
        k.push(babel::FibOp::Remove(p("2001:db8:1::/48")));
        assert!(k.batch().is_empty());
        assert_eq!(k.missing(), 0);
        // Refused again; then an add succeeds, and the prefix is ours again.
        k.push(babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::1")));
        k.applied(&[failed(0, FibOp::Add(a))]);
        assert_eq!(k.missing(), 1);
        k.push(babel::FibOp::Replace(engine_route("2001:db8:1::/48", "fe80::3")));
        assert!(matches!(k.batch(), [FibOp::Add(_)]));
        k.applied(&[]);
        assert_eq!(k.missing(), 0);
        k.push(babel::FibOp::Replace(engine_route("2001:db8:1::/48", "fe80::4")));
        assert!(matches!(k.batch(), [FibOp::Replace(_)]));
    }

    #[test]
    fn changes_after_an_add_in_the_same_batch_fold_into_it() {
        let mut k = KernelRoutes::new(7);
        k.push(babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::1")));
        k.push(babel::FibOp::Replace(engine_route("2001:db8:1::/48", "fe80::2")));
        assert_eq!(k.batch(), [FibOp::Add(kernel_route("2001:db8:1::/48", "fe80::2"))]);
        // A removal after an add is sent (the add may succeed), and an
        // install after it is an add again.
        k.push(babel::FibOp::Remove(p("2001:db8:1::/48")));
        k.push(babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::3")));
        k.push(babel::FibOp::Replace(engine_route("2001:db8:1::/48", "fe80::4")));
        assert_eq!(
            k.batch(),
            [
                FibOp::Add(kernel_route("2001:db8:1::/48", "fe80::2")),
                FibOp::Remove(kernel_route("2001:db8:1::/48", "fe80::2").key()),
                FibOp::Add(kernel_route("2001:db8:1::/48", "fe80::4")),
            ]
        );
        // The first add failed, the second succeeded: ours.
        let first = k.batch()[0];
        k.applied(&[failed(0, first)]);
        assert_eq!(k.missing(), 0);
    }

    #[test]
    fn reconcile_adds_what_is_absent_replaces_what_differs_and_removes_what_is_stale() {
        let mut k = KernelRoutes::new(7);
        // An add whose answer was lost: the engine's prefix is counted missing.
        k.push(babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::1")));
        let op = k.batch()[0];
        k.applied(&[FibFailure { index: 0, op, error: FibError::AckLost }]);
        assert_eq!(k.missing(), 1);
        // The dump shows the add did happen, a route that moved, a stale
        // route the engine forgot, and lacks one the engine has.
        let kernel = vec![
            kernel_route("2001:db8:1::/48", "fe80::1"),
            kernel_route("2001:db8:2::/48", "fe80::9"),
            kernel_route("2001:db8:9::/48", "fe80::1"),
        ];
        let engine = vec![
            babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::1")),
            babel::FibOp::Install(engine_route("2001:db8:2::/48", "fe80::2")),
            babel::FibOp::Unreachable(p("10.0.0.0/8")),
        ];
        k.reconcile(kernel, engine);
        assert_eq!(k.missing(), 0);
        assert_eq!(
            k.batch(),
            [
                FibOp::Replace(kernel_route("2001:db8:2::/48", "fe80::2")),
                FibOp::Add(FibRoute::unreachable(p("10.0.0.0/8"), 7)),
                FibOp::Remove(kernel_route("2001:db8:9::/48", "fe80::1").key()),
            ]
        );
        assert!(k.has_ipv4());
        k.applied(&[]);
        // The route that was thought missing is ours again: changed in place.
        k.push(babel::FibOp::Replace(engine_route("2001:db8:1::/48", "fe80::3")));
        assert!(matches!(k.batch(), [FibOp::Replace(_)]));
    }

    #[test]
    fn reinstall_adds_everything_with_the_new_priority() {
        let mut k = KernelRoutes::new(7);
        k.push(babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::1")));
        let op = k.batch()[0];
        k.applied(&[failed(0, op)]);
        k.reinstall(
            9,
            vec![
                babel::FibOp::Install(engine_route("2001:db8:1::/48", "fe80::1")),
                babel::FibOp::Unreachable(p("10.0.0.0/8")),
            ],
        );
        assert_eq!(k.missing(), 0);
        assert_eq!(
            k.batch(),
            [
                FibOp::Add(FibRoute { metric: 9, ..kernel_route("2001:db8:1::/48", "fe80::1") }),
                FibOp::Add(FibRoute::unreachable(p("10.0.0.0/8"), 9)),
            ]
        );
    }
}
