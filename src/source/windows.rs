//! Complete reads of `skip`/`limit` endpoints despite the API's `skip` cap of 10,000.
//!
//! The time range is cut into half-open windows `[a, b)`, asked for as `Gt = a − 1 ms` and
//! `Lt = b`, so every record lands in at least one window whatever the API's boundary
//! semantics. A window whose first page reports more records (`matched`) than `skip` can
//! reach is cut into adjacent parts, recursively and in order, so the windows complete left to
//! right and the caller can checkpoint each window's upper bound. The parts' first pages are
//! fetched together, so homing in on the dense months of a long history costs one round trip
//! per level.
//!
//! Inside a window the remaining page offsets are known from the first page and fetched
//! concurrently under the shared rate limiter, through one ordered pipeline ([`Pages`]) that
//! already holds the next window's requests while the current window's last pages are on the
//! wire, so the rate limit is not left unused for a round trip at every window boundary.
//!
//! A window is complete only when the distinct keys of one pass reach `matched` and `matched`
//! did not move while paging; otherwise a record moved out (its status changed) and shifted
//! the offsets, and the window is read again.
//! Records are emitted as they arrive; a re-read emits only keys not seen before.

use std::collections::{HashSet, VecDeque};

use futures_util::future::{self, BoxFuture};
use futures_util::stream::{self, FuturesOrdered, StreamExt};
use reqwest::Method;
use serde_json::value::RawValue;

use super::emitter::StreamEmitter;
use super::page::{self, Pagination};
use super::state::format_millis;
use super::streams::{Expansion, SKIP_CAP, StreamDef, Windowing};
use crate::client::{Client, Request};
use crate::error::{Error, Result};
use crate::protocol::now_millis;

/// Passes over one window before its instability is reported.
const MAX_PASSES: u32 = 4;
/// Page requests in flight inside one window.
const CONCURRENCY: usize = 4;
/// Parts a window too large to page is cut into. Their first pages are fetched together, so
/// finding the dense part of a long range costs one round trip per level, not one per part.
const FANOUT: i64 = 8;
/// Detail requests in flight (they are small and the rate limiter paces them).
const DETAIL_CONCURRENCY: usize = 8;

/// A half-open window `[lo, hi)` in epoch milliseconds; `hi = None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub lo: i64,
    pub hi: Option<i64>,
}

impl Window {
    /// Up to `parts` adjacent windows covering this one, or `None` for a single millisecond.
    /// An open tail is cut in two: closed at the current instant, and a new open tail after it.
    fn split_into(self, parts: i64) -> Option<Vec<Window>> {
        let Some(hi) = self.hi else {
            let now = now_millis();
            return (now > self.lo).then(|| {
                vec![
                    Window {
                        lo: self.lo,
                        hi: Some(now),
                    },
                    Window { lo: now, hi: None },
                ]
            });
        };
        let width = hi - self.lo;
        if width < 2 {
            return None;
        }
        let parts = parts.min(width);
        let bound =
            |i: i64| self.lo + (i128::from(width) * i128::from(i) / i128::from(parts)) as i64;
        Some(
            (0..parts)
                .map(|i| Window {
                    lo: bound(i),
                    hi: Some(bound(i + 1)),
                })
                .collect(),
        )
    }

    fn splittable(&self) -> bool {
        self.hi.is_none_or(|hi| hi - self.lo >= 2)
    }

    fn describe(&self) -> String {
        match self.hi {
            Some(hi) => format!("[{}, {})", format_millis(self.lo), format_millis(hi)),
            None => format!("[{}, now]", format_millis(self.lo)),
        }
    }
}

/// The bodies of a span of records, and the page size that worked for it.
type Fetched = (Vec<bytes::Bytes>, u32);

/// A window still to read, with its first page when that was fetched already.
type Pending = (Window, Option<Fetched>);

/// One listing request: `len` records of `window` from `skip`.
#[derive(Debug, Clone, Copy)]
struct Span {
    window: Window,
    skip: u64,
    len: u32,
    /// Whether to ask for the pagination object (`includePagination`).
    pagination: bool,
}

/// How a window is paged, judged from its first page.
enum Plan {
    /// `matched` records, fetched by these requests after the first page.
    Pages(u64, Vec<Span>),
    /// Too many records for one window: split it.
    TooLarge(u64),
    /// No pagination object: page until a short page.
    Unpaginated,
}

/// The listing requests of the windows being read, sent in order under the shared limiter
/// with at most [`CONCURRENCY`] in flight, and answered in the order they were queued.
///
/// A window's requests are queued before it is reached (see [`Pages::look_ahead`]) only while
/// nothing else can come first; anything unexpected (a re-read, a split, a budget cut) discards
/// that work instead of reordering it, so a window always consumes exactly its own answers.
struct Pages<'r> {
    queue: VecDeque<Span>,
    in_flight: FuturesOrdered<BoxFuture<'r, Result<Fetched>>>,
    /// The window whose requests were queued ahead of it, if any.
    ahead: Option<Window>,
}

impl<'r> Pages<'r> {
    fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            in_flight: FuturesOrdered::new(),
            ahead: None,
        }
    }

    /// Whether `window`'s requests were queued ahead of it. If not, whatever is queued belongs
    /// to another window and is dropped.
    fn reach(&mut self, window: Window) -> bool {
        let queued = self.ahead.take() == Some(window);
        if !queued {
            self.clear();
        }
        queued
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.in_flight = FuturesOrdered::new();
        self.ahead = None;
    }

    /// Queues the requests of the window after the current one: its first page, or, when that
    /// is known and the window can be paged, its remaining pages. Anything else (a malformed
    /// first page included) is left for when that window is read.
    fn look_ahead(&mut self, reader: &WindowedReader<'_>, next: &Pending) {
        match next {
            (window, None) => self.queue.push_back(reader.first_span(*window)),
            (window, Some((bodies, limit))) => {
                let Ok(first) = reader.parse(bodies) else {
                    return;
                };
                let Plan::Pages(_, spans) = reader.plan(*window, &first, *limit) else {
                    return;
                };
                self.queue.extend(spans);
            }
        }
        self.ahead = Some(next.0);
    }

    /// The answer to the oldest request, once it arrives; `None` when nothing is queued.
    async fn next(&mut self, reader: &'r WindowedReader<'_>) -> Option<Result<Fetched>> {
        while self.in_flight.len() < CONCURRENCY
            && let Some(span) = self.queue.pop_front()
        {
            self.in_flight.push_back(Box::pin(reader.fetch_span(span)));
        }
        self.in_flight.next().await
    }
}

/// What one pass over a window found.
enum Outcome {
    /// Too many records for one window: split it.
    TooLarge(u64),
    Complete,
}

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Every window was read.
    Finished,
    /// The per-sync budget of detail requests was reached; the last checkpoint stands.
    BudgetSpent,
}

/// What the reader tracks while it reads one window.
#[derive(Default)]
struct WindowKeys {
    /// Keys already emitted (or queued for details) from this window, across passes.
    seen: HashSet<String>,
    /// Distinct keys of the current pass, to prove the pass complete.
    pass: HashSet<String>,
    /// Keys whose details are to be fetched once the window is complete.
    queue: Vec<String>,
}

/// Fetching a detailed record for each listed record in a finished status.
pub struct Expander<'a> {
    pub expansion: Expansion,
    pub finished_statuses: &'a [String],
    /// Parameters sent with every detail request (media URLs).
    pub query: Vec<(String, String)>,
    /// Most detail requests this read may send.
    pub budget: Option<u64>,
}

pub struct WindowedReader<'a> {
    pub client: &'a Client,
    pub def: &'static StreamDef,
    pub windowing: Windowing,
    /// Parameters sent with every request (start bound, privacy, order).
    pub base_query: Vec<(String, String)>,
    pub page_size: u32,
    pub expander: Option<Expander<'a>>,
}

impl WindowedReader<'_> {
    /// Reads `[lo, hi)` window by window, then `[hi, now]` when `open_tail` is set, calling
    /// `on_complete` with the upper bound of each completed closed window, in order.
    pub async fn read(
        &self,
        lo: i64,
        hi: i64,
        open_tail: bool,
        emitter: &mut StreamEmitter<'_>,
        mut on_complete: impl FnMut(&mut StreamEmitter<'_>, i64) -> Result<()>,
    ) -> Result<Completion> {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        if lo < hi {
            pending.push_back((Window { lo, hi: Some(hi) }, None));
        }
        if open_tail {
            pending.push_back((
                Window {
                    lo: lo.max(hi),
                    hi: None,
                },
                None,
            ));
        }
        let mut estimated = false;
        let mut details_spent = 0u64;
        let mut pages = Pages::new();
        while let Some(current) = pending.pop_front() {
            let window = current.0;
            let mut keys = WindowKeys::default();
            let outcome = self
                .read_window(
                    current,
                    pending.front(),
                    &mut pages,
                    emitter,
                    !estimated,
                    &mut keys,
                )
                .await?;
            estimated = true;
            match outcome {
                Outcome::TooLarge(matched) => {
                    let Some(parts) = window.split_into(FANOUT) else {
                        return Err(Error::SkipCap(format!(
                            "The {} window {} holds {matched} records within one millisecond, more than the API's \
                             skip limit of {SKIP_CAP} can page through. Please report this to the connector's maintainers.",
                            self.def.name,
                            window.describe()
                        )));
                    };
                    tracing::debug!(
                        "{}: splitting {} ({matched} records)",
                        self.def.name,
                        window.describe()
                    );
                    let first_pages = future::try_join_all(
                        parts
                            .iter()
                            .map(|part| self.fetch_span(self.first_span(*part))),
                    )
                    .await?;
                    for (part, first_page) in parts.into_iter().zip(first_pages).rev() {
                        pending.push_front((part, Some(first_page)));
                    }
                }
                Outcome::Complete => {
                    if let Some(expander) = &self.expander {
                        let wanted = keys.queue.len() as u64;
                        if expander
                            .budget
                            .is_some_and(|cap| details_spent + wanted > cap)
                        {
                            // A window too big for what is left of the budget is narrowed until
                            // its details fit, so the budget is used up before the sync stops.
                            if expander.budget.is_some_and(|cap| details_spent < cap)
                                && wanted > 1
                                && let Some(halves) = window.split_into(2)
                            {
                                for half in halves.into_iter().rev() {
                                    pending.push_front((half, None));
                                }
                                continue;
                            }
                            tracing::warn!(
                                "{}: the budget of detail requests is spent ({details_spent} sent); \
                                 the next sync carries on from the last checkpoint",
                                self.def.name
                            );
                            return Ok(Completion::BudgetSpent);
                        }
                        details_spent += self.expand(expander, &keys.queue, emitter).await?;
                    }
                    if let Some(hi) = window.hi {
                        on_complete(emitter, hi)?;
                    }
                }
            }
        }
        Ok(Completion::Finished)
    }

    /// Fetches the detailed record of each key, concurrently, and emits them. A 404 means the
    /// record was deleted since it was listed: logged and skipped. Returns the requests sent.
    async fn expand(
        &self,
        expander: &Expander<'_>,
        keys: &[String],
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<u64> {
        let expansion = expander.expansion;
        let mut fetches = stream::iter(keys)
            .map(|key| {
                let mut query = expander.query.clone();
                query.push((expansion.id_param.to_owned(), key.clone()));
                async move {
                    (
                        key,
                        self.client
                            .execute(Request::get(expansion.path, query))
                            .await,
                    )
                }
            })
            .buffered(DETAIL_CONCURRENCY);
        let mut sent = 0;
        while let Some((key, response)) = fetches.next().await {
            let response = response?;
            sent += 1;
            match response.status {
                200..=299 => {
                    let record =
                        page::parse_object(&response.body, expansion.record_key, expansion.path)?;
                    emitter.record(record, now_millis())?;
                }
                404 => tracing::info!(
                    "{}: {key} was deleted before its details were fetched; skipped",
                    self.def.name
                ),
                _ => return Err(response.error(&Method::GET, expansion.path, 1)),
            }
        }
        Ok(sent)
    }

    /// Reads one window, pass after pass until one is complete. `next` is the window that
    /// follows, whose requests are queued behind this one's when nothing can come between.
    async fn read_window<'r>(
        &'r self,
        (window, mut first_page): Pending,
        next: Option<&Pending>,
        pages: &mut Pages<'r>,
        emitter: &mut StreamEmitter<'_>,
        estimate: bool,
        keys: &mut WindowKeys,
    ) -> Result<Outcome> {
        // What a look-ahead queued: the first page when there was none, else the other pages.
        let queued = pages.reach(window);
        let mut first_queued = queued && first_page.is_none();
        let mut rest_queued = queued && first_page.is_some();
        for pass in 1..=MAX_PASSES {
            let (first, limit) = match first_page.take() {
                Some(fetched) => fetched,
                None => {
                    if !std::mem::take(&mut first_queued) {
                        pages.queue.push_back(self.first_span(window));
                    }
                    // The pipeline holds nothing else, so its next answer is this first page.
                    match pages.next(self).await {
                        Some(fetched) => fetched?,
                        None => self.fetch_span(self.first_span(window)).await?,
                    }
                }
            };
            let first_page = self.parse(&first)?;
            let plan = self.plan(window, &first_page, limit);
            // The first window's count is the stream's size, also (above all) when it is too
            // large to page.
            if estimate
                && pass == 1
                && let Plan::Pages(matched, _) | Plan::TooLarge(matched) = &plan
            {
                emitter.estimate(*matched)?;
            }
            let (matched, spans) = match plan {
                Plan::Pages(matched, spans) => (matched, spans),
                Plan::TooLarge(matched) => return Ok(Outcome::TooLarge(matched)),
                Plan::Unpaginated => {
                    return self
                        .read_unpaginated(
                            window,
                            emitter,
                            keys,
                            first_page.into_iter().map(|(r, _)| r).collect(),
                            limit,
                        )
                        .await;
                }
            };
            keys.pass.clear();
            let mut stable = true;
            for (records, _) in &first_page {
                self.take(records, emitter, keys)?;
            }
            drop(first_page);
            drop(first);

            let expected = spans.len();
            if !std::mem::take(&mut rest_queued) {
                pages.queue.extend(spans);
            }
            // Details are fetched between windows, while queued pages would wait unread.
            if self.expander.is_none()
                && let Some(next) = next
            {
                pages.look_ahead(self, next);
            }
            for _ in 0..expected {
                // Running dry early (it cannot) would only fail the completeness check below.
                let Some(fetched) = pages.next(self).await else {
                    break;
                };
                let (bodies, _) = fetched?;
                for (records, pagination) in self.parse(&bodies)? {
                    if let Some(m) = pagination.and_then(|p| p.matched)
                        && m != matched
                    {
                        stable = false;
                    }
                    self.take(&records, emitter, keys)?;
                }
            }
            if stable && keys.pass.len() as u64 == matched {
                return Ok(Outcome::Complete);
            }
            // The re-read's requests go first: drop the next window's.
            pages.clear();
            tracing::info!(
                "{}: window {} changed while it was read ({} distinct of {matched} expected); reading it again",
                self.def.name,
                window.describe(),
                keys.pass.len()
            );
        }
        if window.hi.is_none() {
            // Only records modified during this sync can enter the open tail; they were read
            // at least once and the next sync starts below them.
            tracing::warn!(
                "{}: records kept changing in {}; continuing",
                self.def.name,
                window.describe()
            );
            return Ok(Outcome::Complete);
        }
        Err(Error::InvalidResponse {
            path: self.def.path.to_owned(),
            detail: format!(
                "the {} window {} kept changing over {MAX_PASSES} reads; no checkpoint was made past it, \
                 so the next sync retries it",
                self.def.name,
                window.describe()
            ),
        })
    }

    /// Without `matched`, the only safe stop is a short page.
    async fn read_unpaginated(
        &self,
        window: Window,
        emitter: &mut StreamEmitter<'_>,
        keys: &mut WindowKeys,
        first: Vec<Vec<&RawValue>>,
        limit: u32,
    ) -> Result<Outcome> {
        let mut last_count: u64 = first.iter().map(|r| r.len() as u64).sum();
        for records in &first {
            self.take(records, emitter, keys)?;
        }
        let mut skip = last_count;
        let mut requested = u64::from(self.page_size);
        while last_count > 0 && last_count >= requested {
            if skip > SKIP_CAP {
                return Ok(Outcome::TooLarge(skip));
            }
            let (bodies, _) = self
                .fetch_span(Span {
                    window,
                    skip,
                    len: limit,
                    pagination: false,
                })
                .await?;
            last_count = 0;
            for (records, _) in self.parse(&bodies)? {
                last_count += records.len() as u64;
                self.take(&records, emitter, keys)?;
            }
            skip += last_count;
            requested = u64::from(limit);
        }
        Ok(Outcome::Complete)
    }

    /// How `window` is paged after its first page (parsed, fetched `limit` at a time).
    fn plan(
        &self,
        window: Window,
        first: &[(Vec<&RawValue>, Option<Pagination>)],
        limit: u32,
    ) -> Plan {
        let Some(matched) = first.iter().find_map(|(_, p)| p.and_then(|p| p.matched)) else {
            return Plan::Unpaginated;
        };
        if matched > SKIP_CAP || (matched > self.windowing.split_above && window.splittable()) {
            return Plan::TooLarge(matched);
        }
        let skips: Vec<u64> = (0..)
            .map(|k| u64::from(self.page_size) + k * u64::from(limit))
            .take_while(|skip| *skip < matched)
            .collect();
        let last = skips.last().copied();
        let want_all = !self.windowing.optional_pagination;
        let spans = skips
            .into_iter()
            .map(|skip| Span {
                window,
                skip,
                len: limit,
                pagination: want_all || Some(skip) == last,
            })
            .collect();
        Plan::Pages(matched, spans)
    }

    fn first_span(&self, window: Window) -> Span {
        Span {
            window,
            skip: 0,
            len: self.page_size,
            pagination: true,
        }
    }

    /// Takes a page's records: each new key is emitted, or, for an expanded stream, queued
    /// for its details when its status is finished.
    fn take(
        &self,
        records: &[&RawValue],
        emitter: &mut StreamEmitter<'_>,
        keys: &mut WindowKeys,
    ) -> Result<()> {
        let emitted_at = now_millis();
        for record in records {
            let key = page::record_key(record, self.def.primary_key, self.def.path)?;
            if keys.seen.insert(key.clone()) {
                match &self.expander {
                    None => emitter.record(record, emitted_at)?,
                    Some(expander) => {
                        let status = page::field_text(record, expander.expansion.status_field)
                            .unwrap_or_default();
                        if expander.finished_statuses.contains(&status) {
                            keys.queue.push(key.clone());
                        }
                    }
                }
            }
            keys.pass.insert(key);
        }
        Ok(())
    }

    fn parse<'b>(
        &self,
        bodies: &'b [bytes::Bytes],
    ) -> Result<Vec<(Vec<&'b RawValue>, Option<Pagination>)>> {
        bodies
            .iter()
            .map(|body| {
                let page = page::parse(body, self.def.records_keys, self.def.path)?;
                Ok((page.records, page.pagination))
            })
            .collect()
    }

    /// Fetches `len` records from `skip`. A 502 (Clari's answer to pages over ~6 MB) splits the
    /// span into two smaller requests, down to single records. Returns the bodies in order and
    /// the page size that worked.
    async fn fetch_span(&self, span: Span) -> Result<Fetched> {
        let Span {
            window,
            skip,
            len,
            pagination,
        } = span;
        let mut bodies = Vec::new();
        let mut todo = vec![(skip, len)];
        let mut worked = len;
        while let Some((skip, len)) = todo.pop() {
            let request = Request {
                shrinkable: len > 1,
                ..self.request(window, skip, len, pagination)
            };
            match self.client.get_request(request).await {
                Ok(body) => bodies.push(body),
                Err(Error::Http { status: 502, .. }) if len > 1 => {
                    let half = len / 2;
                    worked = worked.min(half);
                    tracing::info!(
                        "{}: HTTP 502 on a page of {len}; retrying as pages of {half}",
                        self.def.name
                    );
                    // Pushed in reverse so the lower half is fetched first.
                    todo.push((skip + u64::from(half), len - half));
                    todo.push((skip, half));
                }
                Err(other) => return Err(other),
            }
        }
        Ok((bodies, worked))
    }

    fn request(&self, window: Window, skip: u64, limit: u32, pagination: bool) -> Request {
        let mut query = self.base_query.clone();
        query.push(("limit".into(), limit.to_string()));
        query.push(("skip".into(), skip.to_string()));
        if window.lo > 0 {
            query.push((
                self.windowing.filter_gt.into(),
                format_millis(window.lo - 1),
            ));
        }
        if let Some(hi) = window.hi {
            query.push((self.windowing.filter_lt.into(), format_millis(hi)));
        }
        if let Some((name, value)) = self.windowing.stable_order {
            query.push((name.into(), value.into()));
        }
        if self.windowing.optional_pagination {
            query.push(("includePagination".into(), pagination.to_string()));
        }
        Request::get(self.def.path, query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_window_are_adjacent_and_cover_it_exactly() {
        let window = Window {
            lo: 1_000,
            hi: Some(1_000_003),
        };
        let parts = window.split_into(FANOUT).unwrap();
        assert_eq!(parts.len(), 8);
        assert_eq!(parts[0].lo, 1_000);
        assert_eq!(parts.last().unwrap().hi, Some(1_000_003));
        assert!(
            parts
                .windows(2)
                .all(|w| w[0].hi == Some(w[1].lo) && w[0].lo < w[1].lo)
        );
    }

    #[test]
    fn narrow_windows_split_into_fewer_parts_and_a_millisecond_not_at_all() {
        assert_eq!(
            Window { lo: 0, hi: Some(3) }
                .split_into(FANOUT)
                .unwrap()
                .len(),
            3
        );
        assert!(Window { lo: 0, hi: Some(1) }.split_into(FANOUT).is_none());
        let tail = Window { lo: 0, hi: None }.split_into(FANOUT).unwrap();
        assert_eq!(
            (tail.len(), tail[1].hi),
            (2, None),
            "an open tail is closed now and reopened"
        );
    }
}
