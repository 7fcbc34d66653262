//! Bounded rings of newline-terminated records with reader cursors.
//!
//! A ring keeps at most `capacity` bytes. Appending a record that does not
//! fit drops whole records from the front, never a partial one, so a reader
//! only ever sees complete lines. Positions are absolute byte offsets in the
//! ring's lifetime stream, which lets a reader holding a [`Cursor`] learn
//! exactly how many bytes it missed when it fell behind.
//!
//! The buffer is allocated on the first append: an idle worker costs nothing.

use std::collections::VecDeque;

/// A bounded record ring.
#[derive(Debug, Default)]
pub struct Ring {
    buf: VecDeque<u8>,
    capacity: usize,
    /// Absolute offset of the first retained byte.
    start: u64,
    records: u64,
}

/// Where a reader is in a ring's stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub pos: u64,
}

/// The result of one cursor read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RingRead {
    /// Bytes lost to overwrite between the cursor and the oldest record.
    pub lagged: u64,
    /// Whole records copied (possibly fewer than asked, never a partial one
    /// unless a single record exceeds the limit).
    pub data: Vec<u8>,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            buf: VecDeque::new(),
            capacity,
            start: 0,
            records: 0,
        }
    }

    /// Absolute offset just past the newest byte.
    pub fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Records appended over the ring's lifetime.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Appends one record, adding the terminating newline. The caller has
    /// already checked the record against its size bound; a record larger
    /// than the whole ring is cut to the ring (keeping its newline).
    pub fn push(&mut self, record: &[u8]) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.capacity.min(1024));
        }
        let take = record.len().min(self.capacity.saturating_sub(1));
        while !self.buf.is_empty() && self.buf.len() + take + 1 > self.capacity {
            self.drop_front_record();
        }
        self.buf.extend(&record[..take]);
        self.buf.push_back(b'\n');
        self.records += 1;
    }

    fn drop_front_record(&mut self) {
        let cut = match self.buf.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => self.buf.len(),
        };
        self.buf.drain(..cut);
        self.start += cut as u64;
    }

    /// A cursor at the oldest retained record.
    pub fn oldest(&self) -> Cursor {
        Cursor { pos: self.start }
    }

    /// Reads whole records from `cursor`, at most `limit` bytes, and moves
    /// the cursor past them. A cursor that fell behind is moved to the
    /// oldest record and the loss is reported in [`RingRead::lagged`].
    pub fn read(&self, cursor: &mut Cursor, limit: usize) -> RingRead {
        let mut out = RingRead::default();
        if cursor.pos < self.start {
            out.lagged = self.start - cursor.pos;
            cursor.pos = self.start;
        }
        let from = (cursor.pos.min(self.end()) - self.start) as usize;
        let avail = self.buf.len() - from;
        let mut take = avail.min(limit);
        if take < avail {
            // Stop at the last record boundary that fits.
            if let Some(last) = self.buf.range(from..from + take).rposition(|&b| b == b'\n') {
                take = last + 1;
            }
        }
        out.data.extend(self.buf.range(from..from + take));
        cursor.pos += take as u64;
        out
    }

    /// The newest `max_bytes` worth of whole records.
    pub fn tail(&self, max_bytes: usize) -> Vec<u8> {
        let mut cursor = Cursor {
            pos: self.end().saturating_sub(max_bytes as u64),
        };
        if cursor.pos > self.start {
            // Advance to the next record boundary.
            let from = (cursor.pos - self.start) as usize;
            let skip = self
                .buf
                .range(from..)
                .position(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            cursor.pos += skip as u64;
        }
        self.read(&mut cursor, max_bytes).data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_drops_whole_records() {
        let mut ring = Ring::new(16);
        ring.push(b"aaaa");
        ring.push(b"bbbb");
        ring.push(b"cccc");
        ring.push(b"dddd");
        assert_eq!(ring.len(), 15);
        let mut c = ring.oldest();
        let r = ring.read(&mut c, 1024);
        assert_eq!(r.lagged, 0);
        assert_eq!(r.data, b"bbbb\ncccc\ndddd\n");
    }

    #[test]
    fn reader_that_fell_behind_learns_the_loss() {
        let mut ring = Ring::new(10);
        let mut c = ring.oldest();
        ring.push(b"1234");
        ring.push(b"5678");
        ring.push(b"abcd");
        let r = ring.read(&mut c, 1024);
        assert_eq!(r.lagged, 5);
        assert_eq!(r.data, b"5678\nabcd\n");
        assert_eq!(c.pos, ring.end());
        assert!(ring.read(&mut c, 1024).data.is_empty());
    }

    #[test]
    fn limited_read_stops_at_record_boundary() {
        let mut ring = Ring::new(100);
        ring.push(b"one");
        ring.push(b"two");
        let mut c = Cursor::default();
        assert_eq!(ring.read(&mut c, 6).data, b"one\n");
        assert_eq!(ring.read(&mut c, 6).data, b"two\n");
    }

    #[test]
    fn tail_returns_newest_whole_records() {
        let mut ring = Ring::new(100);
        for r in [&b"alpha"[..], b"beta", b"gamma"] {
            ring.push(r);
        }
        assert_eq!(ring.tail(8), b"gamma\n");
        assert_eq!(ring.tail(1000), b"alpha\nbeta\ngamma\n");
    }

    #[test]
    fn record_larger_than_ring_is_cut_to_ring() {
        let mut ring = Ring::new(8);
        ring.push(b"0123456789");
        assert_eq!(ring.len(), 8);
        assert_eq!(ring.tail(100), b"0123456\n");
    }
}
