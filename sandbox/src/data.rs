//! The seeded fake tenant: users, topics, scorecard templates, scorecards and calls.
//!
//! Everything is derived from `(seed, index)` so the same seed always gives the same tenant.
//! Calls are the big collection (benchmarks run with a million), so they are NOT kept as JSON:
//! each call is a small [`CallMeta`] (id, `time`, `last_modified_time`, status, private flag)
//! and its full record is rendered on demand from a per-call random stream. Two index vectors
//! keep the calls sorted by `(time, id)` and by `(last_modified_time, id)`, so time and
//! modified-time filters are binary searches instead of scans.

use std::collections::HashMap;
use std::fmt::Write as _;

use fastrand::Rng;
use jiff::Timestamp;
use serde::Serialize;

/// The documented `CallStatus` values; a call's status is an index into this table.
pub(crate) const CALL_STATUSES: [&str; 17] = [
    "POST_PROCESSING_DONE",
    "SCHEDULED",
    "INITIATED",
    "INPROGRESS",
    "WAITING_IN_QUEUE",
    "PROCESSING",
    "PROCESSED",
    "ERROR_IN_TRANSCRIBE",
    "ERROR_IN_PROCESSING",
    "ERROR_IN_RECORDING",
    "UNABLE_TO_JOIN",
    "CALL_DID_NOT_HAPPEN",
    "IGNORED_BY_USER",
    "BOTJOIN_DISABLED",
    "NO_DATA_INCALL",
    "NOBODY_JOINED_CALL",
    "BOTJOIN_DENIED",
];

/// Call types seen in list results; `RECORDING` (an `APICallType`) shows up there too.
const CALL_TYPES: [&str; 9] = [
    "ZOOM",
    "GOOGLE_MEET",
    "MS_TEAMS",
    "RECORDING",
    "AIRCALL_RECORDING",
    "OUTREACH",
    "DIALPAD",
    "RINGCENTRAL",
    "GOTO_MEETING",
];
/// The first this many of [`CALL_TYPES`] are calendar meetings (they carry `calendar_id`).
const MEETING_TYPES: usize = 3;

const BOT_REASONS: [&str; 4] = [
    "IGNORED_BY_USER",
    "IGNORED_NOT_EXTERNAL_MEETING",
    "RECORDING_PERMISSION_DENIED",
    "IGNORED_NO_USER_HAS_ACCEPTED_INVITE",
];

const FIRST_NAMES: [&str; 16] = [
    "April", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noor", "Omar", "Priya",
];
const LAST_NAMES: [&str; 12] = [
    "Smith", "Garcia", "Chen", "Okafor", "Novak", "Silva", "Kumar", "Rossi", "Berg", "Haddad",
    "Tanaka", "Walsh",
];
const COMPANIES: [&str; 12] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Vandelay",
    "Wonka",
];
const TITLES: [&str; 6] = [
    "Discovery call",
    "Product demo",
    "Pricing discussion",
    "Quarterly business review",
    "Renewal sync",
    "Technical deep dive",
];
const DEAL_STAGES: [&str; 5] = [
    "Prospecting",
    "Qualification",
    "Proposal",
    "Negotiation",
    "Closed Won",
];
const CATEGORIES: [&str; 5] = ["Pricing", "Competitors", "Next Steps", "Budget", "Security"];
const PHRASES: [&str; 5] = [
    "what does it cost",
    "we also looked at",
    "let's schedule a follow-up",
    "our budget this quarter",
    "SOC 2 report",
];
const SKILLS: [(&str, &str); 6] = [
    (
        "Discovery",
        "Did the rep uncover the prospect's pain points?",
    ),
    (
        "Rapport",
        "Did the rep establish rapport early in the call?",
    ),
    (
        "Objection handling",
        "Did the rep address objections with evidence?",
    ),
    ("Next steps", "Did the rep agree on concrete next steps?"),
    (
        "Product knowledge",
        "Did the rep answer product questions accurately?",
    ),
    ("Listening", "Did the rep let the prospect talk?"),
];
const TEMPLATE_NAMES: [&str; 4] = [
    "Sales Discovery Call",
    "Demo Excellence",
    "Renewal Readiness",
    "Executive Briefing",
];
const REMARKS: [&str; 3] = [
    "Strong opener, rushed the close.",
    "Great discovery, follow up on security.",
    "Needs more open questions.",
];

/// A UUID as 16 big-endian bytes: byte order equals the order of the lowercase hex string.
pub(crate) type Uuid = [u8; 16];

/// A random version-4 UUID.
pub(crate) fn uuid(rng: &mut Rng) -> Uuid {
    let mut bytes = rng.u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

/// Renders a UUID as lowercase `8-4-4-4-12` hex.
pub(crate) fn uuid_string(id: &Uuid) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in id.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The id `uuid_string` renders as exactly `text` (lowercase, hyphenated), if there is one.
fn parse_uuid(text: &str) -> Option<Uuid> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut id = Uuid::default();
    for (byte, pair) in id.iter_mut().zip(hex.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    (uuid_string(&id) == text).then_some(id)
}

/// Renders epoch milliseconds the way the API does: `2024-03-05T14:25:00.000Z`.
pub(crate) fn format_ms(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => String::new(),
    }
}

/// splitmix64 over `(seed, stream, index)`: independent, reproducible per-record streams.
fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const CALL_STREAM: u64 = 1;
const DETAILS_STREAM: u64 = 2;
const SCORECARD_STREAM: u64 = 3;
const CHURN_STREAM: u64 = 4;

/// Picks one element; `None` only for an empty slice.
fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.usize(..items.len())])
}

/// A float as the API sends it: an `f32` widened to `f64` (`98.23999786376953`).
fn api_float(value: f32) -> f64 {
    f64::from(value)
}

/// Exclusive bounds in epoch milliseconds, as `filter*Gt` / `filter*Lt` give them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MsRange {
    pub gt: Option<i64>,
    pub lt: Option<i64>,
}

impl MsRange {
    pub(crate) fn contains(&self, ms: i64) -> bool {
        self.gt.is_none_or(|gt| ms > gt) && self.lt.is_none_or(|lt| ms < lt)
    }

    /// The range further limited to keys at most `last` (`None` leaves it as it is).
    pub(crate) fn at_most(self, last: Option<i64>) -> MsRange {
        let lt = last.map(|last| last.saturating_add(1));
        MsRange {
            lt: self.lt.into_iter().chain(lt).min(),
            ..self
        }
    }

    /// The positions in `sorted` (ascending by `key`) whose keys lie in the range.
    fn bounds<T>(&self, sorted: &[T], key: impl Fn(&T) -> i64) -> std::ops::Range<usize> {
        let start = self
            .gt
            .map_or(0, |gt| sorted.partition_point(|item| key(item) <= gt));
        let end = self.lt.map_or(sorted.len(), |lt| {
            sorted.partition_point(|item| key(item) < lt)
        });
        start..end.max(start)
    }

    /// The sub-slice of `sorted` (ascending by `key`) whose keys lie in the range.
    fn slice<'a>(&self, sorted: &'a [u32], key: impl Fn(u32) -> i64) -> &'a [u32] {
        &sorted[self.bounds(sorted, |&i| key(i))]
    }
}

/// The compact per-call state; everything else in a call record is rendered from its index.
#[derive(Clone, Debug)]
struct CallMeta {
    id: Uuid,
    time: i64,
    modified: i64,
    status: u8,
    private: bool,
}

/// How `/calls` orders its matches.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CallOrder {
    /// `sortTime=asc`, and also the (undocumented) default: `time`, then `id`.
    Asc,
    /// `sortTime=desc`.
    Desc,
    /// The unstable-default-order fault: a permutation that changes with every request.
    Shuffled(u64),
}

/// The filters `/calls` applies.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CallFilter {
    pub time: MsRange,
    pub modified: MsRange,
    pub include_private: bool,
}

#[derive(Serialize)]
pub(crate) struct User {
    id: String,
    email: String,
    name: String,
    role: &'static str,
    is_recording: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    manager_id: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Topic {
    topic_id: String,
    topic_name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    team_ids: Vec<String>,
    custom_topic: CustomTopic,
    keyword_topic: KeywordTopic,
    /// Topics are filterable by modified time but the record has no such field.
    #[serde(skip)]
    modified: i64,
}

#[derive(Serialize)]
struct CustomTopic {
    description: String,
    status: &'static str,
}

#[derive(Serialize)]
struct KeywordTopic {
    trackers: Vec<&'static str>,
}

#[derive(Serialize)]
pub(crate) struct Template {
    id: String,
    customer_id: String,
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    questions: Vec<Question>,
}

#[derive(Serialize)]
struct Question {
    skill: &'static str,
    label: &'static str,
    order: String,
}

/// A scorecard's compact state; its `time` is its call's `time` and is not part of the record.
struct ScorecardMeta {
    id: Uuid,
    call: u32,
    time: i64,
    rep: usize,
    scorer: usize,
    template: usize,
}

#[derive(Serialize)]
pub(crate) struct ScorecardRecord<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    rep: &'a str,
    scorer: &'a str,
    template_id: &'a str,
    call_id: String,
    total_score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    remark: Option<&'static str>,
    questions_score: Vec<QuestionScore<'a>>,
}

#[derive(Serialize)]
struct QuestionScore<'a> {
    score: u32,
    skill: &'a str,
    label: &'a str,
    order: &'a str,
}

/// Which signed media URLs a request asked for (`includeAudio`, `includeVideo`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Media {
    pub audio: bool,
    pub video: bool,
}

#[derive(Serialize)]
pub(crate) struct CallRecord<'a> {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_id: Option<String>,
    title: String,
    users: Vec<CallUser<'a>>,
    #[serde(rename = "externalParticipants")]
    external_participants: Vec<Participant>,
    #[serde(rename = "joinedParticipants")]
    joined_participants: Vec<Participant>,
    status: &'static str,
    bot_not_join_reason: Vec<&'static str>,
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    icaluid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calendar_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recurring_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_start_time: Option<String>,
    last_modified_time: String,
    audio_url: Option<String>,
    video_url: Option<String>,
    disposition: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    deal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deal_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deal_close_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deal_stage_before_call: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crm_info: Option<CrmInfo>,
    bookmark_timestamps: Vec<String>,
    metrics: Metrics<'a>,
    call_review_page_url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallUser<'a> {
    user_id: &'a str,
    user_email: &'a str,
    is_organizer: bool,
    person_id: u32,
}

/// An invited or joined participant; joined ones are sometimes only `{name}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Participant {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    person_id: Option<u32>,
}

#[derive(Serialize)]
struct CrmInfo {
    source_crm: &'static str,
    deal_id: String,
    account_id: String,
    contact_ids: Vec<String>,
}

#[derive(Serialize)]
struct Metrics<'a> {
    talk_listen_ratio: f64,
    num_questions_asked: u32,
    num_questions_asked_by_reps: u32,
    call_duration: u32,
    total_speak_duration: f64,
    longest_monologue_duration: f64,
    longest_monologue_start_time: f64,
    engaging_questions: u32,
    categories: Vec<Category<'a>>,
}

#[derive(Serialize)]
struct Category<'a> {
    name: &'static str,
    occurences: u32,
    ai_detected: bool,
    phrases_matched: Vec<Phrase<'a>>,
}

#[derive(Serialize)]
struct Phrase<'a> {
    text: &'static str,
    user_id: &'a str,
    name: &'a str,
    time: f64,
}

/// `/call-details`: every call field plus transcript, summary and competitor sentiments.
#[derive(Serialize)]
pub(crate) struct CallDetails<'a> {
    #[serde(flatten)]
    call: CallRecord<'a>,
    deal_stage_live: &'static str,
    transcript: Vec<Turn>,
    summary: Summary,
    competitor_sentiments: Vec<Sentiment>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Turn {
    text: String,
    start: f64,
    end: f64,
    person_id: u32,
    annotations: Vec<Annotation>,
}

#[derive(Serialize)]
struct Annotation {
    tracker: &'static str,
    phrase: &'static str,
    category: &'static str,
}

#[derive(Serialize)]
struct Summary {
    full_summary: String,
    topics_discussed: Vec<TopicDiscussed>,
    key_action_items: Vec<ActionItem>,
}

#[derive(Serialize)]
struct TopicDiscussed {
    name: &'static str,
    start_timestamp: String,
    end_timestamp: String,
    summary: String,
}

#[derive(Serialize)]
struct ActionItem {
    action_item: String,
    speaker_name: String,
    start_timestamp: String,
    end_timestamp: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sentiment {
    #[serde(rename = "competitor_name")]
    competitor_name: &'static str,
    sentiment: &'static str,
    reasoning: String,
    person_id: String,
    #[serde(rename = "turn_start_time")]
    turn_start_time: String,
}

/// The shape of the generated tenant (the data part of `SandboxConfig`).
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    pub seed: u64,
    pub calls: usize,
    pub users: usize,
    pub topics: usize,
    pub scorecards: usize,
    pub scorecard_templates: usize,
    pub history_start: i64,
    pub history_end: i64,
    pub private_ratio: f64,
}

/// The whole fake tenant.
pub(crate) struct Dataset {
    shape: Shape,
    /// Continues after start-up generation so that `add_calls` stays deterministic too.
    rng: Rng,
    pub users: Vec<User>,
    recording_users: Vec<usize>,
    pub topics: Vec<Topic>,
    pub templates: Vec<Template>,
    calls: Vec<CallMeta>,
    /// Call indices sorted by `(time, id)`.
    by_time: Vec<u32>,
    /// Call indices sorted by `(last_modified_time, id)`.
    by_modified: Vec<u32>,
    /// Non-status edits (`edit_call_title`): they never move `last_modified_time`.
    titles: HashMap<u32, String>,
    /// Sorted by `(time, id)`.
    scorecards: Vec<ScorecardMeta>,
}

impl Dataset {
    pub(crate) fn generate(shape: Shape) -> Dataset {
        let mut rng = Rng::with_seed(shape.seed);
        let users = generate_users(&mut rng, shape.users);
        let mut recording_users: Vec<usize> = (0..users.len())
            .filter(|&i| users[i].is_recording)
            .collect();
        if recording_users.is_empty() {
            recording_users = (0..users.len()).collect();
        }
        let topics = generate_topics(&mut rng, &shape);
        let templates = generate_templates(&mut rng, shape.scorecard_templates);
        let mut dataset = Dataset {
            rng,
            users,
            recording_users,
            topics,
            templates,
            calls: Vec::with_capacity(shape.calls),
            by_time: Vec::new(),
            by_modified: Vec::new(),
            titles: HashMap::new(),
            scorecards: Vec::new(),
            shape,
        };
        for _ in 0..dataset.shape.calls {
            let meta = dataset.next_call(None);
            dataset.calls.push(meta);
        }
        dataset.by_time = sorted_by(&dataset.calls, |c| c.time);
        dataset.by_modified = sorted_by(&dataset.calls, |c| c.modified);
        dataset.scorecards = dataset.generate_scorecards();
        dataset
    }

    /// The next call's compact state. `forced_modified` pins `last_modified_time` (for
    /// `add_calls`); otherwise it follows `time` by a processing delay. Some calls copy the
    /// previous call's `last_modified_time` (exact ties, as bulk status updates produce) or its
    /// `time` (two calls in the same millisecond).
    fn next_call(&mut self, forced_modified: Option<i64>) -> CallMeta {
        let (start, end) = (
            self.shape.history_start,
            self.shape.history_end.max(self.shape.history_start + 1),
        );
        let rng = &mut self.rng;
        let id = uuid(rng);
        let status = if rng.u8(..100) < 85 {
            0
        } else {
            rng.u8(1..CALL_STATUSES.len() as u8)
        };
        let private = rng.f64() < self.shape.private_ratio;
        let latest = forced_modified.unwrap_or(end - 1);
        let earliest = start.min(latest);
        let mut time = rng.i64(earliest..=latest);
        // Most calls are scheduled on the minute, so many share a `time`.
        let on_the_minute = time - time.rem_euclid(60_000);
        if rng.u8(..100) < 85 && on_the_minute >= earliest {
            time = on_the_minute;
        }
        let mut modified = match forced_modified {
            Some(modified) => modified,
            None => time + rng.i64(0..=(3 * 3_600_000).min(end - 1 - time).max(0)),
        };
        if let (Some(prev), None) = (self.calls.last(), forced_modified) {
            match rng.u8(..100) {
                0..2 => {
                    modified = prev.modified;
                    time = time.min(modified);
                }
                2..3 => {
                    time = prev.time;
                    modified = modified.max(time);
                }
                _ => {}
            }
        }
        CallMeta {
            id,
            time,
            modified,
            status,
            private,
        }
    }

    fn generate_scorecards(&mut self) -> Vec<ScorecardMeta> {
        if self.calls.is_empty() || self.templates.is_empty() || self.users.is_empty() {
            return Vec::new();
        }
        let reps: Vec<usize> = self.users_with_role("REP");
        let managers: Vec<usize> = self.users_with_role("MANAGER");
        let everyone: Vec<usize> = (0..self.users.len()).collect();
        let reps = if reps.is_empty() { &everyone } else { &reps };
        let managers = if managers.is_empty() {
            &everyone
        } else {
            &managers
        };
        let rng = &mut self.rng;
        let mut cards: Vec<ScorecardMeta> = (0..self.shape.scorecards)
            .map(|_| {
                let call = rng.u32(..self.calls.len() as u32);
                ScorecardMeta {
                    id: uuid(rng),
                    call,
                    time: self.calls[call as usize].time,
                    rep: reps[rng.usize(..reps.len())],
                    scorer: managers[rng.usize(..managers.len())],
                    template: rng.usize(..self.templates.len()),
                }
            })
            .collect();
        cards.sort_unstable_by_key(|c| (c.time, c.id));
        cards
    }

    fn users_with_role(&self, role: &str) -> Vec<usize> {
        (0..self.users.len())
            .filter(|&i| self.users[i].role == role)
            .collect()
    }

    pub(crate) fn recording_emails(&self) -> Vec<String> {
        self.recording_users
            .iter()
            .filter(|&&i| self.users[i].is_recording)
            .map(|&i| self.users[i].email.clone())
            .collect()
    }

    pub(crate) fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The indices of the calls matching `filter`, in `order`. Walks whichever sorted index
    /// gives the narrower candidate range and filters on the other bound.
    pub(crate) fn find_calls(&self, filter: &CallFilter, order: CallOrder) -> Vec<u32> {
        let calls = &self.calls;
        let by_time = filter.time.slice(&self.by_time, |i| calls[i as usize].time);
        let by_modified = filter
            .modified
            .slice(&self.by_modified, |i| calls[i as usize].modified);
        let keep = |i: &&u32| {
            let c = &calls[**i as usize];
            (filter.include_private || !c.private)
                && filter.time.contains(c.time)
                && filter.modified.contains(c.modified)
        };
        let mut matches: Vec<u32> = if by_modified.len() < by_time.len() {
            let mut found: Vec<u32> = by_modified.iter().filter(keep).copied().collect();
            found.sort_unstable_by_key(|&i| (calls[i as usize].time, calls[i as usize].id));
            found
        } else {
            by_time.iter().filter(keep).copied().collect()
        };
        match order {
            CallOrder::Asc => {}
            CallOrder::Desc => matches.reverse(),
            CallOrder::Shuffled(seed) => Rng::with_seed(seed).shuffle(&mut matches),
        }
        matches
    }

    /// Shuffles every run of calls sharing a `time` in `matches` (ordered by `time`) with the
    /// stream seeded by `seed`, leaving the `time` order itself alone.
    pub(crate) fn shuffle_ties(&self, matches: &mut [u32], seed: u64) {
        let mut rng = Rng::with_seed(seed);
        let time = |i: &u32| self.calls[*i as usize].time;
        for run in matches.chunk_by_mut(|a, b| time(a) == time(b)) {
            rng.shuffle(run);
        }
    }

    /// Ids of the private calls (privacy is not part of the rendered record).
    pub(crate) fn private_call_ids(&self) -> Vec<String> {
        self.calls
            .iter()
            .filter(|c| c.private)
            .map(|c| uuid_string(&c.id))
            .collect()
    }

    /// The index of the call with this id: a linear scan comparing bytes (`/call-details` and
    /// test helpers look calls up; neither is frequent enough for an index).
    fn call_index(&self, id: &str) -> Option<u32> {
        let id = parse_uuid(id)?;
        self.calls.iter().position(|c| c.id == id).map(|i| i as u32)
    }

    /// Like [`Dataset::call_index`], for a test helper naming a call that must exist.
    fn existing_call(&self, id: &str) -> u32 {
        self.call_index(id)
            .unwrap_or_else(|| panic!("sandbox: no call with id {id}"))
    }

    /// A status change: the only thing that moves `last_modified_time` in the real API.
    /// Panics on an unknown id or status, since a test that names either made a mistake.
    pub(crate) fn touch_call(&mut self, id: &str, status: &str, modified: i64) {
        let index = self.existing_call(id);
        let status = CALL_STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or_else(|| panic!("sandbox: unknown CallStatus {status}"));
        self.set_status(index, status as u8, modified);
    }

    /// Churn event number `event`: one call whose `time` lies in `times`, picked by the
    /// event's own stream, changes to another status modified at `modified`. False when no
    /// call is in range. The candidates are a binary search on the `time` index away, so this
    /// stays cheap on a million calls.
    pub(crate) fn churn(&mut self, times: MsRange, event: u64, modified: i64) -> bool {
        let calls = &self.calls;
        let candidates = times.bounds(&self.by_time, |&i| calls[i as usize].time);
        if candidates.is_empty() {
            return false;
        }
        let mut rng = Rng::with_seed(mix(self.shape.seed, CHURN_STREAM, event));
        let index = self.by_time[rng.usize(candidates)];
        let statuses = CALL_STATUSES.len() as u8;
        let status = (calls[index as usize].status + rng.u8(1..statuses)) % statuses;
        self.set_status(index, status, modified);
        true
    }

    /// The status change behind [`Dataset::touch_call`] and [`Dataset::churn`]; keeps the
    /// modified-time index sorted.
    fn set_status(&mut self, index: u32, status: u8, modified: i64) {
        self.remove_from_modified_index(index);
        let call = &mut self.calls[index as usize];
        call.status = status;
        call.modified = modified;
        self.insert_into_modified_index(index);
    }

    /// A non-status edit: changes the title and leaves `last_modified_time` alone.
    pub(crate) fn edit_call_title(&mut self, id: &str, title: &str) {
        let index = self.existing_call(id);
        self.titles.insert(index, title.to_owned());
    }

    /// Appends `n` calls modified at `modified`; returns their ids.
    pub(crate) fn add_calls(&mut self, n: usize, modified: i64) -> Vec<String> {
        (0..n)
            .map(|_| {
                let meta = self.next_call(Some(modified));
                let index = self.calls.len() as u32;
                let id = uuid_string(&meta.id);
                self.calls.push(meta);
                let at = self.position(&self.by_time, index, |c| c.time);
                self.by_time.insert(at, index);
                self.insert_into_modified_index(index);
                id
            })
            .collect()
    }

    /// Where call `index` belongs in `sorted`, an index ordered by (`key`, id).
    fn position(&self, sorted: &[u32], index: u32, key: fn(&CallMeta) -> i64) -> usize {
        let calls = &self.calls;
        let of = |i: u32| (key(&calls[i as usize]), calls[i as usize].id);
        let wanted = of(index);
        sorted.partition_point(|&i| of(i) < wanted)
    }

    fn modified_position(&self, index: u32) -> usize {
        self.position(&self.by_modified, index, |c| c.modified)
    }

    fn remove_from_modified_index(&mut self, index: u32) {
        let at = self.modified_position(index);
        debug_assert_eq!(self.by_modified[at], index);
        self.by_modified.remove(at);
    }

    fn insert_into_modified_index(&mut self, index: u32) {
        let at = self.modified_position(index);
        self.by_modified.insert(at, index);
    }

    /// Renders call `index` as `/calls` would. Every random draw happens whatever the call's
    /// current status, so a status change alters only the fields derived from the status.
    pub(crate) fn render_call(&self, index: u32, media: Media) -> CallRecord<'_> {
        let meta = &self.calls[index as usize];
        let mut rng = Rng::with_seed(mix(self.shape.seed, CALL_STREAM, u64::from(index)));
        let id = uuid_string(&meta.id);
        let status = CALL_STATUSES[meta.status as usize];
        let kind_index = rng.usize(..CALL_TYPES.len());
        let kind = CALL_TYPES[kind_index];
        let company = *pick(&mut rng, &COMPANIES).unwrap_or(&"Acme");
        let generated_title = format!("{} with {company}", TITLES[rng.usize(..TITLES.len())]);

        let mut users = Vec::new();
        for n in 0..rng.u32(1..=2) {
            if let Some(&u) = pick(&mut rng, &self.recording_users) {
                let user = &self.users[u];
                if users.iter().all(|c: &CallUser| c.user_id != user.id) {
                    users.push(CallUser {
                        user_id: &user.id,
                        user_email: &user.email,
                        is_organizer: n == 0,
                        person_id: users.len() as u32,
                    });
                }
            }
        }
        let mut external = Vec::new();
        for _ in 0..rng.u32(0..=3) {
            let first = FIRST_NAMES[rng.usize(..FIRST_NAMES.len())];
            let last = LAST_NAMES[rng.usize(..LAST_NAMES.len())];
            external.push(Participant {
                name: format!("{first} {last}"),
                email: Some(format!(
                    "{}.{}@{}.example",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    company.to_lowercase()
                )),
                phone: Some(format!("+1555{:07}", rng.u32(..10_000_000))),
                person_id: Some((users.len() + external.len()) as u32),
            });
        }
        let name_only = rng.u8(..100) < 30;
        let joined = external
            .iter()
            .filter(|_| rng.bool())
            .map(|p| Participant {
                name: p.name.clone(),
                email: (!name_only).then(|| p.email.clone()).flatten(),
                phone: None,
                person_id: (!name_only).then_some(p.person_id).flatten(),
            })
            .collect();

        let done = meta.status == 0;
        let bot_reason = BOT_REASONS[rng.usize(..BOT_REASONS.len())];
        let bot_not_join_reason = match status {
            "IGNORED_BY_USER" | "BOTJOIN_DENIED" | "UNABLE_TO_JOIN" | "BOTJOIN_DISABLED" => {
                vec![bot_reason]
            }
            _ => Vec::new(),
        };
        let connected = rng.u8(..100) < 75;
        let disposition = match status {
            "POST_PROCESSING_DONE" if connected => "CALL_CONNECTED_WITH_PROSPECT",
            "POST_PROCESSING_DONE" => "CALL_DID_NOT_CONNECT_WITH_PROSPECT",
            "NOBODY_JOINED_CALL" => "CALL_NOBODY_JOINED",
            "BOTJOIN_DENIED" => "CALL_BOTJOIN_DENIED",
            _ => "UNKNOWN_CALL_DISPOSITION",
        };

        let is_meeting = kind_index < MEETING_TYPES;
        let has_source_id = rng.u8(..100) < 70;
        let source_id = has_source_id.then(|| {
            if kind == "RECORDING" {
                "REQUESTED_POST".to_owned()
            } else {
                format!("src-{:012x}", rng.u64(..1 << 48))
            }
        });
        let calendar_id = (is_meeting && rng.u8(..100) < 80)
            .then(|| format!("{:016x}@calendar.sandbox.example", rng.u64(..)));
        let icaluid = calendar_id
            .as_ref()
            .map(|_| format!("{:026x}@google.com", rng.u128(..1 << 104)));
        let recurring = calendar_id.is_some() && rng.u8(..100) < 20;
        let recurring_event_id = recurring.then(|| format!("rec{:013x}", rng.u64(..1 << 52)));
        let original_start_time = recurring.then(|| format_ms(meta.time));

        let has_crm = rng.u8(..100) < 60;
        let deal_value = rng.u32(1..500) * 500;
        let close_in_days = rng.i64(7..120);
        let stage = DEAL_STAGES[rng.usize(..DEAL_STAGES.len())];
        let crm_id = rng.u64(..1 << 40);
        let contact_names: Vec<String> = external.iter().map(|p| p.name.clone()).collect();
        let crm = has_crm.then(|| CrmInfo {
            source_crm: if crm_id.is_multiple_of(3) {
                "HUBSPOT"
            } else {
                "SALESFORCE"
            },
            deal_id: format!("006{crm_id:012X}"),
            account_id: format!("001{crm_id:012X}"),
            contact_ids: (0..contact_names.len())
                .map(|n| format!("003{:012X}", crm_id + n as u64))
                .collect(),
        });

        let duration = rng.u32(60..3_600) * u32::from(done);
        let speak = duration as f32 * (0.6 + 0.35 * rng.f32());
        let monologue = speak * (0.05 + 0.3 * rng.f32());
        let bookmark_timestamps = (0..rng.u32(0..=2))
            .map(|_| format_ms(meta.time + i64::from(rng.u32(0..=duration.max(1))) * 1000))
            .collect();
        let mut categories: Vec<Category> = (0..rng.usize(0..=3))
            .map(|_| {
                let occurences = rng.u32(1..=4);
                Category {
                    name: CATEGORIES[rng.usize(..CATEGORIES.len())],
                    occurences,
                    ai_detected: rng.bool(),
                    phrases_matched: users
                        .iter()
                        .take(occurences as usize)
                        .map(|u| Phrase {
                            text: PHRASES[rng.usize(..PHRASES.len())],
                            user_id: u.user_id,
                            name: self.user_name(u.user_id),
                            time: api_float(duration as f32 * rng.f32()),
                        })
                        .collect(),
                }
            })
            .collect();
        if !done {
            categories.clear();
        }
        let questions = rng.u32(0..=30);
        let metrics = Metrics {
            talk_listen_ratio: api_float((0.2 + 0.6 * rng.f32()) * f32::from(u8::from(done))),
            num_questions_asked: questions * u32::from(done),
            num_questions_asked_by_reps: questions / 2 * u32::from(done),
            call_duration: duration,
            total_speak_duration: api_float(speak),
            longest_monologue_duration: api_float(monologue),
            longest_monologue_start_time: api_float((speak - monologue) * rng.f32()),
            engaging_questions: questions / 4 * u32::from(done),
            categories,
        };
        let signed = |what: &str| {
            format!(
                "https://copilot-media.sandbox.example/{id}/{what}?X-Amz-Expires=14400&X-Amz-Signature={:064x}",
                mix(self.shape.seed, u64::from(index), what.len() as u64)
            )
        };

        CallRecord {
            source_id,
            title: self.titles.get(&index).cloned().unwrap_or(generated_title),
            users,
            external_participants: external,
            joined_participants: joined,
            status,
            bot_not_join_reason,
            kind,
            time: format_ms(meta.time),
            icaluid,
            calendar_id,
            recurring_event_id,
            original_start_time,
            last_modified_time: format_ms(meta.modified),
            audio_url: media.audio.then(|| signed("audio.mp3")),
            video_url: media.video.then(|| signed("video.mp4")),
            disposition,
            deal_name: has_crm.then(|| format!("{company} - {deal_value} seats")),
            deal_value: has_crm.then(|| deal_value.to_string()),
            deal_close_date: has_crm.then(|| format_ms(meta.time + close_in_days * 86_400_000)),
            deal_stage_before_call: has_crm.then_some(stage),
            account_name: has_crm.then(|| format!("{company} Inc.")),
            contact_names: has_crm.then_some(contact_names),
            crm_info: crm,
            bookmark_timestamps,
            metrics,
            call_review_page_url: format!("https://copilot.clari.com/call/{id}"),
            id,
        }
    }

    fn user_name(&self, id: &str) -> &str {
        self.users
            .iter()
            .find(|u| u.id == id)
            .map_or("", |u| u.name.as_str())
    }

    /// `/call-details` for the call with this id, or `None` when there is no such call.
    pub(crate) fn render_call_details(&self, id: &str, media: Media) -> Option<CallDetails<'_>> {
        let index = self.call_index(id)?;
        let call = self.render_call(index, media);
        let mut rng = Rng::with_seed(mix(self.shape.seed, DETAILS_STREAM, u64::from(index)));
        let speakers = (call.users.len() + call.external_participants.len()).max(1) as u32;
        let duration = call.metrics.call_duration as f32;
        let turns = if duration > 0.0 { rng.usize(2..8) } else { 0 };
        let slot = duration / turns.max(1) as f32;
        let transcript = (0..turns)
            .map(|n| {
                let tracked = rng.u8(..100) < 30;
                Turn {
                    text: format!("{} {}", PHRASES[rng.usize(..PHRASES.len())], n),
                    start: api_float(slot * n as f32),
                    end: api_float(slot * (n as f32 + 0.9)),
                    person_id: rng.u32(..speakers),
                    annotations: tracked
                        .then(|| Annotation {
                            tracker: CATEGORIES[rng.usize(..CATEGORIES.len())],
                            phrase: PHRASES[rng.usize(..PHRASES.len())],
                            category: "keyword",
                        })
                        .into_iter()
                        .collect(),
                }
            })
            .collect();
        let seconds = |s: f32| format!("{:.2}", s);
        let summary = Summary {
            full_summary: format!("{} covered pricing and next steps.", call.title),
            topics_discussed: (0..turns.min(2))
                .map(|n| TopicDiscussed {
                    name: CATEGORIES[n],
                    start_timestamp: seconds(slot * n as f32),
                    end_timestamp: seconds(slot * (n as f32 + 1.0)),
                    summary: format!("Discussed {}.", CATEGORIES[n].to_lowercase()),
                })
                .collect(),
            key_action_items: call
                .users
                .first()
                .map(|u| ActionItem {
                    action_item: "Send the proposal".to_owned(),
                    speaker_name: self.user_name(u.user_id).to_owned(),
                    start_timestamp: seconds(slot),
                    end_timestamp: seconds(slot * 1.5),
                })
                .into_iter()
                .collect(),
        };
        let competitor_sentiments = (turns > 0 && rng.bool())
            .then(|| Sentiment {
                competitor_name: COMPANIES[rng.usize(..COMPANIES.len())],
                sentiment: if rng.bool() { "POSITIVE" } else { "NEGATIVE" },
                reasoning: "Prospect compared feature sets.".to_owned(),
                person_id: rng.u32(..speakers).to_string(),
                turn_start_time: seconds(slot),
            })
            .into_iter()
            .collect();
        Some(CallDetails {
            deal_stage_live: DEAL_STAGES[rng.usize(..DEAL_STAGES.len())],
            call,
            transcript,
            summary,
            competitor_sentiments,
        })
    }

    /// Scorecard positions (in `(time, id)` order) matching the filters.
    pub(crate) fn find_scorecards(
        &self,
        time: MsRange,
        rep: Option<&str>,
        scorer: Option<&str>,
    ) -> Vec<u32> {
        let is =
            |wanted: Option<&str>, user: usize| wanted.is_none_or(|w| self.users[user].id == w);
        time.bounds(&self.scorecards, |card| card.time)
            .filter(|&i| {
                let card = &self.scorecards[i];
                is(rep, card.rep) && is(scorer, card.scorer)
            })
            .map(|i| i as u32)
            .collect()
    }

    pub(crate) fn render_scorecard(&self, position: u32) -> ScorecardRecord<'_> {
        let card = &self.scorecards[position as usize];
        let template = &self.templates[card.template];
        let mut rng = Rng::with_seed(mix(self.shape.seed, SCORECARD_STREAM, u64::from(position)));
        let questions_score: Vec<QuestionScore> = template
            .questions
            .iter()
            .map(|q| QuestionScore {
                score: rng.u32(1..=5),
                skill: q.skill,
                label: q.label,
                order: &q.order,
            })
            .collect();
        let sum: u32 = questions_score.iter().map(|q| q.score).sum();
        let total = 2.0 * f64::from(sum) / questions_score.len().max(1) as f64;
        ScorecardRecord {
            id: uuid_string(&card.id),
            kind: "CALL",
            rep: &self.users[card.rep].id,
            scorer: &self.users[card.scorer].id,
            template_id: &template.id,
            call_id: uuid_string(&self.calls[card.call as usize].id),
            total_score: (total * 2.0).round() / 2.0,
            remark: (rng.u8(..100) < 60).then(|| REMARKS[rng.usize(..REMARKS.len())]),
            questions_score,
        }
    }

    pub(crate) fn topics_modified(&self, range: MsRange) -> Vec<&Topic> {
        self.topics
            .iter()
            .filter(|t| range.contains(t.modified))
            .collect()
    }
}

/// Call indices sorted by `(key, id)`. Sorting the keys themselves, not indices that look
/// them up, keeps a million-call sort cache-friendly.
fn sorted_by(calls: &[CallMeta], key: impl Fn(&CallMeta) -> i64) -> Vec<u32> {
    let mut keyed: Vec<(i64, Uuid, u32)> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| (key(c), c.id, i as u32))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

fn generate_users(rng: &mut Rng, n: usize) -> Vec<User> {
    let mut users: Vec<User> = Vec::with_capacity(n);
    let mut managers = Vec::new();
    for i in 0..n {
        let first = FIRST_NAMES[i % FIRST_NAMES.len()];
        let last = LAST_NAMES[rng.usize(..LAST_NAMES.len())];
        let role = match (i, rng.u8(..100)) {
            (0, _) | (_, 0..20) => "MANAGER",
            (_, 20..30) => "OBSERVER",
            _ => "REP",
        };
        let id = uuid_string(&uuid(rng));
        let manager_id = (role == "REP" && rng.u8(..100) < 70)
            .then(|| pick(rng, &managers).cloned())
            .flatten();
        if role == "MANAGER" {
            managers.push(id.clone());
        }
        users.push(User {
            email: format!(
                "{}.{}{}@sandbox-tenant.example",
                first.to_lowercase(),
                last.to_lowercase(),
                i
            ),
            name: format!("{first} {last}"),
            role,
            is_recording: role != "OBSERVER" && rng.u8(..100) < 90,
            manager_id,
            id,
        });
    }
    users
}

fn generate_topics(rng: &mut Rng, shape: &Shape) -> Vec<Topic> {
    (0..shape.topics)
        .map(|i| {
            let name = CATEGORIES[i % CATEGORIES.len()];
            let keyword = rng.bool();
            Topic {
                topic_id: uuid_string(&uuid(rng)),
                topic_name: name,
                kind: if keyword { "KEYWORD" } else { "CUSTOM" },
                team_ids: (0..rng.usize(0..=2))
                    .map(|_| format!("team-{:06x}", rng.u32(..1 << 24)))
                    .collect(),
                custom_topic: CustomTopic {
                    description: format!("Mentions of {}", name.to_lowercase()),
                    status: if rng.u8(..100) < 80 {
                        "ACTIVE"
                    } else {
                        "INACTIVE"
                    },
                },
                keyword_topic: KeywordTopic {
                    trackers: (0..rng.usize(1..=3))
                        .map(|_| PHRASES[rng.usize(..PHRASES.len())])
                        .collect(),
                },
                modified: rng.i64(shape.history_start..=shape.history_end.max(shape.history_start)),
            }
        })
        .collect()
}

fn generate_templates(rng: &mut Rng, n: usize) -> Vec<Template> {
    let customer_id = format!("cust-{:06x}", rng.u32(..1 << 24));
    (0..n)
        .map(|i| {
            let count = rng.usize(2..=SKILLS.len());
            let first = rng.usize(..SKILLS.len());
            Template {
                id: uuid_string(&uuid(rng)),
                customer_id: customer_id.clone(),
                name: TEMPLATE_NAMES[i % TEMPLATE_NAMES.len()],
                kind: "CALL",
                questions: (0..count)
                    .map(|q| {
                        let (skill, label) = SKILLS[(first + q) % SKILLS.len()];
                        Question {
                            skill,
                            label,
                            order: (q + 1).to_string(),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}
