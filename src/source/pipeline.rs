//! The request pipeline of windowed reads: listing requests leave in the order they were
//! queued, at most [`CONCURRENCY`] at a time under the client's shared rate limiter, and each
//! answer waits, under the tag it was queued with, until the reader asks for it.
//!
//! Sending in queue order keeps the rate limit busy: the requests of the windows ahead are
//! queued behind the current window's pages, so the limiter never idles for a round trip at a
//! window boundary. Handing answers out by tag, not in arrival order, means nothing queued is
//! ever thrown away: when a window must be cut into parts that are read before the windows
//! whose first pages are already on the wire, those answers simply wait for their turn.

use std::collections::{HashMap, HashSet, VecDeque};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::error::Result;

/// Listing requests in flight at once.
pub const CONCURRENCY: usize = 4;

/// The bodies answering one listing request (more than one when a 502 made the client fetch
/// it in smaller pieces), and the page size that worked.
pub type Fetched = (Vec<bytes::Bytes>, u32);

/// Names one request: which read of which window, and from which offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The window (each pending window has its own id).
    pub window: u64,
    /// Which read of that window (a window that cannot be cut is read again).
    pub pass: u32,
    pub skip: u64,
}

/// Requests queued, in flight and answered. `S` is what a request needs to be sent.
pub struct Pipeline<'r, S> {
    queue: VecDeque<(Tag, S)>,
    in_flight: FuturesUnordered<BoxFuture<'r, (Tag, Result<Fetched>)>>,
    answers: HashMap<Tag, Result<Fetched>>,
    /// Every tag queued and not yet taken.
    known: HashSet<Tag>,
    /// Windows whose answers are no longer wanted.
    discarded: HashSet<u64>,
}

impl<'r, S> Pipeline<'r, S> {
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            in_flight: FuturesUnordered::new(),
            answers: HashMap::new(),
            known: HashSet::new(),
            discarded: HashSet::new(),
        }
    }

    /// Queues a request unless one with this tag is already queued (a look-ahead may have
    /// asked for it first).
    pub fn push(&mut self, tag: Tag, request: S) {
        if self.known.insert(tag) {
            self.queue.push_back((tag, request));
        }
    }

    /// The answer to `tag`, if it arrived and was not taken yet.
    pub fn answer(&self, tag: Tag) -> Option<&Result<Fetched>> {
        self.answers.get(&tag)
    }

    /// Forgets every request of `window`: those not sent yet are not sent, and answers are
    /// dropped now or when they arrive. A look-ahead may have queued pages for a window that
    /// turns out to be read differently.
    pub fn discard(&mut self, window: u64) {
        self.queue.retain(|(tag, _)| tag.window != window);
        self.answers.retain(|tag, _| tag.window != window);
        self.known.retain(|tag| tag.window != window);
        self.discarded.insert(window);
    }

    /// The answer to the request `tag`, queueing `request` under it first unless a look-ahead
    /// already did. While it is not there, the queue keeps being sent (`send` turns a request
    /// into its future) and the other answers are kept for whoever asks for them later.
    pub async fn fetch(
        &mut self,
        tag: Tag,
        request: S,
        send: impl Fn(S) -> BoxFuture<'r, Result<Fetched>>,
    ) -> Result<Fetched> {
        self.push(tag, request);
        loop {
            if let Some(answer) = self.answers.remove(&tag) {
                self.known.remove(&tag);
                return answer;
            }
            while self.in_flight.len() < CONCURRENCY
                && let Some((queued, request)) = self.queue.pop_front()
            {
                let future = send(request);
                self.in_flight
                    .push(Box::pin(async move { (queued, future.await) }));
            }
            // `tag` is queued, in flight or answered, so something is in flight here.
            let (answered, result) = self.in_flight.next().await.ok_or_else(|| {
                std::io::Error::other(format!("request {tag:?} was lost by the pipeline"))
            })?;
            if !self.discarded.contains(&answered.window) {
                self.answers.insert(answered, result);
            }
        }
    }
}
