//! The wait queue: requests that found every candidate out of quota, waiting for capacity to
//! return (the pipeline's wait step, `pipeline::wait`, decides who waits and for how long).
//!
//! - one **line** per model name asked for (requests for one model share their candidates, so
//!   capacity freed for one of them is capacity for the next); a request for another model
//!   never waits behind them
//! - within a line, one **lane** per client key, first in first out
//! - lanes take turns by weight (stride scheduling): each lane has a pass, the lane with the
//!   lowest pass is at the front, and serving one of its requests adds `STRIDE / weight` to it,
//!   so two always-waiting keys of weights 3 and 1 are served 3 : 1. A lane that empties is
//!   forgotten: a key that comes back starts level with the others, it banks no credit
//! - only the request at the front of a line may try for capacity: the others sleep until they
//!   are at the front, so capacity that returns goes to waiting requests in their turn, one at a
//!   time, never to all of them racing
//! - bounded: at most `max_queued` requests wait at once, over every line
//! - a [`Ticket`] is a request's place; dropping it (the client went away, the request's future
//!   was dropped) leaves the queue and hands the turn on

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::telemetry::QueueMetrics;

/// What a lane's pass grows by for each request served, divided by its weight.
const STRIDE: u64 = 1 << 20;

/// One waiting request.
#[derive(Debug)]
struct Waiter {
    seq: u64,
    turn: Arc<Notify>,
}

/// One client key's waiting requests, oldest first.
#[derive(Debug)]
struct Lane {
    weight: u32,
    pass: u64,
    waiters: VecDeque<Waiter>,
}

/// The requests waiting for one model.
#[derive(Debug, Default)]
struct Line {
    lanes: HashMap<String, Lane>,
    /// the pass of the lane served last: where a lane that joins starts
    vtime: u64,
    /// when the front request last learned capacity would return
    recovery: Option<Instant>,
}

impl Line {
    /// The front: the lane with the lowest pass (its oldest request first on a tie), its
    /// oldest request.
    fn front(&self) -> Option<(&str, &Waiter)> {
        self.lanes
            .iter()
            .filter_map(|(k, l)| l.waiters.front().map(|w| (l.pass, w.seq, k.as_str(), w)))
            .min_by_key(|(pass, seq, _, _)| (*pass, *seq))
            .map(|(_, _, k, w)| (k, w))
    }

    fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }
}

#[derive(Debug, Default)]
struct State {
    lines: HashMap<String, Line>,
    waiting: usize,
    next_seq: u64,
}

/// The queue is full: no place was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// How a wait ended (the `result` label of `freeway_queue_waited_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// capacity came back in time: the request was served
    Served,
    /// its wait bound would pass before capacity returns
    Refused,
    /// the client went away while it waited
    Abandoned,
}

impl Left {
    pub fn as_str(self) -> &'static str {
        match self {
            Left::Served => "served",
            Left::Refused => "refused",
            Left::Abandoned => "abandoned",
        }
    }
}

/// Every line of waiting requests.
pub struct WaitQueue {
    state: Mutex<State>,
    metrics: QueueMetrics,
}

impl std::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitQueue").field("waiting", &self.waiting()).finish_non_exhaustive()
    }
}

impl WaitQueue {
    pub fn new(metrics: QueueMetrics) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State::default()), metrics })
    }

    /// Requests waiting now, over every line.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting
    }

    /// Whether requests for `line` are waiting (a new one then queues behind them rather than
    /// take capacity before them).
    pub fn busy(&self, line: &str) -> bool {
        self.state.lock().lines.get(line).is_some_and(|l| !l.is_empty())
    }

    /// When the front of `line` last learned capacity would return, if it did.
    pub fn recovery(&self, line: &str) -> Option<Instant> {
        self.state.lock().lines.get(line).and_then(|l| l.recovery)
    }

    /// Take a place at the back of `lane` (a client key) in `line` (a model), with the key's
    /// `weight`; `Err(Full)` when `max_queued` requests wait already.
    pub fn join(self: &Arc<Self>, line: &str, lane: &str, weight: u32, max_queued: usize) -> Result<Ticket, Full> {
        let turn = Arc::new(Notify::new());
        let mut s = self.state.lock();
        if s.waiting >= max_queued {
            return Err(Full);
        }
        s.waiting += 1;
        s.next_seq += 1;
        let seq = s.next_seq;
        let l = s.lines.entry(line.to_owned()).or_default();
        let vtime = l.vtime;
        let lane_entry =
            l.lanes.entry(lane.to_owned()).or_insert_with(|| Lane { weight, pass: vtime, waiters: VecDeque::new() });
        lane_entry.weight = weight.max(1);
        lane_entry.waiters.push_back(Waiter { seq, turn: turn.clone() });
        // the new request may be at the front at once (its lane was not waiting)
        if let Some((_, w)) = l.front() {
            w.turn.notify_one();
        }
        drop(s);
        self.metrics.joined();
        Ok(Ticket {
            queue: self.clone(),
            line: line.to_owned(),
            lane: lane.to_owned(),
            seq,
            turn,
            joined: Instant::now(),
            left: false,
        })
    }

    /// Remove `ticket`'s request; when it was served, its lane's pass moves on. The (possibly new)
    /// front is told it is its turn.
    fn leave(&self, ticket: &Ticket, how: Left) {
        let mut s = self.state.lock();
        let Some(line) = s.lines.get_mut(&ticket.line) else { return };
        let Some(lane) = line.lanes.get_mut(&ticket.lane) else { return };
        let Some(pos) = lane.waiters.iter().position(|w| w.seq == ticket.seq) else { return };
        lane.waiters.remove(pos);
        if how == Left::Served {
            line.vtime = lane.pass;
            lane.pass = lane.pass.saturating_add(STRIDE / u64::from(lane.weight.max(1)));
        }
        if lane.waiters.is_empty() {
            line.lanes.remove(&ticket.lane);
        }
        if line.is_empty() {
            s.lines.remove(&ticket.line);
        } else if let Some((_, w)) = line.front() {
            w.turn.notify_one();
        }
        s.waiting = s.waiting.saturating_sub(1);
        drop(s);
        self.metrics.left(how.as_str(), ticket.joined.elapsed());
    }

    fn is_front(&self, ticket: &Ticket) -> bool {
        let s = self.state.lock();
        s.lines
            .get(&ticket.line)
            .and_then(Line::front)
            .is_some_and(|(lane, w)| lane == ticket.lane && w.seq == ticket.seq)
    }

    fn note_recovery(&self, line: &str, at: Instant) {
        if let Some(l) = self.state.lock().lines.get_mut(line) {
            l.recovery = Some(at);
        }
    }
}

/// A request's place in the queue. Dropped before [`Ticket::leave`], it leaves as abandoned.
#[derive(Debug)]
pub struct Ticket {
    queue: Arc<WaitQueue>,
    line: String,
    lane: String,
    seq: u64,
    turn: Arc<Notify>,
    joined: Instant,
    left: bool,
}

impl Ticket {
    /// Wait until this request is at the front of its line.
    pub async fn turn(&self) {
        loop {
            // a turn told before we wait is kept by the Notify (one permit), so none is lost
            let told = self.turn.notified();
            if self.queue.is_front(self) {
                return;
            }
            told.await;
        }
    }

    /// Whether this request is at the front of its line now.
    pub fn is_front(&self) -> bool {
        self.queue.is_front(self)
    }

    /// Capacity for this line is expected back at `at` (what the front learned last).
    pub fn note_recovery(&self, at: Instant) {
        self.queue.note_recovery(&self.line, at);
    }

    /// How long this request has waited so far.
    pub fn waited(&self) -> Duration {
        self.joined.elapsed()
    }

    /// Leave the queue: served or refused.
    pub fn leave(mut self, how: Left) {
        self.left = true;
        self.queue.leave(&self, how);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.left {
            self.left = true;
            self.queue.leave(self, Left::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Arc<WaitQueue> {
        WaitQueue::new(QueueMetrics::detached())
    }

    /// Serve the line's front `n` times, keeping every lane full; the lanes served, in order.
    fn serve_fronts(q: &Arc<WaitQueue>, tickets: &mut Vec<(String, Ticket)>, n: usize, refill: bool) -> Vec<String> {
        let mut served = Vec::new();
        for _ in 0..n {
            let Some(i) = tickets.iter().position(|(_, t)| t.is_front()) else { break };
            let (lane, t) = tickets.swap_remove(i);
            t.leave(Left::Served);
            if refill {
                let weight = if lane == "a" { 3 } else { 1 };
                tickets.push((lane.clone(), q.join("m", &lane, weight, 10_000).unwrap()));
            }
            served.push(lane);
        }
        served
    }

    #[tokio::test(start_paused = true)]
    async fn within_a_key_requests_are_served_first_in_first_out() {
        let q = queue();
        let tickets: Vec<Ticket> = (0..5).map(|_| q.join("m", "a", 1, 10).unwrap()).collect();
        let mut order = Vec::new();
        let mut left: Vec<(usize, Ticket)> = tickets.into_iter().enumerate().collect();
        while !left.is_empty() {
            let i = left.iter().position(|(_, t)| t.is_front()).unwrap();
            let (n, t) = left.remove(i);
            // the front's turn has come; the others' has not
            tokio::time::timeout(Duration::from_millis(1), t.turn()).await.unwrap();
            for (_, other) in &left {
                assert!(tokio::time::timeout(Duration::from_millis(1), other.turn()).await.is_err());
            }
            t.leave(Left::Served);
            order.push(n);
        }
        assert_eq!(order, [0, 1, 2, 3, 4]);
        assert_eq!(q.waiting(), 0);
        assert!(!q.busy("m"));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_share_freed_capacity_by_their_weights() {
        let q = queue();
        let mut tickets = Vec::new();
        for _ in 0..20 {
            tickets.push(("a".to_owned(), q.join("m", "a", 3, 10_000).unwrap()));
            tickets.push(("b".to_owned(), q.join("m", "b", 1, 10_000).unwrap()));
        }
        let served = serve_fronts(&q, &mut tickets, 1000, true);
        let a = served.iter().filter(|l| *l == "a").count();
        #[allow(clippy::cast_precision_loss)]
        let share = a as f64 / served.len() as f64;
        assert!((share - 0.75).abs() < 0.075, "a's share {share} (weights 3 : 1)");
        // and over any short stretch too: b is never passed over for long
        let longest = served.split(|l| l == "b").map(<[String]>::len).max().unwrap_or(0);
        assert!(longest <= 4, "{served:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_that_comes_back_banks_no_credit() {
        let q = queue();
        let mut tickets = Vec::new();
        for _ in 0..10 {
            tickets.push(("b".to_owned(), q.join("m", "b", 1, 100).unwrap()));
        }
        serve_fronts(&q, &mut tickets, 5, false);
        // `a` joins late: it takes turns with `b` from now on, it is not owed the five served
        for _ in 0..5 {
            tickets.push(("a".to_owned(), q.join("m", "a", 1, 100).unwrap()));
        }
        let served = serve_fronts(&q, &mut tickets, 4, false);
        assert_eq!(served.iter().filter(|l| *l == "a").count(), 2, "{served:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_ticket_leaves_the_queue_and_the_next_is_served() {
        let metrics = QueueMetrics::detached();
        let q = WaitQueue::new(metrics.clone());
        let first = q.join("m", "a", 1, 10).unwrap();
        let second = q.join("m", "a", 1, 10).unwrap();
        let waiter = tokio::spawn(async move {
            second.turn().await;
            second.leave(Left::Served);
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the second waits behind the first");
        assert_eq!(metrics.waiting(), 2);
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert_eq!(q.waiting(), 0);
        assert_eq!(metrics.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded_over_every_line() {
        let q = queue();
        let a = q.join("m", "a", 1, 2).unwrap();
        let _b = q.join("other", "b", 1, 2).unwrap();
        assert_eq!(q.join("m", "c", 1, 2).err(), Some(Full));
        a.leave(Left::Refused);
        assert!(q.join("m", "c", 1, 2).is_ok(), "a place freed");
    }

    #[tokio::test(start_paused = true)]
    async fn lines_are_independent() {
        let q = queue();
        let _m = q.join("m", "a", 1, 10).unwrap();
        let other = q.join("other", "a", 1, 10).unwrap();
        assert!(other.is_front(), "a request for another model does not wait behind m's");
        other.note_recovery(Instant::now() + Duration::from_secs(2));
        assert_eq!(q.recovery("other"), Some(Instant::now() + Duration::from_secs(2)));
        assert_eq!(q.recovery("m"), None);
    }
}
