//! Complete reads of `skip`/`limit` endpoints, despite the API's `skip` cap of 10,000 and
//! despite data that changes while it is read.
//!
//! The time range is cut into half-open windows `[a, b)`, asked for as `Gt = a − 1 ms` and
//! `Lt = b`, so every record lands in at least one window whatever the API's boundary
//! semantics. Windows complete left to right, so the caller can checkpoint each window's upper
//! bound.
//!
//! How a window is judged complete, which is the whole of this module's promise:
//! - **One request** that holds every record of its window (a short page, or a full one whose
//!   pagination says there is nothing more) is a consistent snapshot: complete.
//! - **Paged** windows are complete when `matched` held still from the first page to the last
//!   and the distinct keys read reach it (or what `hasMore` led to, when that reads further).
//!   Otherwise a call left the window while it was paged (a status change moves it past the
//!   sync's upper bound) or the API's order shifted between requests, so pages skipped records.
//!   Such a window is **cut into parts** small enough for one request each, at the positions
//!   (`last_modified_time`s) of the records already read, and the parts are read instead; a
//!   part that still overflows is cut again. Calls only ever leave a closed window during a
//!   sync, so the parts converge; the calls that left are read by the open tail (full refresh)
//!   or by the next sync.
//! - [`Churn`] caps the windows that are paged (40 pages while nothing moved; once something
//!   moved, sized from how fast it moves) so that paging one is unlikely to be disturbed:
//!   larger windows are cut before they are read.
//! - A window too large for `skip` to reach its end is cut into [`FANOUT`] parts.
//! - The **open tail** of a full refresh (`[hi, now]`) only gains records while it is read
//!   (offsets shift right: duplicates, never gaps): it is read once and not chased.
//! - A single millisecond cannot be cut: it is read again, keys of passes that saw the same
//!   `matched` counting together, and reported honestly if it never settles.
//!
//! Records are emitted as they arrive, each key once per window and the parts cut from it;
//! only the checkpoints wait for complete windows. Requests go through one [`Pipeline`] that
//! keeps the rate limit busy across window boundaries.

use std::collections::{HashMap, HashSet, VecDeque};

use futures_util::FutureExt;
use futures_util::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::value::RawValue;

use super::churn::{CUT_FILL, Churn, blind_part_target};
use super::emitter::StreamEmitter;
use super::page::{self, Pagination};
use super::page_size::PageSize;
use super::pipeline::{CONCURRENCY, Fetched, Pipeline, Tag};
use super::state::{format_millis, parse_instant};
use super::streams::{Expansion, SKIP_CAP, StreamDef, Windowing};
use crate::client::{Client, Request};
use crate::error::{Error, Result};
use crate::protocol::now_millis;

/// Reads of a window that cannot be cut (one millisecond) before it is reported unstable.
const MAX_PASSES: u32 = 4;
/// Parts a window too large to page is cut into. Their first pages are requested together, so
/// finding the dense part of a long range costs one round trip per level, not one per part.
const FANOUT: i64 = 8;
/// Pages of a window queued ahead of the one being read: enough to keep [`CONCURRENCY`]
/// requests in flight, few enough that a change of page size reaches the pages after them.
const QUEUED_AHEAD: usize = 2 * CONCURRENCY;
/// Detail requests in flight (they are small and the rate limiter paces them).
const DETAIL_CONCURRENCY: usize = 8;

/// A half-open window `[lo, hi)` in epoch milliseconds; `hi = None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub lo: i64,
    pub hi: Option<i64>,
}

impl Window {
    /// Up to `parts` adjacent windows of equal width covering this one, or `None` for a single
    /// millisecond. An open tail is cut in two: closed at the current instant, and a new open
    /// tail after it.
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
        let parts = parts.clamp(2, width);
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

    /// Adjacent windows covering this closed one, cut so that each holds at most `per_part` of
    /// the records whose window times are `positions`, where they allow: a millisecond holding
    /// more than that gets a part of its own. `None` when they give no cut inside the window.
    fn cut_at(self, positions: &mut [i64], per_part: usize) -> Option<Vec<Window>> {
        let hi = self.hi?;
        positions.sort_unstable();
        let mut bounds = vec![self.lo];
        let mut count = 0;
        for group in positions.chunk_by(|a, b| a == b) {
            let at = group[0];
            if at < self.lo || at >= hi {
                continue;
            }
            if count + group.len() > per_part && at > bounds[bounds.len() - 1] {
                bounds.push(at);
                count = 0;
            }
            count += group.len();
            if count > per_part && at + 1 < hi {
                bounds.push(at + 1);
                count = 0;
            }
        }
        bounds.push(hi);
        (bounds.len() > 2).then(|| {
            bounds
                .windows(2)
                .map(|pair| Window {
                    lo: pair[0],
                    hi: Some(pair[1]),
                })
                .collect()
        })
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

/// One listing request: `len` records of `window` from `skip`.
#[derive(Debug, Clone, Copy)]
struct Span {
    window: Window,
    skip: u64,
    len: u32,
    /// Whether to ask for the pagination object (`includePagination`).
    pagination: bool,
}

/// A window waiting to be read.
#[derive(Debug, Clone, Copy)]
struct Pending {
    window: Window,
    /// Tags this window's requests in the pipeline.
    id: u64,
    /// Cut from the window read just before it: the keys that read emitted are not emitted again.
    inherits: bool,
}

/// What a window's first page says to do next.
enum FirstPage {
    /// It holds the whole window.
    Snapshot,
    /// Read these parts instead: the window is too large for `skip`, or for this sync's churn.
    Cut(Vec<Window>),
    /// No pagination object: page until a short page.
    Unpaginated,
    /// Page it: `matched` records, fetched by the requests this plan gives after the first page.
    Page(u64, SpanPlan),
}

/// What one read of a window came to.
enum Pass {
    Done(Outcome),
    /// The window changed while it was read and cannot be cut: its last `matched`, and the
    /// keys read, to count with the next read's.
    Unsettled(u64, HashSet<String>),
}

/// What reading a window led to.
enum Outcome {
    Complete(WindowKeys),
    /// Read these windows instead, in order.
    Cut {
        parts: Vec<Window>,
        inherits: bool,
    },
}

/// What fetching a complete window's details came to.
enum Expanded {
    /// Every detail wanted was fetched (or none was wanted): the window is done.
    All,
    /// They did not fit in the budget left: the window was cut in halves, read again.
    Narrowed,
    /// The budget is spent.
    BudgetSpent,
}

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Every window was read.
    Finished,
    /// The per-sync budget of detail requests was reached; the last checkpoint stands.
    BudgetSpent,
}

/// What one read of one window found.
#[derive(Default)]
struct WindowKeys {
    /// Distinct keys read.
    ids: HashSet<String>,
    /// Window times of the records read, where the stream declares its window field: where
    /// to cut the window if it must be read again.
    positions: Vec<i64>,
    /// For an expanded stream: the keys in a finished status, with their listing records.
    finished: Vec<(String, Option<Box<RawValue>>)>,
}

/// Keys already handled in the window being read and the parts cut from it.
#[derive(Default)]
struct Family {
    emitted: HashSet<String>,
    expanded: HashSet<String>,
}

/// The state of one [`WindowedReader::read`].
struct Run {
    pending: VecDeque<Pending>,
    next_id: u64,
    churn: Churn,
    family: Family,
    /// Whether the stream's size was estimated (from the first window's `matched`).
    estimated: bool,
    details_spent: u64,
    /// Calls whose details could not be fetched, to try again on a later sync.
    unfetched: Vec<String>,
    /// What a look-ahead queued for a window, by window id: its `matched`, the pages queued
    /// and the plan of the others.
    planned: HashMap<u64, (u64, Vec<Span>, SpanPlan)>,
}

impl Run {
    /// The run of a read of `[lo, hi)`, then of the open tail `[hi, now]` when `open_tail`.
    fn new(lo: i64, hi: i64, open_tail: bool) -> Self {
        let mut run = Run {
            pending: VecDeque::new(),
            next_id: 0,
            churn: Churn::default(),
            family: Family::default(),
            estimated: false,
            details_spent: 0,
            unfetched: Vec::new(),
            planned: HashMap::new(),
        };
        let mut windows = Vec::new();
        if lo < hi {
            windows.push(Window { lo, hi: Some(hi) });
        }
        if open_tail {
            windows.push(Window {
                lo: lo.max(hi),
                hi: None,
            });
        }
        run.push_front(windows, false);
        run
    }

    fn push_front(&mut self, windows: Vec<Window>, inherits: bool) {
        for window in windows.into_iter().rev() {
            self.next_id += 1;
            self.pending.push_front(Pending {
                window,
                id: self.next_id,
                inherits,
            });
        }
    }
}

/// How a read ended, and the calls whose details are owed.
#[derive(Debug)]
pub struct ReadEnd {
    pub completion: Completion,
    pub unfetched_details: Vec<String>,
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
    /// The page size, learned as the read goes.
    pub page_size: PageSize,
    pub expander: Option<Expander<'a>>,
}

/// How to page a window after its first page: `matched` records, the requests already queued
/// for it and the plan of the others, and what the first page held (its record count and its
/// pagination).
struct Rest {
    matched: u64,
    queued: Vec<Span>,
    plan: SpanPlan,
    first_page: (u64, Option<Pagination>),
}

/// The requests paging a window after its first page, planned a few at a time at the page size
/// of the moment: later pages' offsets follow the lengths actually used, and a change of size
/// reaches every page not yet queued.
#[derive(Debug, Clone, Copy)]
struct SpanPlan {
    window: Window,
    matched: u64,
    /// The offset of the next request.
    next: u64,
    /// Whether every request asks for the pagination object (where it costs nothing extra).
    pagination: bool,
}

impl SpanPlan {
    /// The next request, of `len` records, if any records are left to ask for. Any of the last
    /// few requests may be answered last, so each of them carries `matched`: a call leaving the
    /// window before the last answer shows, whichever that is.
    fn next(&mut self, len: u32) -> Option<Span> {
        if self.next >= self.matched {
            return None;
        }
        let skip = self.next;
        self.next += u64::from(len);
        Some(Span {
            window: self.window,
            skip,
            len,
            pagination: self.pagination
                || skip + CONCURRENCY as u64 * u64::from(len) >= self.matched,
        })
    }

    fn done(&self) -> bool {
        self.next >= self.matched
    }
}

/// What paging a window after its first page found.
struct Paged {
    first_matched: u64,
    /// `matched` on the last page that carried it.
    last_matched: u64,
    /// Whether every page that carried `matched` agreed with the first.
    stable: bool,
    /// Records the window holds as far as the pages tell: `matched`, or more where `hasMore`
    /// read further.
    expected: u64,
    requests: u64,
}

impl WindowedReader<'_> {
    /// Reads `[lo, hi)` window by window, then `[hi, now]` when `open_tail` is set, calling
    /// `on_complete` with the upper bound of each completed window, in order (`None` for the
    /// open tail), and the calls whose details are owed so far. `owed_details` are calls whose details an earlier
    /// sync could not fetch: they are tried first.
    pub async fn read(
        &self,
        lo: i64,
        hi: i64,
        open_tail: bool,
        owed_details: Vec<String>,
        emitter: &mut StreamEmitter<'_>,
        mut on_complete: impl FnMut(&mut StreamEmitter<'_>, Option<i64>, &[String]) -> Result<()>,
    ) -> Result<ReadEnd> {
        let mut run = Run::new(lo, hi, open_tail);
        if !self.expand_owed(owed_details, &mut run, emitter).await? {
            return Ok(run.end(Completion::BudgetSpent));
        }
        let mut pipeline = Pipeline::new();
        while let Some(current) = run.pending.pop_front() {
            if !current.inherits {
                run.family = Family::default();
            }
            match self
                .read_window(current, &mut run, &mut pipeline, emitter)
                .await?
            {
                Outcome::Cut { parts, inherits } => run.push_front(parts, inherits),
                Outcome::Complete(keys) => {
                    match self.expand_window(current, keys, &mut run, emitter).await? {
                        Expanded::All => on_complete(emitter, current.window.hi, &run.unfetched)?,
                        Expanded::Narrowed => {}
                        Expanded::BudgetSpent => return Ok(run.end(Completion::BudgetSpent)),
                    }
                }
            }
        }
        Ok(run.end(Completion::Finished))
    }

    /// Fetches the details an earlier sync owes, before any window; false when they do not
    /// fit in the budget (they stay owed).
    async fn expand_owed(
        &self,
        owed_details: Vec<String>,
        run: &mut Run,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<bool> {
        let Some(expander) = &self.expander else {
            return Ok(true);
        };
        if owed_details.is_empty() {
            return Ok(true);
        }
        let owed: Vec<_> = owed_details.into_iter().map(|id| (id, None)).collect();
        if self
            .expand_within_budget(expander, &owed, run, emitter)
            .await?
        {
            return Ok(true);
        }
        run.unfetched.extend(owed.into_iter().map(|(id, _)| id));
        Ok(false)
    }

    /// Fetches the details of a complete window's calls in a finished status, for an expanded
    /// stream. A window whose details do not fit in what is left of the budget is narrowed
    /// until they do, so the budget is used up before the sync stops.
    async fn expand_window(
        &self,
        current: Pending,
        keys: WindowKeys,
        run: &mut Run,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<Expanded> {
        let Some(expander) = &self.expander else {
            return Ok(Expanded::All);
        };
        let wanted: Vec<_> = keys
            .finished
            .into_iter()
            .filter(|(key, _)| !run.family.expanded.contains(key))
            .collect();
        if self
            .expand_within_budget(expander, &wanted, run, emitter)
            .await?
        {
            return Ok(Expanded::All);
        }
        if let Some(halves) = current.window.split_into(2)
            && wanted.len() > 1
            && expander.budget.is_some_and(|cap| run.details_spent < cap)
        {
            run.push_front(halves, true);
            return Ok(Expanded::Narrowed);
        }
        tracing::warn!(
            "{}: the budget of detail requests is spent ({} sent); \
             the next sync carries on from the last checkpoint",
            self.def.name,
            run.details_spent
        );
        Ok(Expanded::BudgetSpent)
    }

    /// Reads one window: its first page, then, as that page shows, nothing more, its other
    /// pages, or a cut into parts. A window that cannot be cut is read again, the keys of reads
    /// that saw the same `matched` counting together.
    async fn read_window<'r>(
        &'r self,
        current: Pending,
        run: &mut Run,
        pipeline: &mut Pipeline<'r, Span>,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<Outcome> {
        let mut earlier: Option<(u64, HashSet<String>)> = None;
        for pass in 1..=MAX_PASSES {
            match self
                .read_pass(current, pass, earlier.as_ref(), run, pipeline, emitter)
                .await?
            {
                Pass::Done(outcome) => return Ok(outcome),
                Pass::Unsettled(matched, mut ids) => {
                    if let Some((m, older)) = earlier.take()
                        && m == matched
                    {
                        ids.extend(older);
                    }
                    earlier = Some((matched, ids));
                }
            }
        }
        Err(Error::Unstable(format!(
            "The {} window {} (one millisecond) changed on each of {MAX_PASSES} reads, so it could not \
             be read completely. No checkpoint was made past it: the next sync reads it again. If this \
             repeats, lower `page_size` so the window fits in one request.",
            self.def.name,
            current.window.describe()
        )))
    }

    /// One read of a window: its first page, then what that page shows to do (nothing more, a
    /// cut, or paging it). `earlier` holds the keys of earlier reads that saw one `matched`.
    async fn read_pass<'r>(
        &'r self,
        current: Pending,
        pass: u32,
        earlier: Option<&(u64, HashSet<String>)>,
        run: &mut Run,
        pipeline: &mut Pipeline<'r, Span>,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<Pass> {
        let window = current.window;
        let (bodies, limit) = self.fetch_first_page(current, pass, run, pipeline).await?;
        let first = self.parse(&bodies)?;
        self.estimate_once(&first, run, emitter)?;
        // A look-ahead that queued this window's pages planned them: keep to that plan, whose
        // requests are on their way (the page size may have moved since).
        let (queued, plan) = match run.planned.remove(&current.id).filter(|_| pass == 1) {
            Some((matched, queued, plan)) => (queued, FirstPage::Page(matched, plan)),
            None => (Vec::new(), self.plan(window, &first, limit, &run.churn)?),
        };
        let mut keys = WindowKeys::default();
        let (matched, plan) = match plan {
            FirstPage::Cut(parts) => {
                pipeline.discard(current.id);
                // Nothing of this window was emitted; what its family emitted still counts
                // when the window is itself a part cut after paging.
                return Ok(Pass::Done(Outcome::Cut {
                    parts,
                    inherits: current.inherits,
                }));
            }
            FirstPage::Snapshot => {
                for (records, _) in &first {
                    self.take(records, emitter, &mut run.family, &mut keys)?;
                }
                return Ok(Pass::Done(Outcome::Complete(keys)));
            }
            FirstPage::Unpaginated => {
                let records = first.into_iter().map(|(r, _)| r).collect();
                self.read_unpaginated(window, emitter, run, &mut keys, records, limit)
                    .await?;
                return Ok(Pass::Done(Outcome::Complete(keys)));
            }
            FirstPage::Page(matched, plan) => (matched, plan),
        };
        for (records, _) in &first {
            self.take(records, emitter, &mut run.family, &mut keys)?;
        }
        let returned: u64 = first.iter().map(|(records, _)| records.len() as u64).sum();
        let first_pagination = first.iter().find_map(|(_, p)| *p);
        drop(first);
        drop(bodies);
        let rest = Rest {
            matched,
            queued,
            plan,
            first_page: (returned, first_pagination),
        };
        let paged = self
            .page_rest((current, pass), rest, run, pipeline, emitter, &mut keys)
            .await?;
        run.churn
            .observe_paged(matched, paged.last_matched, paged.requests);
        Ok(self.judge_paged(
            window,
            (matched, earlier),
            &paged,
            keys,
            limit,
            &mut run.churn,
        ))
    }

    /// Requests a window's first page and, while it is on its way, the pages after it; waits
    /// for the first page's answer and returns it.
    async fn fetch_first_page<'r>(
        &'r self,
        current: Pending,
        pass: u32,
        run: &mut Run,
        pipeline: &mut Pipeline<'r, Span>,
    ) -> Result<Fetched> {
        let tag = Tag {
            pass,
            ..first_tag(current.id)
        };
        pipeline.push(tag, self.first_span(current.window));
        if self.expander.is_none() {
            // Details are fetched between windows, while queued pages would wait unread.
            self.look_ahead(pipeline, run);
        }
        pipeline
            .fetch(tag, self.first_span(current.window), |span| {
                self.fetch_span(span).boxed()
            })
            .await
    }

    /// Estimates the stream's size from the first window's `matched`, once per read: the
    /// first window's count is the stream's size, also (above all) when it is too large to
    /// page. Details are fetched at most up to the budget, so a capped sync says what it will
    /// fetch, not what there is.
    fn estimate_once(
        &self,
        first: &[(Vec<&RawValue>, Option<Pagination>)],
        run: &mut Run,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<()> {
        if std::mem::replace(&mut run.estimated, true) {
            return Ok(());
        }
        let Some(matched) = first.iter().find_map(|(_, p)| p.and_then(|p| p.matched)) else {
            return Ok(());
        };
        let budget = self.expander.as_ref().and_then(|expander| expander.budget);
        emitter.estimate(budget.map_or(matched, |budget| matched.min(budget)))
    }

    /// Whether a paged window is complete, the one place that judges a paged read, and what to
    /// read instead when it is not. It is complete when `matched` held still from the first
    /// page to the last and the distinct keys read (with those of earlier reads that saw the
    /// same `matched`) reach what the pages promised. The open tail is always complete: it
    /// only gains records while it is read (calls modified during this sync), which shifts
    /// offsets right, so one read missed nothing there at its start.
    fn judge_paged(
        &self,
        window: Window,
        (matched, earlier): (u64, Option<&(u64, HashSet<String>)>),
        paged: &Paged,
        mut keys: WindowKeys,
        limit: u32,
        churn: &mut Churn,
    ) -> Pass {
        let mut distinct = keys.ids.len() as u64;
        if let Some((m, ids)) = earlier
            && *m == matched
            && paged.stable
        {
            distinct += ids.difference(&keys.ids).count() as u64;
        }
        if (paged.stable && distinct >= paged.expected) || window.hi.is_none() {
            return Pass::Done(Outcome::Complete(keys));
        }
        if paged.stable {
            churn.observe_unstable_order();
        }
        tracing::info!(
            "{}: window {} changed while it was read ({distinct} distinct of {} expected, \
             matched {matched} then {}); reading it in parts",
            self.def.name,
            window.describe(),
            paged.expected,
            paged.last_matched
        );
        match self.cut_after_paging(window, &mut keys, limit) {
            Some(parts) => Pass::Done(Outcome::Cut {
                parts,
                inherits: true,
            }),
            None => Pass::Unsettled(paged.last_matched, keys.ids),
        }
    }

    /// What to do after a window's first page: the one place that decides whether a window is
    /// complete in one request, must be cut first, or is paged, and how.
    fn plan(
        &self,
        window: Window,
        first: &[(Vec<&RawValue>, Option<Pagination>)],
        limit: u32,
        churn: &Churn,
    ) -> Result<FirstPage> {
        let returned: u64 = first.iter().map(|(records, _)| records.len() as u64).sum();
        let pagination = first.iter().find_map(|(_, p)| *p);
        let Some(matched) = pagination.and_then(|p| p.matched) else {
            let snapshot = first.len() == 1 && holds_all(returned, limit, None);
            return Ok(if snapshot {
                FirstPage::Snapshot
            } else {
                FirstPage::Unpaginated
            });
        };
        if matched > SKIP_CAP || (matched > self.windowing.split_above && window.splittable()) {
            let earliest = first
                .iter()
                .flat_map(|(records, _)| records)
                .filter_map(|record| self.position(record))
                .min();
            return self
                .too_large(window, matched, earliest)
                .map(FirstPage::Cut);
        }
        if first.len() == 1 && holds_all(returned, limit, pagination) {
            return Ok(FirstPage::Snapshot);
        }
        if window.hi.is_some()
            && let Some(parts) = self.cut_before_paging(window, matched, limit, churn)
        {
            return Ok(FirstPage::Cut(parts));
        }
        Ok(FirstPage::Page(
            matched,
            SpanPlan {
                window,
                matched,
                next: u64::from(limit),
                pagination: !self.windowing.optional_pagination,
            },
        ))
    }

    /// A window whose `matched` is more than `skip` can reach: cut into [`FANOUT`] parts.
    /// When its first page shows where its records begin (`earliest`, the least window time
    /// among the earliest calls), everything before that is one part of its own: usually
    /// empty, read in one request, where even cuts from 1970 would cost a request each for
    /// decades without a call.
    fn too_large(
        &self,
        window: Window,
        matched: u64,
        earliest: Option<i64>,
    ) -> Result<Vec<Window>> {
        if let Some(earliest) = earliest
            && earliest > window.lo + 1
            && window.hi.is_some_and(|hi| earliest < hi - 1)
        {
            let rest = Window {
                lo: earliest,
                hi: window.hi,
            };
            if let Some(parts) = rest.split_into(FANOUT) {
                let head = Window {
                    lo: window.lo,
                    hi: Some(earliest),
                };
                return Ok(std::iter::once(head).chain(parts).collect());
            }
        }
        let parts = window.split_into(FANOUT).ok_or_else(|| {
            Error::SkipCap(format!(
                "The {} window {} holds {matched} records within one millisecond, more than the API's \
                 skip limit of {SKIP_CAP} can page through. Please report this to the connector's maintainers.",
                self.def.name,
                window.describe()
            ))
        })?;
        tracing::debug!(
            "{}: splitting {} ({matched} records)",
            self.def.name,
            window.describe()
        );
        Ok(parts)
    }

    /// The parts to read instead of paging a window of `matched` records, when this sync's
    /// churn makes paging it too likely to be disturbed: parts of the size [`Churn`] allows, or
    /// one-request parts when that is less than about one and a half pages.
    fn cut_before_paging(
        &self,
        window: Window,
        matched: u64,
        limit: u32,
        churn: &Churn,
    ) -> Option<Vec<Window>> {
        let allowed = churn.paged_limit(limit);
        if matched <= allowed {
            return None;
        }
        let target = if allowed * 2 < u64::from(limit) * 3 {
            blind_part_target(limit)
        } else {
            allowed
        };
        window.split_into(matched.div_ceil(target) as i64)
    }

    /// The one-request parts to read a window in after paging it did not settle: cut at the
    /// window times of the records read, or evenly where the stream has no window field.
    fn cut_after_paging(
        &self,
        window: Window,
        keys: &mut WindowKeys,
        limit: u32,
    ) -> Option<Vec<Window>> {
        let per_part = (f64::from(limit) * CUT_FILL).floor().max(1.0) as usize;
        window.cut_at(&mut keys.positions, per_part).or_else(|| {
            let blind = blind_part_target(limit);
            window.split_into((keys.ids.len() as u64).div_ceil(blind).max(2) as i64)
        })
    }

    /// Fetches a window's pages after its first (`spans`, for `matched` records `limit` at a
    /// time), and further pages while the last one says there are more.
    async fn page_rest<'r>(
        &'r self,
        (current, pass): (Pending, u32),
        Rest {
            matched,
            queued,
            mut plan,
            first_page: (first_returned, first_pagination),
        }: Rest,
        run: &mut Run,
        pipeline: &mut Pipeline<'r, Span>,
        emitter: &mut StreamEmitter<'_>,
        keys: &mut WindowKeys,
    ) -> Result<Paged> {
        let tag = |skip| Tag {
            window: current.id,
            pass,
            skip,
        };
        let mut paged = Paged {
            first_matched: matched,
            last_matched: matched,
            stable: true,
            expected: matched,
            requests: 1 + queued.len() as u64,
        };
        let mut queued = VecDeque::from(queued);
        let mut last = (0, first_returned, first_pagination);
        loop {
            while queued.len() < QUEUED_AHEAD
                && let Some(span) = plan.next(self.page_size.current())
            {
                pipeline.push(tag(span.skip), span);
                queued.push_back(span);
                paged.requests += 1;
            }
            let Some(span) = queued.pop_front() else {
                break;
            };
            if self.expander.is_none() && plan.done() && queued.len() < CONCURRENCY {
                // The next window's first page is in by now: queue its other pages behind these
                // last ones, so the limiter does not idle for a round trip between windows.
                self.look_ahead(pipeline, run);
            }
            let (bodies, _) = pipeline
                .fetch(tag(span.skip), span, |s| self.fetch_span(s).boxed())
                .await?;
            last = self.take_page(span.skip, &bodies, emitter, run, keys, &mut paged)?;
        }
        self.read_past_matched(
            (current, pass),
            last,
            run,
            pipeline,
            emitter,
            (keys, &mut paged),
        )
        .await?;
        Ok(paged)
    }

    /// `matched` is "the total count", nothing more: when the last page (`last`: its offset,
    /// record count and pagination) says there is more, follows it rather than end the window
    /// early.
    async fn read_past_matched<'r>(
        &'r self,
        (current, pass): (Pending, u32),
        mut last: (u64, u64, Option<Pagination>),
        run: &mut Run,
        pipeline: &mut Pipeline<'r, Span>,
        emitter: &mut StreamEmitter<'_>,
        (keys, paged): (&mut WindowKeys, &mut Paged),
    ) -> Result<()> {
        let window = current.window;
        while let (skip, returned, Some(p)) = last
            && (p.has_more == Some(true) || p.next_page_skip.is_some())
        {
            let next = p.next_page_skip.unwrap_or(skip + returned);
            if next <= skip || returned == 0 || next > SKIP_CAP {
                break;
            }
            tracing::warn!(
                "{}: window {} reported matched = {} but hasMore/nextPageSkip = {next}: reading on",
                self.def.name,
                window.describe(),
                p.matched.unwrap_or_default()
            );
            let span = Span {
                window,
                skip: next,
                len: self.page_size.current(),
                pagination: true,
            };
            let tag = Tag {
                window: current.id,
                pass,
                skip: next,
            };
            let (bodies, _) = pipeline
                .fetch(tag, span, |s| self.fetch_span(s).boxed())
                .await?;
            paged.requests += 1;
            last = self.take_page(next, &bodies, emitter, run, keys, paged)?;
            paged.expected = paged.expected.max(next + last.1);
        }
        Ok(())
    }

    /// Takes one page's records and notes what its pagination says; returns the page's offset,
    /// its record count and its pagination.
    fn take_page(
        &self,
        skip: u64,
        bodies: &[bytes::Bytes],
        emitter: &mut StreamEmitter<'_>,
        run: &mut Run,
        keys: &mut WindowKeys,
        paged: &mut Paged,
    ) -> Result<(u64, u64, Option<Pagination>)> {
        let mut last = (skip, 0, None);
        for (records, pagination) in self.parse(bodies)? {
            if let Some(m) = pagination.and_then(|p| p.matched) {
                paged.stable &= m == paged.first_matched;
                paged.last_matched = m;
            }
            last = (last.0 + last.1, records.len() as u64, pagination);
            self.take(&records, emitter, &mut run.family, keys)?;
        }
        Ok(last)
    }

    /// Queues the first pages of the windows after the current one, so the rate limit stays
    /// busy across window boundaries, and, once the next window's first page is in and shows
    /// it is to be paged, that window's other pages. Answers wait in the pipeline until read.
    ///
    /// Never the open tail's: it gains the calls that leave the closed windows while they are
    /// read, so it is asked for only once they are all done.
    fn look_ahead(&self, pipeline: &mut Pipeline<'_, Span>, run: &mut Run) {
        let closed = run
            .pending
            .iter()
            .take_while(|next| next.window.hi.is_some());
        for next in closed.take(CONCURRENCY) {
            pipeline.push(first_tag(next.id), self.first_span(next.window));
        }
        let Some(next) = run
            .pending
            .front()
            .filter(|next| next.window.hi.is_some() && !run.planned.contains_key(&next.id))
        else {
            return;
        };
        let Some(Ok((bodies, limit))) = pipeline.answer(first_tag(next.id)) else {
            return;
        };
        let Ok(first) = self.parse(bodies) else {
            return;
        };
        if let Ok(FirstPage::Page(matched, mut plan)) =
            self.plan(next.window, &first, *limit, &run.churn)
        {
            let queued: Vec<Span> = std::iter::from_fn(|| plan.next(self.page_size.current()))
                .take(QUEUED_AHEAD)
                .collect();
            for span in &queued {
                let tag = Tag {
                    skip: span.skip,
                    ..first_tag(next.id)
                };
                pipeline.push(tag, *span);
            }
            let id = next.id;
            run.planned.insert(id, (matched, queued, plan));
        }
    }

    /// Without `matched`, the only safe stop is a short page.
    async fn read_unpaginated(
        &self,
        window: Window,
        emitter: &mut StreamEmitter<'_>,
        run: &mut Run,
        keys: &mut WindowKeys,
        first: Vec<Vec<&RawValue>>,
        limit: u32,
    ) -> Result<()> {
        let mut last_count: u64 = first.iter().map(|r| r.len() as u64).sum();
        for records in &first {
            self.take(records, emitter, &mut run.family, keys)?;
        }
        let mut skip = last_count;
        let mut requested = u64::from(limit);
        while last_count > 0 && last_count >= requested {
            if skip > SKIP_CAP {
                return Err(Error::SkipCap(format!(
                    "The {} window {} has more than {SKIP_CAP} records and the API sends no pagination \
                     object to cut it by. Please report this to the connector's maintainers.",
                    self.def.name,
                    window.describe()
                )));
            }
            let len = self.page_size.current();
            let (bodies, _) = self
                .fetch_span(Span {
                    window,
                    skip,
                    len,
                    pagination: false,
                })
                .await?;
            last_count = 0;
            for (records, _) in self.parse(&bodies)? {
                last_count += records.len() as u64;
                self.take(&records, emitter, &mut run.family, keys)?;
            }
            skip += last_count;
            requested = u64::from(len);
        }
        Ok(())
    }

    fn first_span(&self, window: Window) -> Span {
        Span {
            window,
            skip: 0,
            len: self.page_size.current(),
            pagination: true,
        }
    }

    /// A record's window time, where the stream's records carry it.
    fn position(&self, record: &RawValue) -> Option<i64> {
        let field = self.windowing.window_field?;
        page::field_text(record, field)
            .ok()
            .as_deref()
            .and_then(parse_instant)
    }

    /// Takes a page's records: each new key is emitted, or, for an expanded stream, kept for
    /// its details when its status is finished.
    fn take(
        &self,
        records: &[&RawValue],
        emitter: &mut StreamEmitter<'_>,
        family: &mut Family,
        keys: &mut WindowKeys,
    ) -> Result<()> {
        let emitted_at = now_millis();
        for record in records {
            let (key, position) = page::record_fields(
                record,
                self.def.primary_key,
                self.windowing.window_field,
                self.def.path,
            )?;
            if keys.ids.contains(&key) {
                continue;
            }
            if let Some(at) = position.as_deref().and_then(parse_instant) {
                keys.positions.push(at);
            }
            match &self.expander {
                None => {
                    if family.emitted.insert(key.clone()) {
                        emitter.record(record, emitted_at)?;
                    }
                }
                Some(expander) => {
                    let status = page::field_text(record, expander.expansion.status_field)
                        .unwrap_or_default();
                    if expander.finished_statuses.contains(&status) {
                        keys.finished
                            .push((key.clone(), Some((*record).to_owned())));
                    }
                }
            }
            keys.ids.insert(key);
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

    /// Fetches the details of `wanted` unless that would pass the budget; false when it would.
    async fn expand_within_budget(
        &self,
        expander: &Expander<'_>,
        wanted: &[(String, Option<Box<RawValue>>)],
        run: &mut Run,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<bool> {
        if expander
            .budget
            .is_some_and(|cap| run.details_spent + wanted.len() as u64 > cap)
        {
            return Ok(false);
        }
        run.details_spent += self.expand(expander, wanted, run, emitter).await?;
        Ok(true)
    }

    /// Fetches the detailed record of each key, concurrently, and emits them; returns the
    /// requests sent.
    /// - 404: the call was deleted since it was listed: logged and skipped.
    /// - 502 after every retry (Clari's answer to a details body over its ~6 MB cap, which some
    ///   calls have for good): the listing record is emitted instead, and the call is owed its
    ///   details, tried again on later syncs, while the checkpoint moves on.
    async fn expand(
        &self,
        expander: &Expander<'_>,
        wanted: &[(String, Option<Box<RawValue>>)],
        run: &mut Run,
        emitter: &mut StreamEmitter<'_>,
    ) -> Result<u64> {
        let expansion = expander.expansion;
        let mut fetches = stream::iter(wanted)
            .map(|(key, listed)| {
                let mut query = expander.query.clone();
                query.push((expansion.id_param.to_owned(), key.clone()));
                async move {
                    let response = self
                        .client
                        .execute(Request::get(expansion.path, query))
                        .await;
                    (key, listed, response)
                }
            })
            .buffered(DETAIL_CONCURRENCY);
        let mut sent = 0;
        while let Some((key, listed, response)) = fetches.next().await {
            sent += 1;
            run.family.expanded.insert(key.clone());
            let response = match response {
                Err(Error::Http { status: 502, .. }) => {
                    tracing::warn!(
                        "{}: the details of call {key} kept failing with HTTP 502 (Clari's answer when they \
                         exceed its size limit); {}, and they are tried again on the next sync",
                        self.def.name,
                        if listed.is_some() {
                            "its listing record was emitted instead"
                        } else {
                            "nothing was emitted for it"
                        }
                    );
                    if let Some(listed) = listed {
                        emitter.record(listed, now_millis())?;
                    }
                    run.unfetched.push(key.clone());
                    continue;
                }
                other => other?,
            };
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

    /// Fetches `len` records from `skip`. A 502 (Clari's answer to pages over ~6 MB) is
    /// retried once at the same size, since it may pass, unless pages of that size already
    /// failed twice in this read; a second one shrinks the shared page
    /// size ([`PageSize`]) and the rest of the span is fetched at the new size, so its records
    /// are all read. A window's first page (`skip` 0) stays one request: it comes back smaller
    /// rather than in pieces, so it can still be a snapshot of its window. Returns the bodies
    /// in order and the length the first request asked for.
    async fn fetch_span(&self, span: Span) -> Result<Fetched> {
        let Span {
            window,
            skip,
            len,
            pagination,
        } = span;
        let end = skip + u64::from(len);
        // A span queued before the size shrank keeps its range, fetched at the size that works.
        let (mut at, mut size, mut failed) = (skip, len.min(self.page_size.current()), false);
        let mut bodies = Vec::new();
        while at < end {
            let n = size.min((end - at) as u32);
            let request = Request {
                shrinkable: n > 1,
                ..self.request(window, at, n, pagination)
            };
            match self.client.get_request(request).await {
                Ok(body) => {
                    // Below the maximum the size is still being learned, and only a full page
                    // shows that its size fits; at the maximum there is nothing to learn and
                    // the body is not parsed twice.
                    if n == self.page_size.max() || self.is_full(&body, n) {
                        self.page_size.succeeded(n);
                    }
                    bodies.push(body);
                    if skip == 0 {
                        return Ok((bodies, n));
                    }
                    at += u64::from(n);
                    failed = false;
                }
                Err(Error::Http { status: 502, .. })
                    if n > 1 && !failed && !self.page_size.failed_before(n) =>
                {
                    failed = true
                }
                Err(Error::Http { status: 502, .. }) if n > 1 => {
                    size = self.page_size.failed(n).min(n - 1);
                    failed = false;
                    tracing::info!(
                        "{}: HTTP 502 twice on a page of {n}; carrying on with pages of {size}",
                        self.def.name
                    );
                }
                Err(other) => return Err(other),
            }
        }
        Ok((bodies, len))
    }

    /// Whether `body` holds `limit` records (an unreadable body is reported when it is read).
    fn is_full(&self, body: &[u8], limit: u32) -> bool {
        page::parse(body, self.def.records_keys, self.def.path)
            .is_ok_and(|page| page.records.len() == limit as usize)
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

impl Run {
    fn end(self, completion: Completion) -> ReadEnd {
        ReadEnd {
            completion,
            unfetched_details: self.unfetched,
        }
    }
}

/// The tag of a window's first page on its first read.
fn first_tag(window: u64) -> Tag {
    Tag {
        window,
        pass: 1,
        skip: 0,
    }
}

/// Whether one answer of `returned` records, asked for `limit`, holds every record of its
/// window: a short page, or a full one whose pagination says there is nothing more.
fn holds_all(returned: u64, limit: u32, pagination: Option<Pagination>) -> bool {
    returned < u64::from(limit)
        || pagination.is_some_and(|p| {
            p.matched.is_some_and(|m| m <= returned)
                && p.has_more != Some(true)
                && p.next_page_skip.is_none()
        })
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

    #[test]
    fn a_window_is_cut_where_the_records_read_put_a_part_s_worth_in_each() {
        let window = Window {
            lo: 0,
            hi: Some(1_000),
        };
        let mut positions: Vec<i64> = (0..50).map(|i| 990 - i * 20).collect();
        let parts = window.cut_at(&mut positions, 20).unwrap();
        assert_eq!(parts.first().unwrap().lo, 0);
        assert_eq!(parts.last().unwrap().hi, Some(1_000));
        assert!(parts.windows(2).all(|w| w[0].hi == Some(w[1].lo)));
        for part in &parts {
            let inside = positions
                .iter()
                .filter(|&&p| p >= part.lo && part.hi.is_some_and(|hi| p < hi))
                .count();
            assert!(inside <= 20, "{part:?} holds {inside}");
        }
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn a_millisecond_holding_more_than_a_part_gets_a_part_of_its_own() {
        let window = Window {
            lo: 0,
            hi: Some(1_000),
        };
        let mut positions = vec![500; 40];
        positions.extend([100, 900]);
        let parts = window.cut_at(&mut positions, 10).unwrap();
        assert!(
            parts.contains(&Window {
                lo: 500,
                hi: Some(501)
            }),
            "{parts:?}"
        );
        assert!(window.cut_at(&mut [], 10).is_none());
        assert!(
            window.cut_at(&mut [3, 4, 5], 10).is_none(),
            "all fit in one part"
        );
    }

    #[test]
    fn one_answer_holds_its_whole_window_only_when_nothing_says_there_is_more() {
        let pagination = |matched, has_more| {
            Some(Pagination {
                matched: Some(matched),
                has_more: Some(has_more),
                next_page_skip: has_more.then_some(100),
            })
        };
        assert!(holds_all(40, 100, None), "a short page");
        assert!(holds_all(100, 100, pagination(100, false)));
        assert!(!holds_all(100, 100, pagination(150, true)));
        assert!(
            !holds_all(100, 100, pagination(90, true)),
            "a low count with hasMore"
        );
        assert!(!holds_all(100, 100, None), "a full page without pagination");
    }
}
