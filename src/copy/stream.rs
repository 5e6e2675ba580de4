//! One partition's producer stream on the batch path: the sequence numbers of the batches
//! sent under one producer id and epoch, which are in flight, and what an answer from the
//! target's leader means for them. The idempotence rules are enforced here, and only here:
//!
//! 1. A batch keeps the base sequence it was first sent with; a resend is byte for byte the
//!    same request, so the broker answers a duplicate with the offset it wrote it at.
//! 2. Sequences count modulo 2^31: after i32::MAX comes 0 ([`super::batch::next_sequence`]).
//! 3. Answers arrive in the order the batches were sent (one connection per broker, one batch
//!    per partition per request); an answer for any other batch is a broken stream.
//! 4. After a new producer id or an epoch bump (UNKNOWN_PRODUCER_ID once the target expired an
//!    idle producer, OUT_OF_ORDER_SEQUENCE, a fenced epoch, a restart) nothing in flight is
//!    sent again: the broker deduplicates only within one producer id and epoch, so a batch
//!    that may have landed under the old one would land twice. The stream ends ([`Next::Resume`])
//!    and the copy resumes as after a crash: the target's log is read first (settle and
//!    count), and the records found there are not sent again.
//! 5. At most [`MAX_IN_FLIGHT`] batches are in flight: see there.
//!
//! Pure: Kafka's error codes in, decisions out.

use std::collections::VecDeque;

use super::batch::next_sequence;
use crate::kafka::error::Code;

/// Batches in flight on one partition at most. The broker remembers, per producer and
/// partition, the sequence ranges of the last 5 batches it appended (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`) and answers a resend of one of them with its
/// original offset. A batch resent after a sixth one landed is no longer recognised: the
/// broker answers DUPLICATE_SEQUENCE_NUMBER or OUT_OF_ORDER_SEQUENCE_NUMBER, and where it
/// landed cannot be told. With at most 5 in flight, every resend is of a remembered batch.
/// `at_most_five_in_flight_are_always_remembered` breaks when this is raised.
pub const MAX_IN_FLIGHT: usize = 5;

/// A batch sent and not answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Source offsets of its first and last record.
    pub first: i64,
    pub last: i64,
    /// Records in it.
    pub count: i32,
    pub base_sequence: i32,
}

/// What the leader answered for the oldest batch in flight (Kafka's error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Appended (or a resend of a batch appended before) at this target offset.
    Appended(i64),
    /// An error code of the Produce response's partition.
    Error(Code),
}

/// What the copy does next with the partition's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The batch landed: pair its records with target offsets from `base`.
    Landed { batch: InFlight, base: i64 },
    /// A transient refusal (leader moving, replicas short, timeout): send every batch in
    /// flight again, in order, each with its sequence.
    Resend(Vec<InFlight>),
    /// The producer's identity or order is lost (rule 4): drop the stream; resume from the
    /// target's log, with a new producer id, before anything is sent again.
    Resume { code: Code },
    /// The target refuses the batch itself (too large, corrupt, invalid): the partition
    /// takes the record path from this batch on, after a resume.
    Refused { code: Code },
}

/// Why a call broke rule 3 or 5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misuse {
    /// An answer with nothing in flight.
    NothingInFlight,
    /// A send with [`MAX_IN_FLIGHT`] batches in flight.
    Full,
    /// A send of no records.
    Empty,
}

/// One partition's stream under one producer id and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub producer_id: i64,
    pub epoch: i16,
    next_sequence: i32,
    in_flight: VecDeque<InFlight>,
}

impl Stream {
    /// A stream of a producer id and epoch new to this partition: sequences start at 0.
    pub fn new(producer_id: i64, epoch: i16) -> Stream {
        Stream {
            producer_id,
            epoch,
            next_sequence: 0,
            in_flight: VecDeque::new(),
        }
    }

    /// The stream of a producer id and epoch that already wrote to this partition in an
    /// earlier copy of the same command, whose next batch takes `next_sequence` (rule 1 holds
    /// across copies: the broker expects the sequence after the last one it appended).
    pub fn continuing(producer_id: i64, epoch: i16, next_sequence: i32) -> Stream {
        Stream {
            next_sequence,
            ..Stream::new(producer_id, epoch)
        }
    }

    /// The base sequence the next batch sent will take.
    pub fn next_sequence(&self) -> i32 {
        self.next_sequence
    }

    /// Whether another batch may be sent now.
    pub fn can_send(&self) -> bool {
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The base sequence of a batch of source records `first..=last` (`count` of them, fewer
    /// than the span where the source has gaps) about to be sent for the first time.
    pub fn send(&mut self, first: i64, last: i64, count: i32) -> Result<InFlight, Misuse> {
        if count <= 0 {
            return Err(Misuse::Empty);
        }
        if !self.can_send() {
            return Err(Misuse::Full);
        }
        let batch = InFlight {
            first,
            last,
            count,
            base_sequence: self.next_sequence,
        };
        self.next_sequence = next_sequence(self.next_sequence, count);
        self.in_flight.push_back(batch);
        Ok(batch)
    }

    /// The leader's answer for the oldest batch in flight (rule 3: answers come in order).
    pub fn answered(&mut self, answer: Answer) -> Result<Next, Misuse> {
        let Some(oldest) = self.in_flight.front().copied() else {
            return Err(Misuse::NothingInFlight);
        };
        let next = match answer {
            Answer::Appended(base) => {
                self.in_flight.pop_front();
                Next::Landed {
                    batch: oldest,
                    base,
                }
            }
            Answer::Error(code) => match classify(code) {
                Class::Transient => Next::Resend(self.in_flight.iter().copied().collect()),
                Class::Identity => Next::Resume { code },
                Class::Refused => Next::Refused { code },
            },
        };
        Ok(next)
    }
}

/// How an error code of a Produce answer is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Nothing was appended, or the resend is recognised: send again, same sequences.
    Transient,
    /// The broker no longer knows this producer's sequences (or never will): rule 4.
    Identity,
    /// The batch itself is refused.
    Refused,
}

fn classify(c: Code) -> Class {
    match c {
        Code::LEADER_NOT_AVAILABLE
        | Code::NOT_LEADER_FOR_PARTITION
        | Code::REQUEST_TIMED_OUT
        | Code::NETWORK_EXCEPTION
        | Code::NOT_ENOUGH_REPLICAS
        | Code::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | Code::KAFKA_STORAGE_ERROR
        | Code::FENCED_LEADER_EPOCH
        | Code::UNKNOWN_LEADER_EPOCH => Class::Transient,
        Code::INVALID_MESSAGE
        | Code::MESSAGE_TOO_LARGE
        | Code::MESSAGE_BATCH_TOO_LARGE
        | Code::INVALID_RECORD => Class::Refused,
        // OUT_OF_ORDER_SEQUENCE_NUMBER, DUPLICATE_SEQUENCE_NUMBER (a duplicate the broker no
        // longer remembers, landed at an offset it does not say), UNKNOWN_PRODUCER_ID,
        // INVALID_PRODUCER_EPOCH, PRODUCER_FENCED, and any code not known to be safe to
        // resend: resume from the target's log.
        _ => Class::Identity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn sequences_follow_the_records_and_wrap() {
        let mut s = Stream::new(9, 0);
        assert_eq!(s.send(0, 9, 10).map(|b| b.base_sequence), Ok(0));
        assert_eq!(s.send(10, 14, 5).map(|b| b.base_sequence), Ok(10));
        s.next_sequence = i32::MAX - 1;
        assert_eq!(s.send(15, 17, 3).map(|b| b.base_sequence), Ok(i32::MAX - 1));
        assert_eq!(s.send(18, 18, 1).map(|b| b.base_sequence), Ok(1));
        assert_eq!(s.send(19, 19, 0), Err(Misuse::Empty));
    }

    #[test]
    fn no_more_than_five_in_flight() {
        let mut s = Stream::new(1, 0);
        for i in 0..5 {
            assert!(s.send(i, i, 1).is_ok());
        }
        assert!(!s.can_send());
        assert_eq!(s.send(5, 5, 1), Err(Misuse::Full));
        assert!(matches!(
            s.answered(Answer::Appended(0)),
            Ok(Next::Landed { .. })
        ));
        assert!(s.send(5, 5, 1).is_ok());
    }

    #[test]
    fn a_transient_refusal_resends_all_in_flight_with_their_sequences() {
        let mut s = Stream::new(1, 0);
        let a = s.send(0, 3, 4).expect("a");
        let b = s.send(4, 5, 2).expect("b");
        let next = s
            .answered(Answer::Error(Code::NOT_LEADER_FOR_PARTITION))
            .expect("answer");
        assert_eq!(next, Next::Resend(vec![a, b]));
        assert_eq!(s.in_flight(), 2, "still in flight, same sequences");
        let next = s.answered(Answer::Appended(100)).expect("answer");
        assert_eq!(
            next,
            Next::Landed {
                batch: a,
                base: 100
            }
        );
    }

    #[test]
    fn a_lost_identity_resumes_and_a_refused_batch_is_said() {
        for c in [
            Code::OUT_OF_ORDER_SEQUENCE_NUMBER,
            Code::DUPLICATE_SEQUENCE_NUMBER,
            Code::UNKNOWN_PRODUCER_ID,
            Code::INVALID_PRODUCER_EPOCH,
            Code::PRODUCER_FENCED,
            Code(999),
        ] {
            let mut s = Stream::new(1, 0);
            s.send(0, 0, 1).expect("sent");
            assert_eq!(
                s.answered(Answer::Error(c)),
                Ok(Next::Resume { code: c }),
                "{c}"
            );
        }
        let mut s = Stream::new(1, 0);
        s.send(0, 0, 1).expect("sent");
        assert_eq!(
            s.answered(Answer::Error(Code::MESSAGE_TOO_LARGE)),
            Ok(Next::Refused {
                code: Code::MESSAGE_TOO_LARGE
            })
        );
        assert_eq!(
            Stream::new(1, 0).answered(Answer::Appended(0)),
            Err(Misuse::NothingInFlight)
        );
    }

    /// Kafka's leader, as far as one producer's sequences on one partition go: it appends
    /// a batch whose base sequence follows the last one, answers a resend of one of the
    /// last `retained` batches with its original offset, and refuses the rest.
    struct Leader {
        retained: usize,
        log: Vec<i64>,
        /// (base sequence, count, base offset) of the batches it remembers.
        recent: VecDeque<(i32, i32, i64)>,
        next_seq: i32,
    }

    impl Leader {
        fn new(retained: usize) -> Leader {
            Leader {
                retained,
                log: Vec::new(),
                recent: VecDeque::new(),
                next_seq: 0,
            }
        }

        fn produce(&mut self, b: &InFlight) -> Answer {
            if let Some((_, _, base)) = self
                .recent
                .iter()
                .find(|(s, n, _)| *s == b.base_sequence && *n == b.count)
            {
                return Answer::Appended(*base);
            }
            if b.base_sequence != self.next_seq {
                let older = self
                    .recent
                    .front()
                    .is_some_and(|(s, _, _)| b.base_sequence < *s);
                return Answer::Error(if older {
                    Code::DUPLICATE_SEQUENCE_NUMBER
                } else {
                    Code::OUT_OF_ORDER_SEQUENCE_NUMBER
                });
            }
            let base = self.log.len() as i64;
            self.log.extend(b.first..b.first + i64::from(b.count));
            self.recent.push_back((b.base_sequence, b.count, base));
            if self.recent.len() > self.retained {
                self.recent.pop_front();
            }
            self.next_seq = next_sequence(self.next_seq, b.count);
            Answer::Appended(base)
        }
    }

    /// Sends `batches` (records per batch), `in_flight` at a time; every request's answer
    /// is lost `lost` times in a row before the leader's answers come through; returns the
    /// records the leader holds and whether the stream had to resume.
    fn run(batches: &[i32], in_flight: usize, retained: usize, lost: usize) -> (Vec<i64>, bool) {
        let mut leader = Leader::new(retained);
        let mut s = Stream::new(1, 0);
        let mut first = 0i64;
        let mut next = batches.iter();
        let mut landed = BTreeMap::new();
        loop {
            while s.in_flight() < in_flight {
                let Some(n) = next.next() else { break };
                let b = InFlight {
                    first,
                    last: first + i64::from(*n) - 1,
                    count: *n,
                    base_sequence: s.next_sequence,
                };
                s.next_sequence = next_sequence(s.next_sequence, *n);
                s.in_flight.push_back(b);
                first += i64::from(*n);
            }
            if s.in_flight() == 0 {
                return (leader.log, false);
            }
            // The leader appends everything in flight; the answers are lost `lost` times.
            let sent: Vec<InFlight> = s.in_flight.iter().copied().collect();
            let mut answers: Vec<Answer> = sent.iter().map(|b| leader.produce(b)).collect();
            for _ in 0..lost {
                answers = sent.iter().map(|b| leader.produce(b)).collect();
            }
            for a in answers {
                match s.answered(a).expect("in order") {
                    Next::Landed { batch, base } => {
                        landed.insert(batch.first, base);
                    }
                    Next::Resume { .. } => return (leader.log, true),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn at_most_five_in_flight_are_always_remembered() {
        // Resends of up to MAX_IN_FLIGHT batches are all recognised: every record once.
        let batches = [3, 1, 4, 1, 5, 9, 2, 6];
        let (log, resumed) = run(&batches, MAX_IN_FLIGHT, 5, 2);
        assert!(!resumed);
        assert_eq!(
            log,
            (0..batches.iter().sum::<i32>() as i64).collect::<Vec<_>>()
        );
        // One more in flight than the broker remembers: a resend is not recognised and the
        // stream must resume (had it resent blindly, records would be lost or doubled).
        let (_, resumed) = run(&batches, MAX_IN_FLIGHT + 1, 5, 1);
        assert!(resumed);
    }

    proptest! {
        /// Whatever the batch sizes and lost answers, a stream within MAX_IN_FLIGHT leaves
        /// every record on the leader once, in order.
        #[test]
        fn resends_within_the_limit_land_every_record_once(
            batches in proptest::collection::vec(1i32..50, 1..40),
            in_flight in 1usize..=MAX_IN_FLIGHT,
            lost in 0usize..3,
        ) {
            let (log, resumed) = run(&batches, in_flight, 5, lost);
            prop_assert!(!resumed);
            let total: i64 = batches.iter().map(|n| i64::from(*n)).sum();
            prop_assert_eq!(log, (0..total).collect::<Vec<_>>());
        }
    }
}
