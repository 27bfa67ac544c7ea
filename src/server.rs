//! The event loop: one thread, one `mio::Poll`, a listener, a signal descriptor and a slot table
//! of connections.
//!
//! ```text
//! loop {
//!     poll (until the next deadline, or forever when nothing waits)
//!     for event { LISTENER => accept until WouldBlock, SIGNALS => shut down, STOP => return,
//!                 token => drive it }
//!     expire what is past its deadline; flush the access log
//! }
//! ```
//!
//! Connections live in `slots` (a `Vec` plus a free list); a connection's token is its index.
//! Readiness is edge-triggered, so every handler drains until `WouldBlock`; spurious events
//! (a token whose slot was freed and reused) happen and are harmless. WRITABLE interest is
//! registered only while a response waits for the socket.
//!
//! Past `MAX_CONNECTIONS`, or when `accept` runs out of descriptors, accepting pauses: no
//! event is lost (the pending connections wait in the backlog) and no time is spent; it resumes
//! when a connection closes, or after [`ACCEPT_RETRY`] when descriptors ran out.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::call::Shared;
use crate::config::Config;
use crate::conn::Conn;
use crate::date::later;
use crate::dispatch::{Dispatch, Done, STREAM_MAIL, WORKER_MAIL};
use crate::log::Level;
use crate::sys::Signals;
use crate::version::Identity;
use crate::wake::Key;
use crate::{Function, panic_hook};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const STOP: Token = Token(usize::MAX - 2);
/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// When `accept` fails for want of descriptors, it is tried again after this long (or as soon as
/// a connection closes).
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How often lines waiting for a stalled log pipe are tried again.
const LOG_RETRY: Duration = Duration::from_millis(10);
/// The memory budget before the instance's own limit is known, or without one: half of SCF's
/// smallest instance (64 MB).
const AUTO_BUDGET: usize = 32 << 20;

/// A bound server, ready to serve a function.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    addr: SocketAddr,
    /// Settings, log, date cache and the spare buffers of idle connections (see `buf.rs`).
    shared: Shared,
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    /// Bytes the connections hold (read buffers and responses), as last counted.
    used: usize,
    /// Of those, the bytes held by partial requests that may be made to give way (see
    /// `free_memory_for`).
    partial: usize,
    /// What they may hold together: the setting, or the automatic budget (see `lib.rs`).
    budget: usize,
    /// The set-up left for when the loop is first idle (see `deferred_setup`).
    deferred: bool,
    /// Started without std's runtime (`main!`): nothing reports a stack overflow unless the
    /// server sets it up.
    pub(crate) report_fatal_signals: bool,
    /// The function's `init` already ran (the test harness runs it on the test's thread).
    pub(crate) initialized: bool,
    /// Connections that stopped at their share of a turn with work left (`Conn::yielded`):
    /// driven again next turn. Two lists, swapped, so that neither ever reallocates once grown.
    again: Vec<usize>,
    again_now: Vec<usize>,
    /// Accepting is paused (at the connection limit, or out of descriptors).
    paused: bool,
    /// When to try `accept` again after running out of descriptors.
    accept_retry: Option<Instant>,
    signals: Option<Signals>,
    /// No connection's deadline is earlier than this.
    next_sweep: Option<Instant>,
    /// Set once shutting down: the end of the grace period.
    shutdown: Option<Instant>,
    /// Connections with something for the dispatcher (`Conn::handoff`), after this turn.
    handoffs: Vec<usize>,
    /// Mail taken from the dispatcher's mailboxes, kept from turn to turn.
    news: Vec<Key>,
    done: Vec<Done>,
    /// The number the next connection gets (`Conn::id`).
    next_id: u64,
    /// Where `used` is kept for calls on workers, when they run (`Dispatch::used`): updated
    /// whenever a call leaves for a worker or an answer comes back.
    used_mirror: Option<std::sync::Arc<crate::dispatch::Ledger>>,
}

impl Server {
    /// Listens on `0.0.0.0:config.port`.
    ///
    /// # Errors
    /// The error of `socket`, `bind` or `listen` (the port is taken, say).
    pub fn bind(config: Config) -> io::Result<Server> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
        Server::bind_to(config, addr)
    }

    /// Listens on `addr` (tests use `127.0.0.1:0`).
    ///
    /// # Errors
    /// As [`Server::bind`].
    pub fn bind_to(config: Config, addr: SocketAddr) -> io::Result<Server> {
        // socket, bind, listen: the listener comes first, before anything else is set up.
        let mut listener = TcpListener::bind(addr)?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let addr = listener.local_addr()?;
        let budget = config.memory_budget_bytes;
        // A function's lines outside an invocation follow this server's settings.
        crate::logger::set_settings(&config);
        Ok(Server {
            poll,
            listener: Some(listener),
            addr,
            shared: Shared::new(config),
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            used: 0,
            partial: 0,
            budget: match budget {
                0 => AUTO_BUDGET,
                n => n,
            },
            deferred: true,
            report_fatal_signals: false,
            initialized: false,
            again: Vec::new(),
            again_now: Vec::new(),
            paused: false,
            accept_retry: None,
            signals: None,
            next_sweep: None,
            shutdown: None,
            handoffs: Vec::new(),
            news: Vec::new(),
            done: Vec::new(),
            next_id: 0,
            used_mirror: None,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Logs the start-up line: `ready` is the time from the start of `main` to listening, `cpu`
    /// the process's CPU time so far.
    pub(crate) fn log_startup(
        &mut self,
        me: Option<&Identity>,
        ready: Duration,
        cpu: Option<Duration>,
    ) {
        self.shared.log.startup(me, self.addr.port(), ready, cpu);
    }

    /// A handle that stops [`Server::serve`] from another thread: the loop returns at once
    /// (exit code success), dropping its connections. For a server run in a thread of its own,
    /// as [`testing::TestServer`](crate::testing::TestServer) runs one.
    ///
    /// # Errors
    /// The error of creating the `eventfd` or registering it.
    pub fn stop_handle(&self) -> io::Result<StopHandle> {
        Ok(StopHandle(Waker::new(self.poll.registry(), STOP)?))
    }

    /// Handles SIGTERM and SIGINT (a handler that wakes the loop): the first stops accepting
    /// and lets what is in flight finish within the grace period — a timer ends the process
    /// then even if a call holds the loop — the second exits at once with 128 + the signal.
    ///
    /// # Errors
    /// The error of `eventfd`, `sigaction` or `epoll_ctl`.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let c = &self.shared.config;
        let mut s = Signals::new(c.shutdown_grace, c.log_format == crate::log::Format::Json)?;
        self.poll
            .registry()
            .register(&mut s, SIGNALS, Interest::READABLE)?;
        self.signals = Some(s);
        Ok(())
    }

    /// Serves `f` until a shutdown completes. Returns the process exit code: success after a
    /// graceful shutdown, 128 + the signal number after a second signal, failure if polling fails.
    pub fn serve<F: Function>(self, f: F) -> ExitCode {
        ExitCode::from(self.serve_code(f))
    }

    /// [`Server::serve`], returning the exit code as a number.
    pub(crate) fn serve_code<F: Function>(mut self, mut f: F) -> u8 {
        panic_hook::install();
        crate::log::serving_on_this_thread();
        if !self.initialized
            && let Err(why) = crate::invoke::init(&mut f, &mut self.shared.log)
        {
            return init_failed(&mut self.shared.log, &why);
        }
        let mut f = Dispatch::new(f, &self.shared.config, &mut self.shared.log);
        if !crate::call::Service::inline(&f) {
            self.used_mirror = Some(f.ledger());
        }
        let _ = crate::platform::env();
        let mut events = Events::with_capacity(EVENTS);
        loop {
            self.shared.log.flush();
            // Until the deferred set-up is done, look without waiting: nothing to do is the
            // moment for it.
            let timeout = if self.deferred || !self.again.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.timeout(Instant::now())
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.shared
                    .log
                    .line(Level::Error, None, &format!("epoll_wait failed: {e}"));
                return 1;
            }
            let now = Instant::now();
            self.shared.date.update(SystemTime::now());
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now, &mut f),
                    SIGNALS => {
                        if let Some(code) = self.on_signal(now) {
                            self.shared.log.flush();
                            return code;
                        }
                    }
                    STOP => {
                        self.shared
                            .log
                            .line(Level::Info, None, "stopped by its handle");
                        self.shared.log.flush();
                        return 0;
                    }
                    STREAM_MAIL => self.stream_news(now, &mut f),
                    WORKER_MAIL => self.answers(now, &mut f),
                    Token(i) => self.drive(i, now, &mut f, event.is_read_closed()),
                }
            }
            if !self.again.is_empty() {
                self.drive_again(now, &mut f);
            }
            if self.next_sweep.is_some_and(|t| t <= now) {
                self.sweep(now, &mut f);
            }
            if self.accept_retry.is_some_and(|t| t <= now) {
                self.accept_retry = None;
                self.accept(now, &mut f);
            }
            if !self.handoffs.is_empty() {
                self.hand_off(now, &mut f);
            }
            if self.deferred && (events.is_empty() || self.shared.served > 0) {
                self.deferred_setup();
            }
            if let Some(end) = self.shutdown {
                if self.open == 0 || now >= end {
                    let open = self.open;
                    self.stop_streams(now);
                    self.open = open;
                    let mut msg = String::from("stopped; connections dropped: ");
                    msg.push_str(itoa::Buffer::new().format(self.open));
                    self.shared.log.line(Level::Info, None, &msg);
                    self.shared.log.flush();
                    return 0;
                }
            }
        }
    }

    /// How long `poll` may sleep: until the nearest deadline, or for ever; while log lines wait
    /// for a stalled pipe, [`LOG_RETRY`] at most.
    #[inline(always)]
    fn timeout(&self, now: Instant) -> Option<Duration> {
        let log = self.shared.log.pending().then(|| later(now, LOG_RETRY));
        let mut soonest = self.next_sweep;
        for t in [self.accept_retry, self.shutdown, log]
            .into_iter()
            .flatten()
        {
            soonest = Some(soonest.map_or(t, |s| s.min(t)));
        }
        soonest.map(|t| t.saturating_duration_since(now))
    }

    /// Accepts while the backlog has connections and slots are free, and serves each new
    /// connection at once: the request usually arrives with it, and reading now saves a turn
    /// of the loop (an `epoll_wait`) on every fresh connection.
    /// With every slot or every descriptor taken, the oldest connection that has not sent a byte
    /// makes room for one that waits in the listener's queue.
    fn accept<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) {
        self.paused = false;
        loop {
            if self.open >= self.shared.config.max_connections && !self.make_room(now, f) {
                break;
            }
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    // Small responses go out at once, not after the peer's delayed ACK.
                    let _ = stream.set_nodelay(true);
                    let mut conn = Conn::new(stream, now, &self.shared.config);
                    conn.id = self.next_id;
                    self.next_id += 1;
                    let i = self.free.pop().unwrap_or(self.slots.len());
                    let registered =
                        self.poll
                            .registry()
                            .register(conn.stream(), Token(i), Interest::READABLE);
                    if registered.is_err() {
                        // Dropping the stream closes it; the slot stays free.
                        if i < self.slots.len() {
                            self.free.push(i);
                        }
                        continue;
                    }
                    self.note_deadline(conn.deadline());
                    if i == self.slots.len() {
                        self.slots.push(Some(conn));
                    } else {
                        self.slots[i] = Some(conn);
                    }
                    self.open += 1;
                    // Registered first: input arriving after this read raises an event, and
                    // input (or a FIN) already queued was reported by the registration itself.
                    self.drive(i, now, f, false);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if out_of_descriptors(&e) => {
                    // Under SCF's 1,024 descriptors this comes before the connection limit.
                    if self.make_room(now, f) {
                        continue;
                    }
                    // Pending connections wait in the backlog; try again later.
                    self.paused = true;
                    self.accept_retry = Some(later(now, ACCEPT_RETRY));
                    self.shared
                        .log
                        .line(Level::Debug, None, "accept paused: out of descriptors");
                    return;
                }
                // ECONNABORTED, EINTR, EPROTO…: that one connection is gone; go on.
                Err(_) => {}
            }
        }
        self.paused = true;
    }

    /// Hands the dispatcher what connections left for it this turn: requests for workers and
    /// streams' producers.
    #[cold]
    #[inline(never)]
    fn hand_off<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) {
        self.mirror_used();
        let mut handoffs = std::mem::take(&mut self.handoffs);
        for &i in &handoffs {
            let Some(Some(conn)) = self.slots.get_mut(i) else {
                continue;
            };
            let key = Key {
                slot: i,
                id: conn.id,
            };
            if conn.left() {
                // Its client left: a call not yet started is dropped (one running goes on).
                if conn.parcel().or_else(|| f.cancel(key)).is_some() {
                    let closing = self.shutdown.is_some();
                    self.run_conn(i, now, closing, |conn, cx| conn.abandon(cx));
                }
                continue;
            }
            if let Some(parcel) = conn.parcel() {
                f.send_away(self.poll.registry(), key, parcel);
            }
            if let Some((producer, id, chunked)) = conn.producer() {
                let pipe = f.start_stream(self.poll.registry(), key, producer, id, chunked);
                let closing = self.shutdown.is_some();
                self.run_conn(i, now, closing, |conn, cx| conn.stream_started(cx, pipe));
            }
        }
        handoffs.clear();
        if self.handoffs.is_empty() {
            self.handoffs = handoffs;
        }
        self.close_lost(now, f);
    }

    /// Publishes `used` to the calls on workers (`Budget::used`).
    fn mirror_used(&self) {
        if let Some(l) = &self.used_mirror {
            l.publish(self.used);
        }
    }

    /// Connections whose call was lost (no thread could start for it): closed.
    #[cold]
    #[inline(never)]
    fn close_lost<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) {
        while let Some(key) = f.lost.pop() {
            if self
                .slots
                .get(key.slot)
                .and_then(Option::as_ref)
                .map(|c| c.id)
                == Some(key.id)
            {
                self.shared.log.line(
                    Level::Error,
                    None,
                    "no thread could start for a call: connection closed",
                );
                let closing = self.shutdown.is_some();
                self.run_conn(key.slot, now, closing, |conn, cx| conn.abandon(cx));
            }
        }
    }

    /// Drives the connections whose streams have news: bytes to write, or their end.
    #[cold]
    #[inline(never)]
    fn stream_news<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) {
        let mut news = std::mem::take(&mut self.news);
        f.stream_news(&mut news);
        for key in news.drain(..) {
            if self
                .slots
                .get(key.slot)
                .and_then(Option::as_ref)
                .map(|c| c.id)
                == Some(key.id)
            {
                self.drive(key.slot, now, f, false);
            }
        }
        self.news = news;
    }

    /// Takes the workers' answers back to their connections, which go on at once.
    #[cold]
    #[inline(never)]
    fn answers<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) {
        let mut done = std::mem::take(&mut self.done);
        f.answers(self.poll.registry(), &mut done);
        let closing = self.shutdown.is_some();
        for mut d in done.drain(..) {
            self.shared.log.append(&mut d.parcel.lines);
            let key = d.key;
            if self
                .slots
                .get(key.slot)
                .and_then(Option::as_ref)
                .map(|c| c.id)
                != Some(key.id)
            {
                f.counted(d.parcel.claimed);
                continue;
            }
            let claimed = d.parcel.claimed;
            let need = self.run_conn(key.slot, now, closing, |conn, cx| {
                conn.answered(cx, f, d.parcel);
            });
            // The answer is in `used` now: published before its claim is given back, so that a
            // call on a worker never sees it in neither.
            self.mirror_used();
            f.counted(claimed);
            if need > 0 {
                self.free_memory_for(key.slot, need, now);
            }
        }
        self.done = done;
        self.close_lost(now, f);
        self.mirror_used();
    }

    /// Drives the connections that yielded last turn, once each. Their reads go on until they
    /// would block: what is waiting raised no new event. Out of line: only a pipelining client
    /// gets here.
    #[inline(never)]
    fn drive_again<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) {
        std::mem::swap(&mut self.again, &mut self.again_now);
        for k in 0..self.again_now.len() {
            let i = self.again_now[k];
            if let Some(Some(conn)) = self.slots.get_mut(i) {
                conn.queued = false;
            }
            let closing = self.shutdown.is_some();
            let need = self.run_conn(i, now, closing, |conn, cx| conn.drive_again(cx, f));
            if need > 0 {
                self.free_memory_for(i, need, now);
            }
        }
        self.again_now.clear();
    }

    fn drive<F: Function>(
        &mut self,
        i: usize,
        now: Instant,
        f: &mut Dispatch<F>,
        read_closed: bool,
    ) {
        let closing = self.shutdown.is_some();
        let need = self.run_conn(i, now, closing, |conn, cx| conn.drive(cx, f, read_closed));
        if need > 0 {
            self.free_memory_for(i, need, now);
        }
    }

    /// Runs `step` on connection `i` with the room the budget leaves it, then settles it.
    /// Returns the memory it needs past that room, if it does (`Cx::grow`): a read buffer it
    /// stopped before taking, or a request and its answer.
    fn run_conn(
        &mut self,
        i: usize,
        now: Instant,
        closing: bool,
        step: impl FnOnce(&mut Conn, &mut crate::call::Cx<'_>),
    ) -> usize {
        let Some(Some(conn)) = self.slots.get_mut(i) else {
            return 0; // a spurious event for a freed slot
        };
        let (room, room_max) = rooms(self.budget, self.used, self.partial, conn);
        let mut cx = self.shared.cx(now, closing);
        (cx.room, cx.room_max) = (room, room_max);
        step(conn, &mut cx);
        let grow = cx.grow;
        self.settle(i, now);
        grow
    }

    /// Makes the partial requests of other connections give way until connection `i` may hold
    /// `need` bytes: the one whose bytes last arrived longest ago first, each answered 503 and
    /// closed (`Conn::evict`). Only requests still arriving that hold at most [`SMALL_HOLD`]
    /// give way — heads, small bodies, uploads stalled early — so that many small holders
    /// cannot refuse everyone, while a few large uploads keep to their three quarters (`room`)
    /// and a complete request's answer is never cut off. The memory comes back before `i` takes
    /// it, so the budget holds at every moment (`lib.rs`, "Memory").
    #[cold]
    #[inline(never)]
    fn free_memory_for(&mut self, i: usize, need: usize, now: Instant) {
        let closing = self.shutdown.is_some();
        // An answer being sent needs only what it still holds (nothing once it is out).
        let need = match self.slots.get(i) {
            Some(Some(conn)) if !conn.wants_read() => need.min(conn.counted),
            _ => need,
        };
        let mut evicted = false;
        while !self.fits(i, need) {
            let Some(k) = self.stalest_partial(i) else {
                break;
            };
            self.shared.log.line(
                Level::Debug,
                None,
                "memory budget reached: the stalest partial request gives way",
            );
            self.run_conn(k, now, closing, |conn, cx| conn.evict(cx));
            evicted = true;
        }
        if evicted {
            crate::sys::trim_heap_for(need);
        }
    }

    /// Whether connection `i` (if it is still there) may hold `need` bytes beside the others.
    fn fits(&self, i: usize, need: usize) -> bool {
        match self.slots.get(i) {
            Some(Some(conn)) => need <= room(self.budget, self.used - conn.counted),
            _ => true,
        }
    }

    /// The connection other than `except` whose partial request may give way and whose bytes
    /// last arrived longest ago (the larger holder first among equals).
    fn stalest_partial(&self, except: usize) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(k, c)| Some((k, c.as_ref()?)))
            .filter(|&(k, c)| k != except && c.counted_partial > 0)
            .min_by_key(|(_, c)| (c.active_at(), std::cmp::Reverse(c.counted_partial)))
            .map(|(k, _)| k)
    }

    /// Closes the quietest connection if another waits to be accepted; whether it did.
    fn make_room<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) -> bool {
        self.connection_waiting() && self.evict_quiet(now, f)
    }

    /// Whether a connection waits in the listener's queue.
    fn connection_waiting(&self) -> bool {
        self.listener
            .as_ref()
            .is_some_and(|l| crate::sys::connection_waiting(l.as_raw_fd()))
    }

    /// Closes the connection that has been quiet longest, of those that have been for
    /// [`SILENT_AFTER`] and have no answer under way: one that never spoke first, then an idle
    /// keep-alive one (closing them loses nothing), then a request stalled mid-way (answered
    /// 408).
    /// False when there is none: a client's request follows its connection within a round
    /// trip, so one accepted a moment ago is not quiet, only new; accepting is then tried again
    /// when the first would be.
    fn evict_quiet<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) -> bool {
        let mut quietest: Option<((u8, Instant), usize)> = None;
        let mut soonest: Option<Instant> = None;
        for (i, c) in self.slots.iter().enumerate() {
            let Some((cost, since)) = c.as_ref().and_then(Conn::quiet_since) else {
                continue;
            };
            if now.saturating_duration_since(since) < SILENT_AFTER {
                let then = later(since, SILENT_AFTER);
                soonest = Some(soonest.map_or(then, |s| s.min(then)));
            } else if quietest.is_none_or(|(key, _)| (cost, since) < key) {
                quietest = Some(((cost, since), i));
            }
        }
        let Some((_, i)) = quietest else {
            if let Some(then) = soonest
                && self.accept_retry.is_none_or(|t| then < t)
            {
                self.accept_retry = Some(then);
            }
            return false;
        };
        self.shared.log.line(
            Level::Debug,
            None,
            "every slot taken: the quietest connection closed",
        );
        let closing = self.shutdown.is_some();
        self.run_conn(i, now, closing, |conn, cx| conn.expire(cx, f));
        true
    }

    /// After a connection ran: free its slot if it closed, else fix its interest and deadline.
    fn settle(&mut self, i: usize, now: Instant) {
        let Some(Some(conn)) = self.slots.get_mut(i) else {
            return;
        };
        let held = if conn.is_closed() { 0 } else { conn.held() };
        self.used = self.used - conn.counted + held;
        conn.counted = held;
        let partial = if held <= SMALL_HOLD && conn.is_partial() {
            held
        } else {
            0
        };
        self.partial = self.partial + partial - conn.counted_partial;
        conn.counted_partial = partial;
        if conn.handoff {
            conn.handoff = false;
            note_handoff(&mut self.handoffs, i);
        }
        if conn.yielded && !conn.queued && !conn.is_closed() {
            conn.queued = true;
            self.again.push(i);
        }
        if conn.is_closed() {
            // Dropping the stream closes it, which also takes it out of the epoll set.
            self.slots[i] = None;
            self.free.push(i);
            self.open -= 1;
            if self.paused && self.shutdown.is_none() {
                // A slot is free: accept again at the end of this turn.
                self.accept_retry = Some(now);
            }
            return;
        }
        let want = conn.wants_write();
        if want != conn.writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(conn.stream(), Token(i), interest)
                .is_ok()
            {
                conn.writable = want;
            }
        }
        let d = conn.deadline();
        self.note_deadline(d);
    }

    fn note_deadline(&mut self, d: Instant) {
        if self.next_sweep.is_none_or(|s| d < s) {
            self.next_sweep = Some(d);
        }
    }

    /// Expires every connection past its deadline and finds the next deadline.
    fn sweep<F: Function>(&mut self, now: Instant, f: &mut Dispatch<F>) {
        self.next_sweep = None;
        let closing = self.shutdown.is_some();
        for i in 0..self.slots.len() {
            let Some(Some(conn)) = self.slots.get(i) else {
                continue;
            };
            if conn.deadline() <= now {
                self.run_conn(i, now, closing, |conn, cx| conn.expire(cx, f));
            } else {
                self.settle(i, now);
            }
        }
    }

    /// What waits until the loop first has nothing to do — off the cold start's path, since on
    /// SCF the first request comes only after the platform has seen the port open — or until
    /// the first request is served, whichever comes first: the automatic memory budget, from
    /// the instance's memory limit (half of it), and the report of a fatal signal (a stack
    /// overflow) when std's runtime is not there to make it.
    fn deferred_setup(&mut self) {
        self.deferred = false;
        if self.report_fatal_signals {
            crate::sys::report_fatal_signals();
        }
        if self.shared.config.memory_budget_bytes != 0 {
            return;
        }
        if let Some(limit) = crate::sys::cgroup_memory_limit() {
            self.budget = limit / 2;
            if self.shared.log.enabled(Level::Debug) {
                budget_line(&mut self.shared.log, self.budget);
            }
        }
    }

    /// Cuts off the streams still open when the server stops, each with its access line.
    #[cold]
    #[inline(never)]
    fn stop_streams(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            self.run_conn(i, now, true, |conn, cx| conn.stop(cx));
        }
    }

    /// Reads the pending signals; an exit code if the process is to exit at once.
    fn on_signal(&mut self, now: Instant) -> Option<u8> {
        while let Some(signo) = self.signals.as_ref().and_then(Signals::next) {
            if self.shutdown.is_some() {
                self.shared
                    .log
                    .line(Level::Info, None, "second signal: exiting at once");
                return Some(128u8.wrapping_add(signo as u8));
            }
            self.begin_shutdown(now);
        }
        None
    }

    /// Stops accepting, closes idle connections and lets the others finish.
    fn begin_shutdown(&mut self, now: Instant) {
        self.shutdown = Some(later(now, self.shared.config.shutdown_grace));
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.accept_retry = None;
        let mut msg = String::from("shutting down; connections open: ");
        msg.push_str(itoa::Buffer::new().format(self.open));
        self.shared.log.line(Level::Info, None, &msg);
        for i in 0..self.slots.len() {
            self.run_conn(i, now, true, |conn, cx| conn.shutdown(cx));
        }
    }
}

/// Stops a [`Server`] from another thread: see [`Server::stop_handle`].
#[derive(Debug)]
pub struct StopHandle(Waker);

impl StopHandle {
    /// Makes the server's loop return at once. Stopping twice, or a server already gone, is
    /// harmless.
    pub fn stop(&self) {
        let _ = self.0.wake();
    }
}

/// What a connection may hold when the others hold `others` bytes: the budget less theirs;
/// but past [`SMALL_HOLD`] only while all together stay within three quarters of the budget.
/// The last quarter is kept for small requests and answers, so that a few large uploads
/// cannot take the memory every other client needs (`lib.rs`, "Memory").
fn room(budget: usize, others: usize) -> usize {
    let all = budget.saturating_sub(others);
    let large = (budget - budget / 4).saturating_sub(others);
    large.max(all.min(SMALL_HOLD))
}

/// What a connection may hold now, and once every other partial request that can give way has
/// (`Server::free_memory_for`), when all hold `used` and those partial requests `partial`.
#[inline(never)]
fn rooms(budget: usize, used: usize, partial: usize, conn: &Conn) -> (usize, usize) {
    let others = used - conn.counted;
    let fixed = others - (partial - conn.counted_partial);
    (room(budget, others), room(budget, fixed))
}

/// How long a connection must have sent nothing before it may be closed to make room.
const SILENT_AFTER: Duration = Duration::from_millis(200);

/// What every connection may hold from the budget's last quarter, buffers reused from other
/// connections included (up to 64 KiB each, `buf.rs`): a request and its answer of about
/// 100 KiB each are served while large ones hold the rest.
const SMALL_HOLD: usize = 256 * 1024;

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Connection `i` has something for the dispatcher (`Server::hand_off`, after the turn). Out of
/// line: a request answered inline never comes here.
#[cold]
#[inline(never)]
fn note_handoff(handoffs: &mut Vec<usize>, i: usize) {
    handoffs.push(i);
}

/// The debug line of the automatic memory budget.
#[cold]
#[inline(never)]
fn budget_line(log: &mut crate::log::Log, budget: usize) {
    let mut msg = String::from("memory budget: ");
    msg.push_str(itoa::Buffer::new().format(budget));
    msg.push_str(" bytes (half the instance's limit)");
    log.line(Level::Debug, None, &msg);
}

/// The end of a process whose function did not initialize: the reason at ERROR, exit code 1.
#[cold]
#[inline(never)]
fn init_failed(log: &mut crate::log::Log, why: &str) -> u8 {
    log.line(Level::Error, None, why);
    log.drain(Duration::from_secs(1));
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_room_keeps_the_last_quarter_for_small_requests() {
        let budget = 1 << 20;
        // Alone: three quarters for a large request.
        assert_eq!(room(budget, 0), 786_432);
        // The large share taken: a small request still gets SMALL_HOLD.
        assert_eq!(room(budget, 786_432), SMALL_HOLD);
        assert_eq!(room(budget, 700_000), SMALL_HOLD);
        // Never more than what the whole budget leaves.
        assert_eq!(room(budget, budget - 1000), 1000);
        assert_eq!(room(budget, budget), 0);
        assert_eq!(room(budget, budget + 5), 0);
        assert_eq!(room(budget, 900_000), budget - 900_000);
        // A budget under SMALL_HOLD: all of it, never past it.
        assert_eq!(room(10_000, 0), 10_000);
        assert_eq!(room(10_000, 9_000), 1_000);
    }
}
