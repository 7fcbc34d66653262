//! Failed-attach accounting per source address, shared by every console
//! connection of one listener.
//!
//! Each failed `ATTACH` is remembered with its time. Below the manifest's
//! threshold the failure is only throttled (the answer is delayed, doubling
//! each time); the failure that reaches the threshold within the window
//! locks the address out, and every `ATTACH` from it is refused until the
//! lockout ends. A successful attach forgets the address.
//!
//! The table is bounded: when full, the address touched longest ago is
//! evicted to make room. It keeps no secrets and does no I/O; the caller
//! passes the clock.
//!
//! # Limitations
//!
//! A peer that controls more addresses than the table holds can evict its
//! own lockout entries. Addresses are counted whole (IPv6 prefixes are not
//! grouped).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Addresses tracked at once by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// The first throttle delay; each later failure in the window doubles it.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest throttle delay.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The manifest's `console.attach_*` and `console.lockout_s` values.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub failures_before_lockout: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Policy {
    pub fn from_manifest(console: &cohesix_manifest::ConsoleSection) -> Policy {
        Policy {
            failures_before_lockout: console.attach_failures_before_lockout.max(1),
            window: Duration::from_secs(u64::from(console.attach_failure_window_s)),
            lockout: Duration::from_secs(u64::from(console.lockout_s)),
        }
    }
}

/// What a failed attach leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Answer the refusal after this delay.
    Throttle(Duration),
    /// The address is now locked out for this long.
    LockedOut(Duration),
}

#[derive(Debug)]
struct Peer {
    /// Times of recent failures, oldest first, at most the threshold.
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    /// Position in the eviction order.
    seq: u64,
}

/// The bounded table of addresses with recent failed attaches.
#[derive(Debug)]
pub struct Lockouts {
    capacity: usize,
    peers: HashMap<IpAddr, Peer>,
    /// seq → address; the smallest seq was touched longest ago.
    order: BTreeMap<u64, IpAddr>,
    next_seq: u64,
}

impl Lockouts {
    pub fn new(capacity: usize) -> Lockouts {
        Lockouts {
            capacity: capacity.max(1),
            peers: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Addresses currently tracked.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// How long `ip` stays locked out, or `None` when it may attach.
    pub fn locked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let peer = self.peers.get_mut(&ip)?;
        match peer.locked_until {
            Some(until) if until > now => Some(until - now),
            Some(_) => {
                // The lockout is over: start counting afresh.
                peer.locked_until = None;
                peer.failures.clear();
                None
            }
            None => None,
        }
    }

    /// Records a failed attach from `ip`.
    pub fn fail(&mut self, ip: IpAddr, now: Instant, policy: &Policy) -> Failure {
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.peers.contains_key(&ip) && self.peers.len() >= self.capacity {
            self.evict_oldest();
        }
        let peer = self.peers.entry(ip).or_insert_with(|| Peer {
            failures: VecDeque::new(),
            locked_until: None,
            seq,
        });
        self.order.remove(&peer.seq);
        peer.seq = seq;
        self.order.insert(seq, ip);

        while peer
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= policy.window)
        {
            peer.failures.pop_front();
        }
        peer.failures.push_back(now);
        let count = peer.failures.len() as u32;
        if count >= policy.failures_before_lockout {
            peer.failures.clear();
            peer.locked_until = Some(now + policy.lockout);
            return Failure::LockedOut(policy.lockout);
        }
        let doublings = count.saturating_sub(1).min(16);
        Failure::Throttle((BACKOFF_BASE * 2u32.pow(doublings)).min(BACKOFF_MAX))
    }

    /// Forgets `ip` after a successful attach.
    pub fn forgive(&mut self, ip: IpAddr) {
        if let Some(peer) = self.peers.remove(&ip) {
            self.order.remove(&peer.seq);
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, ip)) = self.order.pop_first() {
            self.peers.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            failures_before_lockout: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(90),
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn third_failure_in_the_window_locks_out_for_the_lockout() {
        let mut table = Lockouts::new(16);
        let t0 = Instant::now();
        let p = policy();
        assert_eq!(
            table.fail(ip(1), t0, &p),
            Failure::Throttle(Duration::from_millis(100))
        );
        assert_eq!(
            table.fail(ip(1), t0, &p),
            Failure::Throttle(Duration::from_millis(200))
        );
        assert_eq!(table.locked(ip(1), t0), None);
        assert_eq!(
            table.fail(ip(1), t0, &p),
            Failure::LockedOut(Duration::from_secs(90))
        );
        let later = t0 + Duration::from_secs(30);
        assert_eq!(table.locked(ip(1), later), Some(Duration::from_secs(60)));
        assert_eq!(table.locked(ip(2), later), None);
        assert_eq!(table.locked(ip(1), t0 + Duration::from_secs(90)), None);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let mut table = Lockouts::new(16);
        let t0 = Instant::now();
        let p = policy();
        table.fail(ip(1), t0, &p);
        table.fail(ip(1), t0, &p);
        let late = t0 + Duration::from_secs(61);
        assert!(matches!(table.fail(ip(1), late, &p), Failure::Throttle(_)));
        assert!(matches!(table.fail(ip(1), late, &p), Failure::Throttle(_)));
        assert!(matches!(table.fail(ip(1), late, &p), Failure::LockedOut(_)));
    }

    #[test]
    fn success_forgets_the_address() {
        let mut table = Lockouts::new(16);
        let t0 = Instant::now();
        let p = policy();
        table.fail(ip(1), t0, &p);
        table.fail(ip(1), t0, &p);
        table.forgive(ip(1));
        assert!(table.is_empty());
        assert!(matches!(table.fail(ip(1), t0, &p), Failure::Throttle(_)));
    }

    #[test]
    fn table_is_bounded_and_evicts_the_oldest() {
        let mut table = Lockouts::new(4);
        let t0 = Instant::now();
        let p = policy();
        for n in 0..10 {
            table.fail(ip(n), t0, &p);
            assert!(table.len() <= 4);
        }
        // 6..=9 remain; touching 6 makes 7 the oldest.
        table.fail(ip(6), t0, &p);
        table.fail(ip(20), t0, &p);
        assert!(table.peers.contains_key(&ip(6)));
        assert!(!table.peers.contains_key(&ip(7)));
        assert_eq!(table.order.len(), table.peers.len());
    }

    #[test]
    fn backoff_is_capped() {
        let mut table = Lockouts::new(4);
        let p = Policy {
            failures_before_lockout: 100,
            ..policy()
        };
        let t0 = Instant::now();
        let mut last = Failure::Throttle(Duration::ZERO);
        for _ in 0..50 {
            last = table.fail(ip(1), t0, &p);
        }
        assert_eq!(last, Failure::Throttle(BACKOFF_MAX));
    }
}
