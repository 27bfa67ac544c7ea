//! How other threads hand work back to the loop: a mailbox and the `eventfd` that wakes the
//! loop's `epoll_wait` (`sys::EventFd`; mio allows one `Waker` per poll, and the stop handle
//! has it). Workers post their answers, streams their news; the loop
//! takes all the mail at once. Made when first needed: a function that neither streams nor runs
//! concurrently never opens one.

use std::io;
use std::sync::Mutex;

use mio::{Interest, Registry, Token};

use crate::sys::EventFd;

/// Mail for the loop, and the waker that tells it.
pub(crate) struct Mailbox<M> {
    mail: Mutex<Vec<M>>,
    waker: EventFd,
}

/// A connection, as mail names it: its slot, and which connection in that slot (a slot is
/// reused once its connection closes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub slot: usize,
    pub id: u64,
}

impl<M> Mailbox<M> {
    /// A mailbox whose mail wakes the loop with `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Mailbox<M>> {
        let mut waker = EventFd::new()?;
        registry.register(&mut waker, token, Interest::READABLE)?;
        Ok(Mailbox {
            mail: Mutex::new(Vec::new()),
            waker,
        })
    }

    /// Posts `m`; wakes the loop if the mailbox was empty (else it has been woken already).
    pub fn post(&self, m: M) {
        let mut mail = self.mail.lock().unwrap_or_else(|p| p.into_inner());
        mail.push(m);
        let first = mail.len() == 1;
        drop(mail);
        if first {
            self.waker.notify();
        }
    }

    /// Takes all the mail into `into` (empty; its capacity goes back for the next mail).
    pub fn take(&self, into: &mut Vec<M>) {
        self.waker.clear();
        let mut mail = self.mail.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *mail, into);
    }
}
