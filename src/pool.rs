//! Threads for tasks that must not hold the loop — a stream's producer, a call on a worker:
//! each task gets a thread of its own, started when none is idle and kept afterwards (up to
//! [`IDLE`] for the next task), up to the pool's bound; past it a task waits for a thread to
//! be free. Nothing is started before the first task.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long an idle thread waits for the next task before it ends.
const IDLE: Duration = Duration::from_secs(60);

/// A task: anything that runs once on a thread.
pub(crate) type Task = Box<dyn FnOnce() + Send>;

/// A set of threads that run tasks, one at a time each.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    name: &'static str,
    /// The most threads at once.
    max: usize,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

struct State {
    queue: VecDeque<Task>,
    /// Threads waiting for a task.
    idle: usize,
    /// Threads alive.
    threads: usize,
}

impl Pool {
    pub fn new(name: &'static str, max: usize) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                }),
                ready: Condvar::new(),
            }),
            name,
            max: max.max(1),
        }
    }

    /// Runs `task` on a thread of the pool: an idle one, else a new one, else (at the bound)
    /// the first to be free.
    ///
    /// # Errors
    /// No thread could be started (the process's thread limit) and none is alive to take it:
    /// the task is dropped unrun.
    pub fn run(&self, task: Task) -> io::Result<()> {
        let mut s = self.shared.lock();
        s.queue.push_back(task);
        if s.idle >= s.queue.len() || s.threads >= self.max {
            drop(s);
            self.shared.ready.notify_one();
            return Ok(());
        }
        // Counted before it starts, so that a task queued meanwhile does not start another.
        s.threads += 1;
        drop(s);
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || shared.serve());
        if let Err(e) = spawned {
            let mut s = self.shared.lock();
            s.threads -= 1;
            // The threads alive take it in turn; with none, it cannot run. (Only the loop's
            // thread queues tasks: the last one is this one unless a thread took it.)
            if s.threads == 0 {
                s.queue.pop_back();
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pool thread: runs tasks until none came for [`IDLE`].
    fn serve(&self) {
        let mut s = self.lock();
        loop {
            if let Some(task) = s.queue.pop_front() {
                drop(s);
                task();
                s = self.lock();
                continue;
            }
            s.idle += 1;
            let (next, waited) = self
                .ready
                .wait_timeout_while(s, IDLE, |s| s.queue.is_empty())
                .unwrap_or_else(|p| p.into_inner());
            s = next;
            s.idle -= 1;
            if waited.timed_out() && s.queue.is_empty() {
                s.threads -= 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn test_tasks_run_at_once_each_on_a_thread_and_threads_are_reused() {
        let pool = Pool::new("test-pool", 8);
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        // Three tasks that wait for each other: they can only finish if they run at once.
        for i in 0..3 {
            let (tx, gate) = (tx.clone(), gate.clone());
            pool.run(Box::new(move || {
                let (open, cv) = &*gate;
                let mut o = open.lock().unwrap();
                if i == 2 {
                    *o = true;
                    cv.notify_all();
                }
                let (o, _) = cv
                    .wait_timeout_while(o, Duration::from_secs(10), |o| !*o)
                    .unwrap();
                tx.send((*o, std::thread::current().id())).unwrap();
            }))
            .unwrap();
        }
        let mut ids: Vec<_> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(20)).unwrap())
            .inspect(|(opened, _)| assert!(opened))
            .map(|(_, id)| id)
            .collect();
        ids.sort_by_key(|id| format!("{id:?}"));
        ids.dedup();
        assert_eq!(ids.len(), 3, "one thread each");
        // Idle now: the next task goes to one of them, no new thread.
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while pool.shared.lock().idle < 3 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let tx2 = tx.clone();
        pool.run(Box::new(move || {
            tx2.send((true, std::thread::current().id())).unwrap();
        }))
        .unwrap();
        let (_, id) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(ids.contains(&id));
    }
}

#[cfg(test)]
mod bound {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn test_past_its_bound_a_task_waits_for_a_thread() {
        let pool = Pool::new("test-bound", 2);
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        for i in 0..5 {
            let (tx, gate) = (tx.clone(), gate.clone());
            pool.run(Box::new(move || {
                let (open, cv) = &*gate;
                let o = open.lock().unwrap();
                let _ = cv
                    .wait_timeout_while(o, Duration::from_secs(10), |o| !*o)
                    .unwrap();
                tx.send(i).unwrap();
            }))
            .unwrap();
        }
        // The two threads take a task each (once they have started); three wait.
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while pool.shared.lock().queue.len() > 3 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let s = pool.shared.lock();
        assert_eq!(
            (s.threads, s.queue.len()),
            (2, 3),
            "two threads, three tasks waiting"
        );
        drop(s);
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
        let mut done: Vec<i32> = (0..5)
            .map(|_| rx.recv_timeout(Duration::from_secs(20)).unwrap())
            .collect();
        done.sort();
        assert_eq!(done, [0, 1, 2, 3, 4]);
    }
}
