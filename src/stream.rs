//! Streamed answers and Server-Sent Events: a body sent in pieces by a producer that runs on a
//! thread of its own, through the connection.
//!
//! The model. An HTTP function answers with [`Response::stream`](crate::Response::stream) (or
//! [`Response::sse`](crate::Response::sse)) and a *producer*: a closure that owns what it needs
//! (`move`, `Send + 'static`) and sends the body with [`BodyStream::send`]. The function
//! returns at once; the connection writes the head, and the producer runs on a stream thread
//! (started when first needed, then kept for the next stream). Each `send` frames its piece
//! (chunked on HTTP/1.1; as it is on HTTP/1.0, where the connection's end ends the body) into
//! the stream's queue — at most `SCF_LEAN_STREAM_BUFFER_BYTES` — and wakes the loop if it was
//! empty; the loop writes what is queued when the socket takes it, all of it in one write when
//! the client is behind. A producer never touches the socket: a client that reads slowly fills
//! its own queue and its `send` waits; everyone else is served meanwhile.
//!
//! `send` fails, and the producer should return, when the stream is cut off: the client left,
//! it read nothing for `SCF_LEAN_BODY_TIMEOUT_MS` with bytes waiting, the invocation's time
//! limit passed (`X-Scf-Timeout`, else `SCF_LEAN_TIME_LIMIT_MS`), or the server stopped. When
//! the producer returns `Ok`, the last chunk goes out and the connection stays open for the
//! next request; after an `Err` or a panic the body is cut off (no last chunk) and the
//! connection closed, so that the client sees the answer incomplete.
//!
//! [`Pipe`] is the queue between a producer and the connection; the dispatcher
//! (`dispatch.rs`) starts producers, the connection (`conn.rs`) takes their bytes.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::Error;

/// What a streaming function hands back: the body's producer, run on a stream thread.
pub(crate) type Producer = Box<dyn FnOnce(&mut BodyStream) -> Result<(), Error> + Send>;

/// A streamed answer whose head is prepared: what the dispatcher needs to start its producer,
/// and what the connection needs for its access line.
pub(crate) struct Start {
    /// `None` for HEAD: the head is the whole answer.
    pub producer: Option<Producer>,
    /// HTTP/1.1: chunked. HTTP/1.0: the body ends with the connection.
    pub chunked: bool,
    /// The connection closes after the answer.
    pub close: bool,
    /// The invocation's time limit: the stream is cut off there.
    pub ends_at: Instant,
    /// When the request's head began to arrive.
    pub arrival: Instant,
    /// For the access line and the producer's log lines.
    pub request_id: Option<Box<str>>,
    pub method: Box<str>,
    pub path: Box<str>,
    pub status: u16,
}

/// Why a stream was cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The client disconnected (or the socket failed).
    ClientGone,
    /// The client read nothing for the body timeout while bytes waited.
    TooSlow,
    /// The invocation's time limit passed.
    TimeLimit,
    /// The server stopped.
    ShutDown,
    /// The producer returned an error.
    Failed,
    /// The producer panicked.
    Panicked,
    /// No thread could be started for the producer.
    NoThread,
    /// The client read nothing of what waited for it, and the memory was needed by others.
    GaveWay,
}

impl Cut {
    /// How the stream ended, for its access line.
    pub fn reason(self) -> &'static str {
        match self {
            Cut::ClientGone => "the client left",
            Cut::TooSlow => "the client did not read for SCF_LEAN_BODY_TIMEOUT_MS",
            Cut::TimeLimit => "the invocation's time limit passed",
            Cut::ShutDown => "the server shut down",
            Cut::Failed => "the function returned an error",
            Cut::Panicked => "the function panicked",
            Cut::NoThread => "no thread could be started for the stream",
            Cut::GaveWay => "the client did not read and the memory budget was needed",
        }
    }

    fn error(self) -> io::Error {
        let kind = match self {
            Cut::ClientGone => io::ErrorKind::BrokenPipe,
            Cut::TooSlow | Cut::TimeLimit | Cut::GaveWay => io::ErrorKind::TimedOut,
            Cut::ShutDown => io::ErrorKind::Interrupted,
            Cut::Failed | Cut::Panicked | Cut::NoThread => io::ErrorKind::Other,
        };
        io::Error::new(kind, self.reason())
    }
}

/// The queue between a stream's producer and its connection.
pub(crate) struct Pipe {
    flow: Mutex<Flow>,
    /// Signalled when the connection takes the queue or cuts the stream.
    room: Condvar,
    /// Tells the loop that bytes (or the end) wait: set by the dispatcher.
    wake: Box<dyn Fn() + Send + Sync>,
    limit: usize,
    chunked: bool,
}

struct Flow {
    /// Framed bytes the connection has not taken yet.
    queue: Vec<u8>,
    /// The loop has been told about what waits and has not taken it yet.
    told: bool,
    /// How the producer ended, once it has.
    ended: Option<Result<(), Cut>>,
    /// Set by the connection: the stream is over.
    cut: Option<Cut>,
}

/// What the connection took from a pipe.
pub(crate) struct Taken {
    /// How the producer ended, if it has: all its bytes are in the batch just taken.
    pub ended: Option<Result<(), Cut>>,
}

impl Pipe {
    pub fn new(limit: usize, chunked: bool, wake: Box<dyn Fn() + Send + Sync>) -> Pipe {
        Pipe {
            flow: Mutex::new(Flow {
                queue: Vec::new(),
                told: false,
                ended: None,
                cut: None,
            }),
            room: Condvar::new(),
            wake,
            limit,
            chunked,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Flow> {
        // A producer that panicked holds no lock (it panics outside them): poisoning is moot.
        self.flow.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection takes what is queued: swapped with `into` (empty, its capacity kept for
    /// the producer's next pieces), and the producer may go on.
    pub fn take(&self, into: &mut Vec<u8>) -> Taken {
        let mut f = self.lock();
        std::mem::swap(&mut f.queue, into);
        f.told = false;
        let ended = f.ended;
        drop(f);
        self.room.notify_one();
        Taken { ended }
    }

    /// Whether the connection has cut the stream off.
    pub fn is_cut(&self) -> bool {
        self.lock().cut.is_some()
    }

    /// The connection ends the stream: the producer's next `send` fails with `why`.
    pub fn cut(&self, why: Cut) {
        let mut f = self.lock();
        if f.cut.is_none() {
            f.cut = Some(why);
        }
        drop(f);
        self.room.notify_all();
    }

    /// Appends a piece, framed, waiting while the queue is full; wakes the loop if it was not
    /// told yet.
    fn push(&self, piece: &[u8]) -> io::Result<()> {
        let mut f = self.lock();
        loop {
            if let Some(why) = f.cut {
                return Err(why.error());
            }
            if f.queue.is_empty() || f.queue.len() + piece.len() <= self.limit {
                break;
            }
            f = self.room.wait(f).unwrap_or_else(|p| p.into_inner());
        }
        // Exactly what it needs, not the doubling of a growing vector: a queue holds its bound
        // and one piece, no more.
        f.queue.reserve_exact(piece.len() + 20);
        if self.chunked {
            let mut hex = [0u8; 16];
            f.queue.extend_from_slice(hex_len(piece.len(), &mut hex));
            f.queue.extend_from_slice(b"\r\n");
            f.queue.extend_from_slice(piece);
            f.queue.extend_from_slice(b"\r\n");
        } else {
            f.queue.extend_from_slice(piece);
        }
        self.tell(f);
        Ok(())
    }

    /// The producer is done: the last chunk queued after a whole body.
    pub fn end(&self, how: Result<(), Cut>) {
        let mut f = self.lock();
        if f.ended.is_some() {
            return;
        }
        if how.is_ok() && self.chunked && f.cut.is_none() {
            f.queue.extend_from_slice(b"0\r\n\r\n");
        }
        f.ended = Some(how);
        self.tell(f);
    }

    fn tell(&self, mut f: MutexGuard<'_, Flow>) {
        if !f.told && f.cut.is_none() {
            f.told = true;
            drop(f);
            (self.wake)();
        }
    }
}

/// A response body being streamed by its producer: see
/// [`Response::stream`](crate::Response::stream).
pub struct BodyStream {
    sink: Sink,
    /// [`BodyStream::finish`] was called.
    finished: bool,
}

enum Sink {
    /// Through a connection.
    Pipe(Arc<Pipe>),
    /// Into memory, unframed: [`Response::collect_stream`](crate::Response::collect_stream), for
    /// unit tests.
    Memory(Vec<u8>),
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyStream")
    }
}

impl BodyStream {
    pub(crate) fn through(pipe: Arc<Pipe>) -> BodyStream {
        BodyStream {
            sink: Sink::Pipe(pipe),
            finished: false,
        }
    }

    pub(crate) fn in_memory() -> BodyStream {
        BodyStream {
            sink: Sink::Memory(Vec::new()),
            finished: false,
        }
    }

    /// What an in-memory stream collected.
    pub(crate) fn into_collected(self) -> Vec<u8> {
        match self.sink {
            Sink::Memory(v) => v,
            Sink::Pipe(_) => Vec::new(),
        }
    }

    /// Hands `piece` to the client's connection: queued (copied, framed), and the loop writes it
    /// as soon as the socket takes it — at once for a client that keeps up. An empty piece
    /// sends nothing. While `SCF_LEAN_STREAM_BUFFER_BYTES` wait for a client that reads slowly,
    /// `send` waits for room.
    ///
    /// # Errors
    /// The stream was cut off — stop and return:
    /// - the client disconnected (`BrokenPipe`);
    /// - it read nothing for `SCF_LEAN_BODY_TIMEOUT_MS` while bytes waited, or the invocation's
    ///   time limit passed (`TimedOut`);
    /// - the server stopped (`Interrupted`).
    pub fn send(&mut self, piece: &[u8]) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other("the stream is finished"));
        }
        if piece.is_empty() {
            return Ok(());
        }
        let r = match &mut self.sink {
            Sink::Pipe(p) => p.push(piece),
            Sink::Memory(v) => {
                v.extend_from_slice(piece);
                Ok(())
            }
        };
        crate::scope::flush_lent();
        r
    }

    /// Ends the body now: the last chunk on HTTP/1.1 (the connection stays open for the next
    /// request), the connection's end on HTTP/1.0. Returning `Ok` from the producer does the
    /// same; a `send` after it fails.
    ///
    /// ```
    /// use scf_lean::Response;
    /// let mut out = Response::new();
    /// out.stream(|body| {
    ///     body.send(b"all of it")?;
    ///     body.finish()?; // the client has the whole body now
    ///     assert!(body.send(b"more").is_err());
    ///     Ok(()) // cleaning up after the answer is out costs the client nothing
    /// })
    /// .unwrap();
    /// assert_eq!(out.collect_stream().unwrap().unwrap(), b"all of it");
    /// ```
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if let Sink::Pipe(p) = &self.sink {
            if let Some(why) = p.lock().cut {
                return Err(why.error());
            }
            p.end(Ok(()));
        }
        Ok(())
    }
}

/// `n` in lower-case hex, without leading zeros.
fn hex_len(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// A stream of Server-Sent Events (`text/event-stream`): see
/// [`Response::sse`](crate::Response::sse).
///
/// ```no_run
/// # use scf_lean::{Error, Request, Response};
/// fn tokens<'a>(_req: &Request<'a>, out: &mut Response<'a>) -> Result<(), Error> {
///     out.sse(|events| {
///         events.retry(2000)?;
///         for (i, token) in ["Hel", "lo"].iter().enumerate() {
///             events.event(Some("token"), Some(&i.to_string()), token)?;
///         }
///         events.event(Some("done"), None, "")?;
///         Ok(())
///     })
/// }
/// ```
#[derive(Debug)]
pub struct Sse {
    stream: BodyStream,
    /// When the last bytes went out.
    last: Instant,
    /// The event being framed, kept from event to event.
    buf: String,
}

impl Sse {
    pub(crate) fn new(stream: BodyStream) -> Sse {
        Sse {
            stream,
            last: Instant::now(),
            buf: String::new(),
        }
    }

    pub(crate) fn into_stream(self) -> BodyStream {
        self.stream
    }

    /// Sends one event: `event:` (its type, if any), `id:` (if any), then `data` as one `data:`
    /// line per line of it (split at `\n`, `\r\n` or `\r`), and the blank line that ends it.
    /// CR and LF in `event` or `id` would end their field early, and a NUL makes a browser ignore
    /// the id: they are dropped.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn event(&mut self, event: Option<&str>, id: Option<&str>, data: &str) -> io::Result<()> {
        let mut b = std::mem::take(&mut self.buf);
        b.clear();
        let field = |b: &mut String, name: &str, value: &str| {
            b.push_str(name);
            b.push_str(": ");
            b.extend(value.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')));
            b.push('\n');
        };
        if let Some(event) = event {
            field(&mut b, "event", event);
        }
        if let Some(id) = id {
            field(&mut b, "id", id);
        }
        for line in data.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            for part in line.split('\r') {
                b.push_str("data: ");
                b.push_str(part);
                b.push('\n');
            }
        }
        b.push('\n');
        let sent = self.send(b.as_bytes());
        self.buf = b;
        sent
    }

    /// Sends `data` as an unnamed event: [`Sse::event`] without type or id.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn data(&mut self, data: &str) -> io::Result<()> {
        self.event(None, None, data)
    }

    /// Tells the client how long to wait before reconnecting (`retry:`, in milliseconds).
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn retry(&mut self, ms: u64) -> io::Result<()> {
        let mut b = String::from("retry: ");
        b.push_str(itoa::Buffer::new().format(ms));
        b.push_str("\n\n");
        self.send(b.as_bytes())
    }

    /// A comment line (`: text`), which clients ignore: a heartbeat that keeps proxies from
    /// closing an idle stream.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn comment(&mut self, text: &str) -> io::Result<()> {
        let mut b = String::from(": ");
        b.extend(text.chars().filter(|c| !matches!(c, '\r' | '\n')));
        b.push_str("\n\n");
        self.send(b.as_bytes())
    }

    /// Sends a heartbeat comment if nothing went out for `interval`; call it from the loop that
    /// waits for the next event. Returns whether it sent one.
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn heartbeat(&mut self, interval: Duration) -> io::Result<bool> {
        if self.last.elapsed() < interval {
            return Ok(false);
        }
        self.comment("heartbeat")?;
        Ok(true)
    }

    /// Ends the stream: see [`BodyStream::finish`].
    ///
    /// # Errors
    /// As [`BodyStream::send`].
    pub fn finish(&mut self) -> io::Result<()> {
        self.stream.finish()
    }

    fn send(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.send(b)?;
        self.last = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn test_hex_len() {
        let mut b = [0; 16];
        assert_eq!(hex_len(0, &mut b), b"0");
        assert_eq!(hex_len(255, &mut b), b"ff");
        assert_eq!(hex_len(4096, &mut b), b"1000");
        assert_eq!(hex_len(usize::MAX, &mut b), b"ffffffffffffffff");
    }

    fn pipe(limit: usize) -> (Arc<Pipe>, Arc<AtomicUsize>) {
        let told = Arc::new(AtomicUsize::new(0));
        let t = told.clone();
        let wake = Box::new(move || {
            t.fetch_add(1, Ordering::SeqCst);
        });
        (Arc::new(Pipe::new(limit, true, wake)), told)
    }

    #[test]
    fn test_pieces_queue_framed_and_the_loop_is_told_once_per_batch() {
        let (p, told) = pipe(1024);
        let mut s = BodyStream::through(p.clone());
        s.send(b"ab").unwrap();
        s.send(b"").unwrap();
        s.send(b"cde").unwrap();
        assert_eq!(told.load(Ordering::SeqCst), 1, "told once until it takes");
        let mut batch = Vec::new();
        assert_eq!(p.take(&mut batch).ended, None);
        assert_eq!(batch, b"2\r\nab\r\n3\r\ncde\r\n");
        batch.clear();
        p.end(Ok(()));
        assert_eq!(told.load(Ordering::SeqCst), 2);
        assert_eq!(p.take(&mut batch).ended, Some(Ok(())));
        assert_eq!(batch, b"0\r\n\r\n");
    }

    #[test]
    fn test_a_full_queue_makes_send_wait_until_taken_and_a_cut_fails_it() {
        let (p, _) = pipe(8);
        let mut s = BodyStream::through(p.clone());
        s.send(b"12345").unwrap(); // 10 bytes framed: past the limit, but the queue was empty
        let sender = std::thread::spawn(move || {
            let first = s.send(b"x");
            let second = s.send(&[b'y'; 64]);
            (first.map_err(|e| e.kind()), second.map_err(|e| e.kind()))
        });
        // The sender waits for room: take the queue, then cut the stream.
        let mut batch = Vec::new();
        while batch.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            p.take(&mut batch);
        }
        assert_eq!(batch, b"5\r\n12345\r\n");
        let mut next = Vec::new();
        while next.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            p.take(&mut next);
        }
        p.cut(Cut::ClientGone);
        let (first, second) = sender.join().unwrap();
        assert_eq!(first, Ok(()));
        assert!(
            second == Ok(()) || second == Err(io::ErrorKind::BrokenPipe),
            "{second:?}"
        );
        let mut s = BodyStream::through(p);
        assert_eq!(s.send(b"z").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
