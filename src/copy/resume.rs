//! Where a partition's copy resumes after an interruption. Pure arithmetic, no I/O.
//!
//! The checkpoint records, per partition, the target's high watermark before kmigrate first
//! wrote to it (`base`) and the last acknowledged pair (source offset, target offset). After
//! a crash, records sent after the checkpoint may already be on the target. kmigrate is the
//! only writer of those partitions and its producer is idempotent and ordered, so the target
//! holds a *prefix* of what was sent: the records past the checkpoint are exactly
//! `target_high - expected_next`, and the copy skips that many source *records* (not
//! offsets: the source range may have gaps) after the checkpoint.

pub use crate::ledger::Progress;

/// How to continue one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// First source offset to read.
    pub from: i64,
    /// Records to read and drop before writing: they are on the target already.
    pub skip: u64,
    /// Target offset the next record (skipped or written) has.
    pub next_target: i64,
    /// Target high watermark before kmigrate's first write.
    pub base: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeError {
    /// The target has fewer records than were acknowledged: they were deleted or the topic
    /// was recreated.
    TargetShrank { expected_at_least: i64, high: i64 },
    /// The target has more records than kmigrate could have written: another producer.
    ForeignWrites { extra: i64, max_possible: i64 },
}

impl std::fmt::Display for ResumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeError::TargetShrank {
                expected_at_least,
                high,
            } => write!(
                f,
                "the target partition ends at offset {high} but kmigrate had already written up to \
                 offset {expected_at_least}: records were deleted or the topic was recreated"
            ),
            ResumeError::ForeignWrites {
                extra,
                max_possible,
            } => write!(
                f,
                "the target partition grew by {extra} record(s) since the last checkpoint, more \
                 than the {max_possible} kmigrate could have written: another producer writes \
                 to it"
            ),
        }
    }
}

/// Where to continue the range `[start, end)` given its saved progress and the target
/// partition's current high watermark.
pub fn resume(start: i64, end: i64, p: &Progress, target_high: i64) -> Result<Resume, ResumeError> {
    let Some(base) = p.base else {
        // Nothing was ever sent: begin at the start, appending after what is there now.
        return Ok(Resume {
            from: start,
            skip: 0,
            next_target: target_high,
            base: target_high,
        });
    };
    let (from, expected_next) = match p.acked {
        Some((src, tgt)) => (src + 1, tgt + 1),
        None => (start, base),
    };
    if target_high < expected_next {
        return Err(ResumeError::TargetShrank {
            expected_at_least: expected_next,
            high: target_high,
        });
    }
    let extra = target_high - expected_next;
    let max_possible = (end - from).max(0);
    if extra > max_possible {
        return Err(ResumeError::ForeignWrites {
            extra,
            max_possible,
        });
    }
    Ok(Resume {
        from,
        skip: extra as u64,
        next_target: expected_next,
        base,
    })
}

/// Whether records kmigrate sent to the partition may still wait on its leader for the
/// replicas (so the target's count must wait until they settle): it wrote there before, and
/// the copy that did was not seen to drain.
pub fn may_hold_unconfirmed(p: &Progress) -> bool {
    p.base.is_some() && !p.settled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_copy_that_drained_needs_no_settling() {
        let never = Progress::default();
        let killed = Progress {
            base: Some(0),
            acked: Some((9, 9)),
            written: 10,
            ..Progress::default()
        };
        let drained = Progress {
            settled: true,
            ..killed
        };
        assert!(!may_hold_unconfirmed(&never));
        assert!(may_hold_unconfirmed(&killed));
        assert!(!may_hold_unconfirmed(&drained));
    }

    #[test]
    fn older_state_files_have_no_settled_flag_and_settle() {
        let old: Progress =
            serde_json::from_str(r#"{"base":0,"acked":[9,9],"written":10,"done":false}"#)
                .expect("an older progress");
        assert!(may_hold_unconfirmed(&old));
        let unsettled = serde_json::to_string(&old).expect("json");
        assert!(!unsettled.contains("settled"), "{unsettled}");
        let settled = serde_json::to_string(&Progress {
            settled: true,
            ..old
        })
        .expect("json");
        assert!(settled.contains(r#""settled":true"#), "{settled}");
    }
    use proptest::prelude::*;

    #[test]
    fn never_started_begins_at_start_after_existing_records() {
        let r = resume(100, 200, &Progress::default(), 7).expect("ok");
        assert_eq!(
            r,
            Resume {
                from: 100,
                skip: 0,
                next_target: 7,
                base: 7
            }
        );
    }

    #[test]
    fn started_nothing_acked_skips_what_arrived() {
        let p = Progress {
            base: Some(10),
            ..Progress::default()
        };
        let r = resume(100, 200, &p, 13).expect("ok");
        assert_eq!((r.from, r.skip, r.next_target), (100, 3, 10));
    }

    #[test]
    fn clean_checkpoint_continues_after_it() {
        let p = Progress {
            base: Some(0),
            acked: Some((149, 49)),
            written: 50,
            done: false,
            ..Progress::default()
        };
        let r = resume(100, 200, &p, 50).expect("ok");
        assert_eq!((r.from, r.skip, r.next_target), (150, 0, 50));
    }

    #[test]
    fn records_after_checkpoint_are_skipped_not_rewritten() {
        let p = Progress {
            base: Some(0),
            acked: Some((149, 49)),
            written: 50,
            done: false,
            ..Progress::default()
        };
        let r = resume(100, 200, &p, 60).expect("ok");
        assert_eq!((r.from, r.skip, r.next_target), (150, 10, 50));
    }

    #[test]
    fn target_shrank_is_refused() {
        let p = Progress {
            base: Some(0),
            acked: Some((149, 49)),
            written: 50,
            done: false,
            ..Progress::default()
        };
        assert!(matches!(
            resume(100, 200, &p, 40),
            Err(ResumeError::TargetShrank { .. })
        ));
    }

    #[test]
    fn foreign_writes_are_refused() {
        let p = Progress {
            base: Some(0),
            acked: Some((149, 49)),
            written: 50,
            done: false,
            ..Progress::default()
        };
        // 50 offsets remain in the source range: at most 50 more records.
        assert!(resume(100, 200, &p, 100).is_ok());
        assert!(matches!(
            resume(100, 200, &p, 101),
            Err(ResumeError::ForeignWrites { extra: 51, .. })
        ));
    }

    proptest! {
        /// Simulates a copy of a range with gaps, killed after `acked` acknowledgements with
        /// `landed` more records on the target: resuming must continue with exactly the first
        /// source record not on the target.
        #[test]
        fn resume_lands_on_the_first_missing_record(
            base in 0i64..1000,
            start in 0i64..1000,
            gaps in proptest::collection::vec(any::<bool>(), 1..200),
            acked_frac in 0.0f64..1.0,
            landed_frac in 0.0f64..1.0,
        ) {
            // Source offsets of the records in [start, end): gaps drop some offsets.
            let end = start + gaps.len() as i64;
            let records: Vec<i64> = gaps.iter().enumerate()
                .filter(|(_, gap)| !**gap)
                .map(|(i, _)| start + i as i64)
                .collect();
            let n = records.len();
            let acked = ((n as f64) * acked_frac) as usize;
            let landed = acked + (((n - acked) as f64) * landed_frac) as usize;
            let progress = Progress {
                base: Some(base),
                acked: (acked > 0).then(|| (records[acked - 1], base + acked as i64 - 1)),
                written: acked as u64,
                done: false,
                ..Progress::default()
            };
            let target_high = base + landed as i64;
            let r = resume(start, end, &progress, target_high).expect("consistent state");
            // Replay: read records from r.from, skip r.skip, the next is the first missing.
            let remaining: Vec<i64> = records.iter().copied().filter(|o| *o >= r.from).collect();
            prop_assert_eq!(remaining.len(), n - acked);
            prop_assert_eq!(r.skip as usize, landed - acked);
            let next_written = remaining.get(r.skip as usize).copied();
            prop_assert_eq!(next_written, records.get(landed).copied());
            prop_assert_eq!(r.next_target, base + acked as i64);
            prop_assert_eq!(r.next_target + r.skip as i64, target_high);
        }
    }
}
