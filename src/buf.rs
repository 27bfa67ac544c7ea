//! Read buffers: the bytes a connection has read and not yet served ([`ReadBuf`]), and the
//! buffers idle connections lend to the next one that needs them ([`Spare`]).
//!
//! `buf[start..end]` holds the request being served (from `start`) and any pipelined requests
//! after it. The buffer is compacted or grown only when a read needs room, which never happens
//! while a response is pending, so a response may borrow the request it answers.
//!
//! A connection holds buffers only while a request or response is in flight. Once it is idle
//! with nothing buffered it hands its read buffer and its response buffers to the loop's
//! [`Spare`] set, and the next connection that reads takes them from there. The loop answers a
//! request within one turn, so a few buffers serve any number of idle keep-alive connections:
//! memory grows with the requests in flight, not with the connections open.

use std::io::{self, Read};

use crate::response::Output;

/// Size of a connection's first read buffer; it grows as a request needs.
pub(crate) const INITIAL_BUF: usize = 4 * 1024;
/// A buffer grown past this is given back once it is empty, not kept for reuse.
const SHRINK_ABOVE: usize = 64 * 1024;
/// Idle buffer sets the loop keeps for the next connection that needs one; more are freed.
pub(crate) const SPARE_SETS: usize = 4;

/// Buffers of idle connections, lent to the next connection that reads or answers.
pub(crate) struct Spare {
    reads: Vec<Vec<u8>>,
    outs: Vec<Output>,
}

impl Spare {
    pub fn new() -> Spare {
        Spare {
            reads: Vec::new(),
            outs: Vec::new(),
        }
    }

    /// A read buffer of at least `INITIAL_BUF` bytes and at most `max` if one is kept (else
    /// `INITIAL_BUF`), all initialized.
    fn read_buf(&mut self, max: usize) -> Vec<u8> {
        match self.reads.last() {
            Some(b) if b.len() <= max => self.reads.pop().unwrap_or_default(),
            _ => vec![0; INITIAL_BUF],
        }
    }

    /// Gives `out` response buffers if it has none.
    #[inline]
    pub fn lend_output(&mut self, out: &mut Output) {
        if !out.has_buffers() {
            if let Some(o) = self.outs.pop() {
                *out = o;
            }
        }
    }

    /// Keeps an emptied read buffer, unless it has grown past `SHRINK_ABOVE`.
    fn keep_read(&mut self, buf: Vec<u8>) {
        if (INITIAL_BUF..=SHRINK_ABOVE).contains(&buf.len()) && self.reads.len() < SPARE_SETS {
            self.reads.push(buf);
        }
    }

    /// Keeps a finished response's buffers, less any that grew past `SHRINK_ABOVE`.
    pub fn keep_output(&mut self, mut out: Output) {
        if self.outs.len() < SPARE_SETS {
            out.recycle(SHRINK_ABOVE);
            self.outs.push(out);
        }
    }

    /// (read buffers, response buffer sets) kept.
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        (self.reads.len(), self.outs.len())
    }

    /// Where the next read buffer lent out lies, to see that it is reused.
    #[cfg(test)]
    pub fn first_read(&self) -> *const u8 {
        self.reads[0].as_ptr()
    }
}

/// What a read brought.
pub(crate) enum Fill {
    Data,
    Eof,
    Blocked,
    /// The buffer is at its limit and the request still incomplete.
    Full,
    /// Growing it (or taking a first buffer) would take more memory than the budget leaves
    /// this connection: the buffer size it needed.
    OverBudget(usize),
    Failed,
}

/// What discarding input came to.
pub(crate) enum Discard {
    /// The peer shut its side (or the socket failed): nothing more will come.
    Ended,
    /// The socket is empty for now.
    Blocked,
    /// It took its share of reads for this turn; more may be waiting.
    More,
}

/// A connection's read buffer.
pub(crate) struct ReadBuf {
    /// `len()` is its capacity, all of it initialized; empty while lent out.
    buf: Vec<u8>,
    /// The request being served starts here.
    pub start: usize,
    /// Bytes read end here.
    pub end: usize,
    /// An index that moves with the bytes when they are compacted: where the decoded part of a
    /// chunked body ends.
    pub mark: usize,
    /// A read since the last readiness event returned less than it asked for: the socket is
    /// empty, and new input will raise a new (edge-triggered) event. Reading again would only
    /// return `EAGAIN`.
    pub short: bool,
}

impl ReadBuf {
    /// Its memory, moved out (to a worker, with the request in it); the indices stay.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Its memory back from [`ReadBuf::take`].
    pub fn restore(&mut self, buf: Vec<u8>) {
        self.buf = buf;
    }

    /// An empty buffer that holds no memory yet.
    pub fn new() -> ReadBuf {
        ReadBuf {
            buf: Vec::new(),
            start: 0,
            end: 0,
            mark: 0,
            short: false,
        }
    }

    /// The whole buffer (a response may borrow from it by range).
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The whole buffer, to decode a chunked body in place.
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// What has been read and not yet served: `buf[start..end]`.
    #[inline]
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether nothing is buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Its size in bytes (0 while lent out).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Reads once from `stream` into the room after `end`, making room first: compacting, then
    /// growing — with the bytes that arrived (doubling), never past `need` (the bytes the
    /// request is known to take from `start`, 0 when unknown), past `limit`, or to more than
    /// `room` bytes.
    pub fn fill<R: Read>(
        &mut self,
        stream: &mut R,
        spare: &mut Spare,
        need: usize,
        limit: usize,
        room: usize,
    ) -> Fill {
        if self.is_empty() {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.is_empty() {
            if room < INITIAL_BUF {
                return Fill::OverBudget(INITIAL_BUF);
            }
            self.buf = spare.read_buf(room);
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.compact();
            }
            if self.end == self.buf.len() {
                let len = self.buf.len();
                if len >= limit {
                    return Fill::Full;
                }
                let mut new = (len * 2).max(INITIAL_BUF).min(limit);
                if need > len {
                    new = new.min(need);
                }
                if new > room {
                    return Fill::OverBudget(new);
                }
                self.buf.resize(new, 0);
            }
        }
        loop {
            match stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Fill::Eof,
                Ok(n) => {
                    self.short = self.end + n < self.buf.len();
                    self.end += n;
                    return Fill::Data;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Fill::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Fill::Failed,
            }
        }
    }

    /// Moves the current request to the front of the buffer.
    fn compact(&mut self) {
        let shift = self.start;
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= shift;
        self.mark = self.mark.saturating_sub(shift);
        self.start = 0;
    }

    /// Reads and drops input until the socket would block or ends (after the final response),
    /// at most `reads` times.
    pub fn discard<R: Read>(&mut self, stream: &mut R, spare: &mut Spare, reads: usize) -> Discard {
        if self.buf.is_empty() {
            self.buf = spare.read_buf(SHRINK_ABOVE);
        }
        for _ in 0..reads {
            match stream.read(&mut self.buf) {
                Ok(0) => return Discard::Ended,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Discard::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Discard::Ended,
            }
        }
        Discard::More
    }

    /// Gives the memory back to `spare` (what was buffered is forgotten).
    pub fn lend(&mut self, spare: &mut Spare) {
        if !self.buf.is_empty() {
            spare.keep_read(std::mem::take(&mut self.buf));
        }
        (self.start, self.end, self.mark) = (0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_spare_keeps_a_bounded_number_of_small_buffers() {
        let mut spare = Spare::new();
        spare.keep_read(vec![0; SHRINK_ABOVE + 1]);
        spare.keep_read(vec![0; INITIAL_BUF]);
        assert_eq!(spare.len(), (1, 0));
        assert_eq!(spare.read_buf(usize::MAX).len(), INITIAL_BUF);
        for _ in 0..SPARE_SETS + 2 {
            spare.keep_read(vec![0; INITIAL_BUF]);
        }
        assert_eq!(spare.len(), (SPARE_SETS, 0));
    }

    #[test]
    fn test_compaction_moves_the_mark_with_the_bytes() {
        let mut spare = Spare::new();
        let mut b = ReadBuf::new();
        let input = vec![7u8; INITIAL_BUF];
        assert!(matches!(
            b.fill(&mut &input[..], &mut spare, 0, 1 << 20, usize::MAX),
            Fill::Data
        ));
        assert_eq!(b.end, INITIAL_BUF);
        (b.start, b.mark) = (100, 150);
        let more = [9u8; 10];
        assert!(matches!(
            b.fill(&mut &more[..], &mut spare, 0, 1 << 20, usize::MAX),
            Fill::Data
        ));
        assert_eq!((b.start, b.mark, b.end), (0, 50, INITIAL_BUF - 100 + 10));
        assert_eq!(&b.pending()[INITIAL_BUF - 100..], &more);
        assert_eq!(b.capacity(), INITIAL_BUF, "compaction made room: no growth");
    }

    #[test]
    fn test_growth_stops_at_the_limit() {
        let mut spare = Spare::new();
        let mut b = ReadBuf::new();
        let input = vec![1u8; 3 * INITIAL_BUF];
        let mut src = &input[..];
        let limit = 2 * INITIAL_BUF + 10;
        let mut fills = 0;
        while let Fill::Data = b.fill(&mut src, &mut spare, 0, limit, usize::MAX) {
            fills += 1;
            assert!(fills < 10);
        }
        assert_eq!(b.capacity(), limit);
        assert_eq!(b.end, limit);
        assert!(matches!(
            b.fill(&mut src, &mut spare, 0, limit, usize::MAX),
            Fill::Full
        ));
    }

    #[test]
    fn test_growth_follows_the_bytes_that_arrived_not_the_announced_length() {
        let mut spare = Spare::new();
        let mut b = ReadBuf::new();
        let announced = 6 << 20;
        let input = vec![1u8; 3 * INITIAL_BUF];
        let mut src = &input[..];
        while let Fill::Data = b.fill(&mut src, &mut spare, announced, 1 << 30, usize::MAX) {}
        assert!(b.capacity() <= 4 * INITIAL_BUF, "{} bytes", b.capacity());
        // Near its end, the buffer grows to exactly the request, not the next power of two.
        let mut b = ReadBuf::new();
        let need = 3 * INITIAL_BUF - 10;
        let mut src = &input[..need];
        while b.end < need {
            assert!(matches!(
                b.fill(&mut src, &mut spare, need, 1 << 30, usize::MAX),
                Fill::Data
            ));
        }
        assert_eq!(b.capacity(), need);
    }

    #[test]
    fn test_growth_past_the_room_is_refused() {
        let mut spare = Spare::new();
        let mut b = ReadBuf::new();
        let input = vec![1u8; 4 * INITIAL_BUF];
        let mut src = &input[..];
        let room = 2 * INITIAL_BUF;
        let mut last = Fill::Data;
        while let Fill::Data = last {
            last = b.fill(&mut src, &mut spare, 0, 1 << 30, room);
        }
        assert!(matches!(last, Fill::OverBudget(n) if n == 4 * INITIAL_BUF));
        assert_eq!(b.capacity(), room);
    }

    #[test]
    fn test_a_first_buffer_is_within_the_room_too() {
        let mut spare = Spare::new();
        spare.keep_read(vec![0; 4 * INITIAL_BUF]);
        let mut b = ReadBuf::new();
        let input = [1u8; 10];
        let fill = b.fill(&mut &input[..], &mut spare, 0, 1 << 20, INITIAL_BUF - 1);
        assert!(matches!(fill, Fill::OverBudget(INITIAL_BUF)));
        assert_eq!(b.capacity(), 0);
        // A kept buffer larger than the room stays kept; a new one of the first size is made.
        let fill = b.fill(&mut &input[..], &mut spare, 0, 1 << 20, 2 * INITIAL_BUF);
        assert!(matches!(fill, Fill::Data));
        assert_eq!((b.capacity(), spare.len()), (INITIAL_BUF, (1, 0)));
    }
}
