//! The dispatcher: where each call runs. Owned by the server, between the connections (which
//! report complete requests and take answers, `call.rs`) and the function (`invoke.rs`).
//!
//! - **Inline** (the default, `SCF_LEAN_CONCURRENCY=1`): the call runs on the loop's thread,
//!   borrowing the request where it lies; no thread, no lock, no copy.
//! - **Workers** (`SCF_LEAN_CONCURRENCY=N` > 1, for a function made with
//!   [`concurrent`](crate::concurrent)): up to N calls at once, each on a thread of a pool with
//!   an instance of the function of its own ([`Function::worker`]). The connection's read
//!   buffer and output buffers move to the worker in a [`Parcel`] and back with the answer —
//!   moved, not copied; the head is parsed again there (a few hundred nanoseconds). A call's log
//!   lines come back with it and the loop writes them, so a worker never blocks on the log.
//!   Calls past N wait in order on the loop.
//! - **Streams**: a streamed answer's producer runs on a stream thread ([`Pool`]), sending
//!   through a [`Pipe`] that the connection empties; the first stream starts the first thread.
//!
//! Mail from workers and streams wakes the loop through two mailboxes (`wake.rs`), opened the
//! first time they are needed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use mio::{Registry, Token};

use crate::call::{Answer, Budget, Call, Cx, Parcel, Service, Shared};
use crate::config::{Config, MAX_HEADERS};
use crate::error::Reject;
use crate::log::{Level, Log};
use crate::pool::Pool;
use crate::request::parse_head;
use crate::response::{Output, Persist};
use crate::stream::{Pipe, Producer};
use crate::wake::{Key, Mailbox};
use crate::{Function, invoke};

/// The tokens the mailboxes wake the loop with.
pub(crate) const STREAM_MAIL: Token = Token(usize::MAX - 3);
pub(crate) const WORKER_MAIL: Token = Token(usize::MAX - 4);

/// A function instance on a worker, and what a call there works with.
pub(crate) struct Worker {
    f: Box<dyn Function + Send>,
    shared: Shared,
}

/// A worker's answer, back for the loop.
pub(crate) struct Done {
    pub key: Key,
    pub parcel: Box<Parcel>,
    worker: Option<Box<Worker>>,
}

/// Where the server's calls run: see the module's documentation.
/// The memory budget as calls on workers see it (`call::Budget`).
#[derive(Default)]
pub(crate) struct Ledger {
    /// Bytes the answers of calls on workers hold that the server has not counted yet: a call
    /// checks the budget against them, so N calls in flight keep within it too.
    claims: AtomicUsize,
    /// What all connections hold, as the server last published it (`Server::mirror_used`).
    used: AtomicUsize,
}

impl Ledger {
    /// Publishes what all connections hold (`Server::mirror_used`).
    pub fn publish(&self, used: usize) {
        self.used.store(used, Ordering::Release);
    }
}

pub(crate) struct Dispatch<F> {
    f: F,
    config: Config,
    /// Calls run on workers (`SCF_LEAN_CONCURRENCY` > 1 and the function can make instances).
    concurrent: bool,
    /// Idle instances; `made` in all, at most `config.concurrency`.
    idle: Vec<Worker>,
    made: usize,
    /// Calls waiting for a worker.
    waiting: VecDeque<(Key, Box<Parcel>)>,
    workers: Option<Pool>,
    streams: Option<Pool>,
    stream_mail: Option<Arc<Mailbox<Key>>>,
    worker_mail: Option<Arc<Mailbox<Done>>>,
    /// The budget as the calls on workers see it, made with the first worker.
    budget: Option<Arc<Ledger>>,
    /// Connections whose call was lost with a worker that could not start: the server closes
    /// them.
    pub lost: Vec<Key>,
}

impl<F: Function> Dispatch<F> {
    /// A dispatcher for `f`. With `SCF_LEAN_CONCURRENCY` > 1 it asks the function for a first
    /// instance for a worker; a function that gives none is served inline, and the log says so.
    pub fn new(f: F, config: &Config, log: &mut Log) -> Dispatch<F> {
        let mut d = Dispatch {
            f,
            config: config.clone(),
            concurrent: false,
            idle: Vec::new(),
            made: 0,
            waiting: VecDeque::new(),
            workers: None,
            streams: None,
            stream_mail: None,
            worker_mail: None,
            lost: Vec::new(),
            budget: None,
        };
        if config.concurrency > 1 {
            d.first_worker(log);
        }
        d
    }

    /// With `SCF_LEAN_CONCURRENCY` > 1: the first instance for a worker, if the function makes
    /// them. Out of line: the default start does not carry it.
    #[cold]
    #[inline(never)]
    fn first_worker(&mut self, log: &mut Log) {
        match self.make_worker() {
            Some(w) => {
                self.idle.push(w);
                self.concurrent = true;
                self.budget = Some(Arc::default());
            }
            None => not_concurrent(log, self.config.concurrency),
        }
    }

    fn make_worker(&mut self) -> Option<Worker> {
        let f = self.f.worker()?;
        self.made += 1;
        Some(Worker {
            f,
            shared: Shared::new(self.config.clone()),
        })
    }

    /// The function served (for the fuzz harness, which checks what it was called with).
    #[cfg(feature = "fuzzing")]
    pub fn function(&self) -> &F {
        &self.f
    }

    /// Sends connection `key`'s request to a worker, or queues it until one is free.
    #[cold]
    #[inline(never)]
    pub fn send_away(&mut self, registry: &Registry, key: Key, mut parcel: Box<Parcel>) {
        parcel.used = self.ledger().used.load(Ordering::Acquire);
        self.waiting.push_back((key, parcel));
        self.start_waiting(registry);
    }

    /// Takes back connection `key`'s call if it still waits for a worker (its client left).
    #[cold]
    #[inline(never)]
    pub fn cancel(&mut self, key: Key) -> Option<Box<Parcel>> {
        let at = self.waiting.iter().position(|(k, _)| *k == key)?;
        self.waiting.remove(at).map(|(_, p)| p)
    }

    /// Starts waiting calls while instances are free or may be made.
    fn start_waiting(&mut self, registry: &Registry) {
        while !self.waiting.is_empty() {
            let worker = match self.idle.pop() {
                Some(w) => w,
                None if self.made < self.config.concurrency => match self.make_worker() {
                    Some(w) => w,
                    None => return,
                },
                None => return,
            };
            let Some((key, parcel)) = self.waiting.pop_front() else {
                self.idle.push(worker);
                return;
            };
            if self.worker_mail.is_none() {
                match Mailbox::new(registry, WORKER_MAIL) {
                    Ok(m) => self.worker_mail = Some(Arc::new(m)),
                    Err(_) => {
                        // No eventfd: the call waits for the next one to try.
                        self.idle.push(worker);
                        self.waiting.push_front((key, parcel));
                        return;
                    }
                }
            }
            let mail = self.worker_mail.clone();
            let ledger = self.ledger();
            let pool = self
                .workers
                .get_or_insert_with(|| Pool::new("scf-lean worker", usize::MAX));
            // The task is handed back if no thread can start: its call is answered 503.
            let task = Box::new(move || {
                let done = work(key, parcel, Box::new(worker), &ledger);
                if let Some(mail) = mail {
                    mail.post(done);
                }
            });
            if pool.run(task).is_err() {
                self.made -= 1;
                // The parcel went with the task: the connection gets no answer back. It is
                // closed when the server next looks at answers (`Dispatch::lost`).
                self.lost.push(key);
            }
        }
    }

    /// Where the server publishes what all connections hold, for the calls on workers. Out of
    /// line: a server that runs no workers never asks.
    #[cold]
    #[inline(never)]
    pub fn ledger(&self) -> Arc<Ledger> {
        self.budget.clone().unwrap_or_default()
    }

    /// Gives back what an answer claimed (`Cx::claims`), once the server has counted it.
    pub fn counted(&self, claimed: usize) {
        if let Some(b) = &self.budget {
            b.claims.fetch_sub(claimed, Ordering::AcqRel);
        }
    }

    /// Takes the workers' answers into `into`, and starts waiting calls on the instances
    /// they free.
    pub fn answers(&mut self, registry: &Registry, into: &mut Vec<Done>) {
        if let Some(m) = &self.worker_mail {
            m.take(into);
        }
        for done in into.iter_mut() {
            if let Some(w) = done.worker.take() {
                self.idle.push(*w);
            }
        }
        self.start_waiting(registry);
    }

    /// Starts a stream's producer on a stream thread; its pipe, or `None` if none could start.
    #[cold]
    #[inline(never)]
    pub fn start_stream(
        &mut self,
        registry: &Registry,
        key: Key,
        producer: Producer,
        request_id: Option<Box<str>>,
        chunked: bool,
    ) -> Option<Arc<Pipe>> {
        if self.stream_mail.is_none() {
            self.stream_mail = Some(Arc::new(Mailbox::new(registry, STREAM_MAIL).ok()?));
        }
        let mail = self.stream_mail.clone()?;
        let wake = Box::new(move || mail.post(key));
        let pipe = Arc::new(Pipe::new(self.config.stream_buffer_bytes, chunked, wake));
        let (level, format) = (self.config.log_level, self.config.log_format);
        let p = pipe.clone();
        let task = Box::new(move || {
            let mut log = Log::new(level, format);
            invoke::produce(producer, p, request_id.as_deref(), &mut log);
            log.drain(std::time::Duration::from_millis(100));
        });
        let max = self.config.max_streams;
        let pool = self
            .streams
            .get_or_insert_with(|| Pool::new("scf-lean stream", max));
        pool.run(task).ok()?;
        Some(pipe)
    }

    /// Takes the streams' news into `into`: the connections whose streams have bytes or ended.
    pub fn stream_news(&mut self, into: &mut Vec<Key>) {
        if let Some(m) = &self.stream_mail {
            m.take(into);
        }
    }
}

impl<F: Function> Service for Dispatch<F> {
    #[inline(always)]
    fn inline(&self) -> bool {
        !self.concurrent
    }

    #[inline(always)]
    fn call(&mut self, call: Call<'_>, out: &mut Output, cx: &mut Cx<'_>) -> Answer {
        invoke::run(&mut self.f, call, out, cx)
    }
}

/// A call on a worker: the head parsed again from the moved buffer, the function called as on
/// the loop, the log lines packed with the answer.
fn work(key: Key, mut parcel: Box<Parcel>, mut worker: Box<Worker>, ledger: &Ledger) -> Done {
    let w = &mut *worker;
    w.shared.date.update(SystemTime::now());
    let p = &mut *parcel;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let max = w.shared.config.max_headers.min(MAX_HEADERS);
    let head_bytes = &p.input[p.start..p.start + p.head_len];
    let mut cx = w.shared.cx(Instant::now(), p.closing);
    (cx.room, cx.room_max) = (p.room, p.room_max);
    cx.worker = Some(Budget {
        claims: &ledger.claims,
        used: &ledger.used,
        used_then: p.used,
    });
    let answer = match parse_head(head_bytes, &mut headers[..max], cx.config, p.arrival) {
        Ok(Some(head)) => {
            let call = Call {
                input: &p.input,
                head: &head,
                headers: &headers,
                body: p.body.clone(),
                arrival: p.arrival,
            };
            invoke::run_on_worker(&mut *w.f, call, &mut p.out, &mut cx)
        }
        // It parsed on the loop: the bytes did not move. Never seen; answered all the same.
        _ => {
            let mut resp = p.out.response();
            resp.set_error(&Reject::BadRequest("request head changed").to_error());
            p.out
                .prepare(resp, &p.input, cx.date.as_bytes(), true, Persist::Close);
            Answer::Whole { keep: false }
        }
    };
    p.grow = cx.grow;
    p.claimed = cx.claimed;
    p.answer = Some(answer);
    w.shared.log.take_lines(&mut p.lines);
    Done {
        key,
        parcel,
        worker: Some(worker),
    }
}

#[cold]
#[inline(never)]
fn not_concurrent(log: &mut Log, n: usize) {
    let mut msg = String::from("SCF_LEAN_CONCURRENCY is ");
    msg.push_str(itoa::Buffer::new().format(n));
    msg.push_str(
        ", but the function runs one call at a time: make it with scf_lean::concurrent(…) to run calls on worker threads",
    );
    log.line(Level::Warn, None, &msg);
}
