//! Record numbering and state release: the part of the destination that decides when a STATE
//! may be echoed. Pure bookkeeping, no I/O, so it can be tested exhaustively.
//!
//! Every record gets the next number (from 1). A STATE takes the number of the last record
//! before it (its *barrier*). Records finish in any order; a state is released once every
//! record numbered at or below its barrier is acknowledged, i.e. once the lowest
//! unacknowledged number is above the barrier. States are released strictly in input order,
//! each one (duplicates included), and only states that were given here.
//!
//! Counts for `destinationStats`: a STREAM state covers its stream's records since that
//! stream's previous state; a GLOBAL or LEGACY state covers every record since the previous
//! global one. Each record is tallied in both windows it belongs to, and a state takes its
//! window's tally when it arrives (the records it covers are exactly those before it).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;

/// How an acknowledged record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The API confirmed it.
    Written,
    /// The schema or the API rejected it, and the `skip` policy let the sync go on.
    Rejected,
}

/// Which records a state covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope<K> {
    /// A STREAM state: records of this stream since its previous state.
    Stream(K),
    /// A GLOBAL or LEGACY state: every record since the previous such state.
    Global,
}

/// Written and rejected records of one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub written: u64,
    pub rejected: u64,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Written => self.written += 1,
            Outcome::Rejected => self.rejected += 1,
        }
    }
}

/// A window: the stream (or `None` for the global one) and its epoch, which moves on at each
/// state that closes it.
type Window<K> = (Option<K>, u64);

struct HeldState<K, T> {
    barrier: u64,
    window: Window<K>,
    payload: T,
}

/// The bookkeeping of one `write`.
pub struct Acks<K, T> {
    last_number: u64,
    /// Unacknowledged records and the two windows each one will be tallied in.
    pending: BTreeMap<u64, [Window<K>; 2]>,
    epochs: HashMap<Option<K>, u64>,
    tallies: HashMap<Window<K>, Tally>,
    held: VecDeque<HeldState<K, T>>,
}

impl<K: Clone + Eq + Hash, T> Default for Acks<K, T> {
    fn default() -> Self {
        Self {
            last_number: 0,
            pending: BTreeMap::new(),
            epochs: HashMap::new(),
            tallies: HashMap::new(),
            held: VecDeque::new(),
        }
    }
}

impl<K: Clone + Eq + Hash, T> Acks<K, T> {
    /// Numbers the next record of `stream`; it is unacknowledged until [`Acks::ack`].
    pub fn record(&mut self, stream: &K) -> u64 {
        self.last_number += 1;
        let windows = [self.window(Some(stream.clone())), self.window(None)];
        self.pending.insert(self.last_number, windows);
        self.last_number
    }

    /// Holds a state behind every record numbered so far.
    pub fn state(&mut self, scope: Scope<K>, payload: T) {
        let key = match scope {
            Scope::Stream(stream) => Some(stream),
            Scope::Global => None,
        };
        let window = self.window(key.clone());
        *self.epochs.entry(key).or_default() += 1;
        self.held.push_back(HeldState {
            barrier: self.last_number,
            window,
            payload,
        });
    }

    /// Marks a record acknowledged. Acknowledging an unknown or already acknowledged number
    /// is a no-op, so a record can never be counted twice.
    pub fn ack(&mut self, number: u64, outcome: Outcome) {
        if let Some(windows) = self.pending.remove(&number) {
            for window in windows {
                self.tallies.entry(window).or_default().add(outcome);
            }
        }
    }

    /// The states whose records are all acknowledged, in input order, each with the tally of
    /// the records it covers.
    pub fn release(&mut self) -> Vec<(T, Tally)> {
        let lowest_pending = self.pending.keys().next().copied().unwrap_or(u64::MAX);
        let mut released = Vec::new();
        while self
            .held
            .front()
            .is_some_and(|state| state.barrier < lowest_pending)
        {
            let Some(state) = self.held.pop_front() else {
                break;
            };
            let tally = self.tallies.remove(&state.window).unwrap_or_default();
            released.push((state.payload, tally));
        }
        released
    }

    /// Records numbered but not yet acknowledged (in flight or waiting).
    pub fn unacknowledged(&self) -> usize {
        self.pending.len()
    }

    /// States received but not yet released.
    pub fn held_states(&self) -> usize {
        self.held.len()
    }

    fn window(&self, stream: Option<K>) -> Window<K> {
        let epoch = self.epochs.get(&stream).copied().unwrap_or(0);
        (stream, epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type TestAcks = Acks<&'static str, u32>;

    fn ids(released: Vec<(u32, Tally)>) -> Vec<u32> {
        released.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn a_state_waits_for_every_record_before_it_even_when_later_ones_finish_first() {
        let mut acks = TestAcks::default();
        let a = acks.record(&"s");
        let b = acks.record(&"s");
        acks.state(Scope::Stream("s"), 1);
        let c = acks.record(&"s");
        acks.state(Scope::Stream("s"), 2);
        acks.ack(c, Outcome::Written);
        acks.ack(b, Outcome::Written);
        assert!(acks.release().is_empty(), "record {a} is still in flight");
        acks.ack(a, Outcome::Written);
        let released = acks.release();
        assert_eq!(
            released,
            vec![
                (
                    1,
                    Tally {
                        written: 2,
                        rejected: 0
                    }
                ),
                (
                    2,
                    Tally {
                        written: 1,
                        rejected: 0
                    }
                )
            ]
        );
    }

    #[test]
    fn a_state_before_any_record_and_repeated_states_are_all_released_in_order() {
        let mut acks = TestAcks::default();
        acks.state(Scope::Global, 1);
        acks.state(Scope::Global, 1);
        assert_eq!(ids(acks.release()), vec![1, 1]);
        let r = acks.record(&"s");
        acks.state(Scope::Global, 2);
        acks.state(Scope::Global, 2);
        assert!(acks.release().is_empty());
        acks.ack(r, Outcome::Rejected);
        let released = acks.release();
        assert_eq!(
            released[0].1,
            Tally {
                written: 0,
                rejected: 1
            }
        );
        assert_eq!(
            released[1],
            (2, Tally::default()),
            "nothing since the first"
        );
    }

    #[test]
    fn stream_states_count_only_their_own_stream_since_their_previous_state() {
        let mut acks = TestAcks::default();
        for stream in ["a", "b", "a"] {
            let n = acks.record(&stream);
            acks.ack(n, Outcome::Written);
        }
        acks.state(Scope::Stream("a"), 1);
        let n = acks.record(&"b");
        acks.ack(n, Outcome::Rejected);
        acks.state(Scope::Stream("b"), 2);
        acks.state(Scope::Stream("a"), 3);
        let released = acks.release();
        assert_eq!(
            released[0],
            (
                1,
                Tally {
                    written: 2,
                    rejected: 0
                }
            )
        );
        assert_eq!(
            released[1],
            (
                2,
                Tally {
                    written: 1,
                    rejected: 1
                }
            )
        );
        assert_eq!(released[2], (3, Tally::default()));
    }

    #[test]
    fn acknowledging_twice_or_an_unknown_number_counts_nothing() {
        let mut acks = TestAcks::default();
        let n = acks.record(&"s");
        acks.ack(n, Outcome::Written);
        acks.ack(n, Outcome::Written);
        acks.ack(99, Outcome::Written);
        acks.state(Scope::Stream("s"), 1);
        assert_eq!(acks.release()[0].1.written, 1);
        assert_eq!(acks.unacknowledged(), 0);
    }

    /// One step of a randomized run: a record of stream 0..3, a state, or the completion of
    /// the n-th oldest in-flight record.
    #[derive(Debug, Clone)]
    enum Step {
        Record(u8),
        StreamState(u8),
        GlobalState,
        Finish(usize, bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..3).prop_map(Step::Record),
            2 => (0u8..3).prop_map(Step::StreamState),
            1 => Just(Step::GlobalState),
            4 => (0usize..8, any::<bool>()).prop_map(|(i, ok)| Step::Finish(i, ok)),
        ]
    }

    /// What a randomized run observed so far.
    #[derive(Default)]
    struct Run {
        acked: std::collections::BTreeSet<u64>,
        released: Vec<usize>,
        stream_of_state: HashMap<usize, u8>,
        counted_per_stream: [u64; 3],
    }

    impl Run {
        /// Releases what can be released and checks it against the invariants.
        fn drain(&mut self, acks: &mut Acks<u8, (usize, u64)>) -> Result<(), TestCaseError> {
            for ((id, barrier), tally) in acks.release() {
                prop_assert!(
                    (1..=barrier).all(|n| self.acked.contains(&n)),
                    "state {} released before one of its records",
                    id
                );
                prop_assert_eq!(id, self.released.len(), "states out of order");
                if let Some(s) = self.stream_of_state.get(&id) {
                    self.counted_per_stream[*s as usize] += tally.written + tally.rejected;
                }
                self.released.push(id);
            }
            Ok(())
        }
    }

    proptest! {
        /// Whatever order records finish in: states come out in input order, never before a
        /// record before them is acknowledged, all of them once everything is acknowledged,
        /// and STREAM states never count more records than their stream had acknowledged.
        #[test]
        fn states_are_released_in_order_only_after_their_records(steps in prop::collection::vec(step(), 0..200)) {
            let mut acks: Acks<u8, (usize, u64)> = Acks::default();
            let mut run = Run::default();
            let mut in_flight: Vec<u64> = Vec::new();
            let mut sent_states = 0usize;
            let mut last_number = 0;
            let mut stream_of = HashMap::new();
            let mut acked_per_stream = [0u64; 3];
            for step in steps {
                match step {
                    Step::Record(s) => {
                        last_number = acks.record(&s);
                        stream_of.insert(last_number, s);
                        in_flight.push(last_number);
                    }
                    Step::StreamState(s) => {
                        run.stream_of_state.insert(sent_states, s);
                        acks.state(Scope::Stream(s), (sent_states, last_number));
                        sent_states += 1;
                    }
                    Step::GlobalState => {
                        acks.state(Scope::Global, (sent_states, last_number));
                        sent_states += 1;
                    }
                    Step::Finish(i, ok) if !in_flight.is_empty() => {
                        let n = in_flight.remove(i % in_flight.len());
                        acks.ack(n, if ok { Outcome::Written } else { Outcome::Rejected });
                        run.acked.insert(n);
                        acked_per_stream[stream_of[&n] as usize] += 1;
                    }
                    Step::Finish(..) => {}
                }
                run.drain(&mut acks)?;
            }
            for n in in_flight.drain(..) {
                acks.ack(n, Outcome::Written);
                run.acked.insert(n);
                acked_per_stream[stream_of[&n] as usize] += 1;
            }
            run.drain(&mut acks)?;
            prop_assert_eq!(run.released.len(), sent_states);
            prop_assert_eq!(acks.held_states(), 0);
            prop_assert_eq!(acks.unacknowledged(), 0);
            for (counted, acked) in run.counted_per_stream.iter().zip(acked_per_stream) {
                prop_assert!(*counted <= acked);
            }
        }
    }
}
