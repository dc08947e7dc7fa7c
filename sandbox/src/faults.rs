//! Runtime-switchable fault injection. Every switch is thread-safe, takes effect on the next
//! request, and can be flipped while a connector is mid-sync.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use super::data::MsRange;
use super::reply::{ApiError, ListFaults};
use super::{SandboxHandle, lock};

/// A data change applied after a given `/calls` request, to model data that moves while a
/// connector pages a window (see [`Faults::mutate_after_calls_requests`]).
pub enum Mutation {
    /// Status changes: each call gets `status` and `last_modified` (like [`SandboxHandle::touch_call`]).
    TouchCalls {
        ids: Vec<String>,
        status: String,
        last_modified: Timestamp,
    },
    /// `n` new calls modified at `last_modified` (like [`SandboxHandle::add_calls`]).
    AddCalls { n: usize, last_modified: Timestamp },
    /// Anything else, with full access to the sandbox.
    Custom(Box<dyn Fn(&SandboxHandle) + Send + Sync>),
}

impl std::fmt::Debug for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mutation::TouchCalls { ids, status, .. } => {
                write!(f, "TouchCalls({ids:?} -> {status})")
            }
            Mutation::AddCalls { n, .. } => write!(f, "AddCalls({n})"),
            Mutation::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// Data changing while it is read (see [`Faults::set_churn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Churn {
    /// One status change after every `every`-th answered listing request; 0 never changes any.
    pub every: usize,
    /// Which calls may change.
    pub scope: ChurnScope,
}

/// The calls churn may pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChurnScope {
    /// Calls whose `time` is within this duration before the server's now.
    Recent(SignedDuration),
    /// Any call.
    Anywhere,
}

impl ChurnScope {
    /// The `time`s (epoch ms) in scope when the server clock reads `now`.
    pub(crate) fn times(self, now: i64) -> MsRange {
        match self {
            ChurnScope::Recent(within) => {
                let within = i64::try_from(within.as_millis().max(0)).unwrap_or(i64::MAX);
                MsRange {
                    gt: Some(now.saturating_sub(within).saturating_sub(1)),
                    lt: Some(now.saturating_add(1)),
                }
            }
            ChurnScope::Anywhere => MsRange::default(),
        }
    }
}

/// The churn in force and the listing requests answered since it was set.
#[derive(Default)]
struct ChurnState {
    churn: Option<Churn>,
    answered: usize,
}

/// "Fail the next `remaining` requests with `status`".
#[derive(Default)]
struct FailNext {
    remaining: usize,
    status: u16,
}

impl FailNext {
    fn new(remaining: usize, status: u16) -> Self {
        Self { remaining, status }
    }

    fn take(&mut self) -> Option<u16> {
        (self.remaining > 0).then(|| {
            self.remaining -= 1;
            self.status
        })
    }
}

/// The `/call-details` ids that always fail, and their status.
#[derive(Default)]
struct FailingDetails {
    ids: HashSet<String>,
    status: u16,
}

/// Requests admitted in the last second, for the rolling-window rate limit.
#[derive(Default)]
struct RateLimit {
    per_second: Option<u32>,
    admitted: VecDeque<Instant>,
}

impl RateLimit {
    /// Admits a request now, or answers false when the last second is already full.
    fn admit(&mut self, now: Instant) -> bool {
        let Some(limit) = self.per_second else {
            return true;
        };
        while self
            .admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.admitted.pop_front();
        }
        let admit = self.admitted.len() < limit as usize;
        if admit {
            self.admitted.push_back(now);
        }
        admit
    }
}

/// The fault switches of one sandbox. All off by default.
#[derive(Default)]
pub struct Faults {
    fail_next: Mutex<FailNext>,
    fail_every: Mutex<(usize, u16)>,
    authenticated_requests: AtomicUsize,
    latency: Mutex<Duration>,
    rate_limit: Mutex<RateLimit>,
    rate_limited: AtomicUsize,
    malformed_body: AtomicBool,
    unexpected_json: AtomicBool,
    truncate_body: AtomicBool,
    reset_every: AtomicUsize,
    successes: AtomicUsize,
    unstable_default_order: AtomicBool,
    unstable_ties: AtomicBool,
    calls_requests: AtomicUsize,
    scorecard_requests: AtomicUsize,
    mutations: Mutex<Vec<(usize, Mutation)>>,
    fail_write_next: Mutex<FailNext>,
    write_latency: Mutex<Duration>,
    update_replaces: AtomicBool,
    clock_skew: Mutex<SignedDuration>,
    matched_cap: Mutex<Option<usize>>,
    null_empty_lists: AtomicBool,
    failing_details: Mutex<FailingDetails>,
    index_delay: Mutex<Duration>,
    churn: Mutex<ChurnState>,
    churned: AtomicUsize,
}

/// Waits out an injected latency, if one is set.
async fn delay(latency: &Mutex<Duration>) {
    let latency = *lock(latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

impl Faults {
    /// The next `n` authenticated requests (any path) answer `status` with the body the real
    /// gateway would send (see [`ApiError::injected`]), without `Retry-After`.
    pub fn fail_next(&self, n: usize, status: u16) {
        *lock(&self.fail_next) = FailNext::new(n, status);
    }

    /// Every `k`-th authenticated request fails with `status`; `k = 0` turns this off.
    pub fn fail_every(&self, k: usize, status: u16) {
        *lock(&self.fail_every) = (k, status);
    }

    /// Delay added to every authenticated request.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.latency) = latency;
    }

    /// At most `per_second` requests in any rolling second; the excess gets 429 without
    /// `Retry-After`. `None` turns the limit off. Rejected requests do not use up the window.
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        let mut limit = lock(&self.rate_limit);
        limit.per_second = per_second;
        limit.admitted.clear();
    }

    /// How many 429s the rate limit has produced.
    pub fn rate_limited_count(&self) -> usize {
        self.rate_limited.load(Ordering::SeqCst)
    }

    /// 200 responses carry a body that is not JSON (a truncated HTML error page).
    pub fn set_malformed_body(&self, on: bool) {
        self.malformed_body.store(on, Ordering::SeqCst);
    }

    /// 200 responses carry JSON of the wrong shape: an object without the expected members.
    pub fn set_unexpected_json(&self, on: bool) {
        self.unexpected_json.store(on, Ordering::SeqCst);
    }

    /// 200 responses carry their JSON cut in the middle.
    pub fn set_truncate_body(&self, on: bool) {
        self.truncate_body.store(on, Ordering::SeqCst);
    }

    /// Every `k`-th successful (200) response announces its full `Content-Length` but sends
    /// only half the body, then the connection closes: the client sees the connection drop
    /// mid-body. `k = 0` turns this off.
    pub fn set_reset_connection_every(&self, k: usize) {
        self.reset_every.store(k, Ordering::SeqCst);
    }

    /// `/calls` without `sortTime` answers its matches in an order that changes with every
    /// request (deterministically, from the `/calls` request counter). Off by default: the
    /// default order is then `time`, `id`, which the real API does not promise.
    pub fn set_unstable_default_order(&self, on: bool) {
        self.unstable_default_order.store(on, Ordering::SeqCst);
    }

    /// `/calls` with `sortTime` still orders by `time`, but calls sharing a `time` come in an
    /// order that changes with every request (deterministically, from the `/calls` request
    /// counter), as a backend paging with `skip` over a non-unique sort key may: pages then skip
    /// and repeat records with nothing changing. `/scorecard`, which has no sort parameter,
    /// answers all its matches in an order that changes with every request.
    pub fn set_unstable_ties(&self, on: bool) {
        self.unstable_ties.store(on, Ordering::SeqCst);
    }

    /// Applies `action` right after the `n`-th `/calls` request has been answered (counting
    /// from 1 the `/calls` requests with valid parameters that no request fault failed):
    /// request `n` sees the old data, request `n + 1` the new. An `n` already passed applies
    /// after the next `/calls` request.
    pub fn mutate_after_calls_requests(&self, n: usize, action: Mutation) {
        lock(&self.mutations).push((n, action));
    }

    /// Data changing while it is read, as on a busy workspace where recent calls change
    /// status every few seconds. After every `churn.every`-th answered listing request
    /// (`/calls` and `/scorecard` requests answered 200, counted together from this call on),
    /// one call in `churn.scope`, picked by a stream seeded from the tenant's seed, gets another
    /// status and the server's now as its `last_modified_time`. The change lands once the
    /// answer is rendered: request n sees the old data, request n + 1 the new. Nothing happens
    /// while no call is in scope. `None` turns churn off.
    pub fn set_churn(&self, churn: Option<Churn>) {
        *lock(&self.churn) = ChurnState { churn, answered: 0 };
    }

    /// How many status changes churn has applied so far.
    pub fn churned_calls(&self) -> usize {
        self.churned.load(Ordering::SeqCst)
    }

    /// The next `n` requests to the write family (`create-*`, `get-*`, `update-*`,
    /// `delete-*`, `create-call`) answer `status`, after the general faults.
    pub fn fail_write_next(&self, n: usize, status: u16) {
        *lock(&self.fail_write_next) = FailNext::new(n, status);
    }

    /// Delay added to every request of the write family (on top of [`Faults::set_latency`]).
    pub fn set_write_latency(&self, latency: Duration) {
        *lock(&self.write_latency) = latency;
    }

    /// `PUT /update-<object>` replaces the stored object with the body instead of merging the
    /// body's fields into it. Clari does not document which it does; off (merge) by default.
    pub fn set_update_replaces(&self, on: bool) {
        self.update_replaces.store(on, Ordering::SeqCst);
    }

    pub(crate) fn update_replaces(&self) -> bool {
        self.update_replaces.load(Ordering::SeqCst)
    }

    /// Sets the server clock to the machine clock plus `skew` (negative: the server is
    /// behind). The server clock stamps every answer's `Date` header and is the "now" of every
    /// other fault; see [`SandboxHandle::server_now`].
    pub fn set_clock_skew(&self, skew: SignedDuration) {
        *lock(&self.clock_skew) = skew;
    }

    /// The machine clock plus the skew, stopping at jiff's range limits.
    pub(crate) fn server_now(&self) -> Timestamp {
        let now = Timestamp::now();
        // Saturating arithmetic with a `SignedDuration` cannot fail; `now` is only a formality.
        now.saturating_add(*lock(&self.clock_skew)).unwrap_or(now)
    }

    /// `/calls` and `/scorecard` report `pagination.matched` as at most `cap`, while
    /// `hasMore` and `nextPageSkip` stay computed from the real matches: the envelope then
    /// disagrees with itself, and a reader that takes `matched` for the truth stops short.
    /// `None` turns it off.
    pub fn set_matched_cap(&self, cap: Option<usize>) {
        *lock(&self.matched_cap) = cap;
    }

    /// A `/calls` or `/scorecard` page without records answers `"calls": null` /
    /// `"scorecards": null` instead of `[]`, as the API's own fixtures show for empty arrays
    /// elsewhere.
    pub fn set_null_empty_lists(&self, on: bool) {
        self.null_empty_lists.store(on, Ordering::SeqCst);
    }

    /// `GET /call-details?id=<one of ids>` always answers `status` with the gateway's body,
    /// as Clari answers 502 for a call whose details exceed the ~6 MB response cap: retrying
    /// never helps. Other ids are unaffected. Each call replaces the list; an empty list turns
    /// the fault off.
    pub fn fail_details_for(&self, ids: Vec<String>, status: u16) {
        *lock(&self.failing_details) = FailingDetails {
            ids: ids.into_iter().collect(),
            status,
        };
    }

    /// The status `/call-details` must answer for `id`, if it is one that always fails.
    pub(crate) fn details_failure(&self, id: &str) -> Option<u16> {
        let failing = lock(&self.failing_details);
        failing.ids.contains(id).then_some(failing.status)
    }

    /// Late indexing: a call shows in `/calls` (under every filter, `matched` included) only
    /// once the server clock has passed its `last_modified_time` by `delay`, as Clari indexes
    /// a modified call a little after its modification time. A reader whose upper bound is the
    /// server's now skips calls that appear behind it. `/call-details` is unaffected; zero turns
    /// the fault off.
    pub fn set_index_delay(&self, delay: Duration) {
        *lock(&self.index_delay) = delay;
    }

    /// The latest `last_modified_time` (epoch ms) `/calls` has indexed, `None` without a delay.
    pub(crate) fn indexed_until(&self) -> Option<i64> {
        let delay = *lock(&self.index_delay);
        (!delay.is_zero()).then(|| {
            self.server_now()
                .saturating_sub(delay)
                .map_or(i64::MIN, Timestamp::as_millisecond)
        })
    }

    /// The faults that shape the next list answer.
    pub(crate) fn list_faults(&self) -> ListFaults {
        ListFaults {
            matched_cap: *lock(&self.matched_cap),
            null_when_empty: self.null_empty_lists.load(Ordering::SeqCst),
        }
    }

    /// The faults decided before an authenticated request runs: latency, rate limit,
    /// `fail_next`, `fail_every`, in that order.
    pub(crate) async fn before_request(&self) -> Result<(), ApiError> {
        delay(&self.latency).await;
        if !lock(&self.rate_limit).admit(Instant::now()) {
            self.rate_limited.fetch_add(1, Ordering::SeqCst);
            return Err(ApiError::injected(429));
        }
        if let Some(status) = lock(&self.fail_next).take() {
            return Err(ApiError::injected(status));
        }
        let count = self.authenticated_requests.fetch_add(1, Ordering::SeqCst) + 1;
        match *lock(&self.fail_every) {
            (k, status) if k > 0 && count.is_multiple_of(k) => Err(ApiError::injected(status)),
            _ => Ok(()),
        }
    }

    /// The write-only faults: write latency, then `fail_write_next`.
    pub(crate) async fn before_write(&self) -> Result<(), ApiError> {
        delay(&self.write_latency).await;
        match lock(&self.fail_write_next).take() {
            Some(status) => Err(ApiError::injected(status)),
            None => Ok(()),
        }
    }

    pub(crate) fn malformed_body(&self) -> bool {
        self.malformed_body.load(Ordering::SeqCst)
    }

    pub(crate) fn unexpected_json(&self) -> bool {
        self.unexpected_json.load(Ordering::SeqCst)
    }

    pub(crate) fn truncate_body(&self) -> bool {
        self.truncate_body.load(Ordering::SeqCst)
    }

    /// Counts a successful response; true when the reset-connection fault picks it.
    pub(crate) fn reset_this_success(&self) -> bool {
        let n = self.successes.fetch_add(1, Ordering::SeqCst) + 1;
        let k = self.reset_every.load(Ordering::SeqCst);
        k > 0 && n.is_multiple_of(k)
    }

    /// Counts a `/calls` request; returns its number (from 1) and whether the default order
    /// should be shuffled for it.
    pub(crate) fn count_calls_request(&self) -> (usize, bool) {
        let n = self.calls_requests.fetch_add(1, Ordering::SeqCst) + 1;
        (n, self.unstable_default_order.load(Ordering::SeqCst))
    }

    /// Whether `/calls` shuffles the calls that share a `time`.
    pub(crate) fn unstable_ties(&self) -> bool {
        self.unstable_ties.load(Ordering::SeqCst)
    }

    /// Counts a `/scorecard` request; under unstable ties, the seed of its order.
    pub(crate) fn count_scorecard_request(&self) -> Option<u64> {
        let n = self.scorecard_requests.fetch_add(1, Ordering::SeqCst) + 1;
        self.unstable_ties().then_some(n as u64)
    }

    /// Counts an answered listing request; the churn due after it, if any, as the event's
    /// number (the listing count since churn was set) and the scope.
    pub(crate) fn count_listing_answer(&self) -> Option<(u64, ChurnScope)> {
        let mut state = lock(&self.churn);
        let churn = state.churn?;
        state.answered += 1;
        (churn.every > 0 && state.answered.is_multiple_of(churn.every))
            .then_some((state.answered as u64, churn.scope))
    }

    pub(crate) fn count_churned_call(&self) {
        self.churned.fetch_add(1, Ordering::SeqCst);
    }

    /// The mutations due after `/calls` request number `n`, removed from the queue.
    pub(crate) fn due_mutations(&self, n: usize) -> Vec<Mutation> {
        let mut pending = lock(&self.mutations);
        let (due, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= n);
        *pending = later;
        due.into_iter().map(|(_, action)| action).collect()
    }
}
