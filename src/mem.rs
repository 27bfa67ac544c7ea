//! A socket in memory, for the unit tests of the connection and the fuzz harness: the input
//! handed out up to a point that moves as "readiness events" bring more, the output taken in
//! pieces as the peer's window allows.

use std::io::{self, IoSlice, Read, Write};

use crate::conn::Stream;

/// A socket in memory: the input handed out up to cut points, the output taken in pieces.
pub(crate) struct Mem<'d> {
    pub input: &'d [u8],
    /// Bytes of input read so far.
    pub pos: usize,
    /// Bytes of input that have "arrived": reads past it would block.
    pub arrived: usize,
    /// Bytes the peer's window takes before a write would block.
    pub room: usize,
    pub out: Vec<u8>,
    /// The write side was shut.
    pub shut: bool,
    /// Reads made, `EAGAIN` and EOF included.
    pub reads: usize,
    /// The most one read hands out (a peer that sends in small pieces).
    pub piece: usize,
}

impl<'d> Mem<'d> {
    /// `input[..arrived]` has arrived; the peer's window takes `room` bytes.
    pub fn new(input: &'d [u8], arrived: usize, room: usize) -> Mem<'d> {
        Mem {
            input,
            pos: 0,
            arrived,
            room,
            out: Vec::new(),
            shut: false,
            reads: 0,
            piece: usize::MAX,
        }
    }
}

impl Read for Mem<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.pos == self.input.len() {
            return Ok(0);
        }
        if self.pos == self.arrived {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.arrived - self.pos).min(self.piece);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Mem<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        assert!(!self.shut, "write after the write side was shut");
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let k = b.len().min(self.room - n);
            self.out.extend_from_slice(&b[..k]);
            n += k;
            if n == self.room {
                break;
            }
        }
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Mem<'_> {
    fn shutdown_write(&self) {}
}
