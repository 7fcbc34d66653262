//! The audit stream behind `/log/queen.log`.
//!
//! Every control action, denial, lifecycle change and revocation becomes
//! one line `ts_ms=<ms> <event>`. Lines go to a bounded in-memory ring that
//! readers tail, and to the durable [`Store`] the edge supplies. Lines a
//! peer can trigger (denials) are rate-limited per second; the number
//! suppressed is reported in the next line that gets through.

use crate::hive::Store;
use crate::ring::Ring;

/// Most peer-triggered lines audited per second.
const LIMITED_PER_SECOND: u32 = 64;

#[derive(Debug)]
pub struct Audit {
    ring: Ring,
    window_s: u64,
    in_window: u32,
    suppressed: u64,
}

impl Audit {
    pub fn new(ring_bytes: usize) -> Audit {
        Audit {
            ring: Ring::new(ring_bytes),
            window_s: 0,
            in_window: 0,
            suppressed: 0,
        }
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Records one line unconditionally.
    pub fn note(&mut self, now_ms: u64, event: &str, store: &mut dyn Store) {
        let line = format!("ts_ms={now_ms} {event}");
        self.ring.push(line.as_bytes());
        store.audit(&line);
    }

    /// Records a peer-triggered line, unless this second's allowance is
    /// spent; suppressed lines are counted and reported later.
    pub fn note_limited(&mut self, now_ms: u64, event: String, store: &mut dyn Store) {
        let second = now_ms / 1000;
        if second != self.window_s {
            self.window_s = second;
            self.in_window = 0;
        }
        if self.in_window >= LIMITED_PER_SECOND {
            self.suppressed += 1;
            return;
        }
        self.in_window += 1;
        if self.suppressed > 0 {
            let n = std::mem::take(&mut self.suppressed);
            self.note(now_ms, &format!("{event} (suppressed={n})"), store);
        } else {
            self.note(now_ms, &event, store);
        }
    }
}
