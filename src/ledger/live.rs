//! How a live migration's state changes while it runs: range ends that move up with the
//! source, partitions and groups a rescan found, and a run's state turned into a sync's.

use std::collections::BTreeMap;

use crate::model::{Ends, Tp};
use crate::plan::Status;
use crate::plan::live::{self, Growth, Moved};

use super::fingerprint::state_id;
use super::state::{PartitionState, Phase, State};

impl State {
    /// Moves the end of every range of a live plan up to the source's last stable offset
    /// in `now`, in the state and in its plan alike (so that the file stays consistent);
    /// returns the ends that moved. A range that moved is not done any more, nor is the
    /// copy. Fixed plans and completed migrations never move.
    pub fn extend(&mut self, now: &BTreeMap<Tp, Ends>) -> Vec<Moved> {
        if !self.plan.live || self.phase == Phase::Complete {
            return Vec::new();
        }
        let mut moved = Vec::new();
        for ps in &mut self.partitions {
            let tp = Tp::new(&ps.topic, ps.partition);
            let Some(w) = now.get(&tp) else { continue };
            let Some(end) = live::extended_end(ps.end, w) else {
                continue;
            };
            let Some(pp) = self.plan.partitions.iter_mut().find(|p| p.tp() == tp) else {
                continue;
            };
            pp.end = end;
            pp.to_migrate = end - pp.start;
            pp.high = pp.high.max(w.high);
            pp.stable = end;
            moved.push(Moved {
                tp,
                from: ps.end,
                to: end,
            });
            ps.end = end;
            ps.progress.done = false;
        }
        if !moved.is_empty() {
            self.phase = Phase::Copying;
        }
        moved
    }

    /// Adds what a rescan of the source found to a live plan and to the state (see
    /// [`live::add`]): the new groups, and the new partitions with nothing copied, in the
    /// plan's order; the fingerprint is that of the grown plan. A new partition reopens the
    /// copy. Returns whether anything was added. Refused for fixed plans, shards and
    /// completed migrations, and when the grown state would not load back (nothing is
    /// changed then).
    pub fn grow(&mut self, growth: &Growth) -> Result<bool, String> {
        if !self.plan.live || self.shard.is_some() || self.phase == Phase::Complete {
            return Err("only an unsharded live migration that is not cut over grows".into());
        }
        if growth.is_empty() {
            return Ok(false);
        }
        for p in &growth.partitions {
            if let Some(ps) = self
                .partitions
                .iter()
                .find(|s| s.topic == p.topic && s.partition == p.partition)
            {
                return Err(format!("{}/{} is followed already", ps.topic, ps.partition));
            }
        }
        let mut grown = self.clone();
        live::add(&mut grown.plan, growth);
        grown.align_to_plan();
        if !growth.partitions.is_empty() {
            grown.phase = Phase::Copying;
        }
        grown.plan_id = state_id(&grown.plan, grown.shard);
        grown.plan.check()?;
        grown.check()?;
        *self = grown;
        Ok(true)
    }

    /// Turns the state of a `kmigrate run` into that of a sync, so that `kmigrate cutover`
    /// can copy the records that arrived after the run's plan and commit the groups' final
    /// offsets: the plan becomes live (see [`live::follow`]: partitions skipped because
    /// their groups had consumed everything are followed from their end too), those
    /// partitions get a fresh progress, and the group offsets the run committed are
    /// forgotten (the cutover commits the final ones). What was copied is kept as it is.
    /// A shard's state is refused: the cutover follows an unsharded migration only.
    pub fn go_live(&mut self) -> Result<(), String> {
        if self.plan.live {
            return Ok(());
        }
        if let Some(s) = self.shard {
            return Err(format!("it is shard {s} of a migration run in shards"));
        }
        live::follow(&mut self.plan);
        self.align_to_plan();
        self.plan_id = state_id(&self.plan, None);
        self.offsets.clear();
        self.phase = if self.partitions.iter().all(|p| p.progress.done) {
            Phase::Copied
        } else {
            Phase::Copying
        };
        Ok(())
    }

    /// One progress per partition the plan migrates, in the plan's order: the partitions
    /// copied already keep theirs, the others start with nothing copied.
    fn align_to_plan(&mut self) {
        let mut copied: BTreeMap<Tp, PartitionState> = std::mem::take(&mut self.partitions)
            .into_iter()
            .map(|ps| (Tp::new(&ps.topic, ps.partition), ps))
            .collect();
        let policy = self.plan.uncommitted_partitions;
        self.partitions = self
            .plan
            .partitions
            .iter()
            .filter(|p| p.status == Status::Migrate)
            .map(|p| {
                copied
                    .remove(&p.tp())
                    .unwrap_or_else(|| PartitionState::fresh(p, policy))
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UncommittedPolicy;
    use crate::ledger::state::{CommitOutcome, GroupOffsets, Progress};
    use crate::model::Shard;
    use crate::offsets::Tracker;
    use crate::plan::Plan;
    use crate::plan::live::tests::{self as live_tests, fixed_plan, live_plan};
    use proptest::prelude::*;

    fn now(stables: &[i64]) -> BTreeMap<Tp, Ends> {
        stables
            .iter()
            .enumerate()
            .map(|(p, s)| {
                (
                    Tp::new("t", p as i32),
                    Ends {
                        high: *s + 1,
                        stable: *s,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn extending_reopens_a_finished_range_and_the_copy() {
        let mut state = State::new(&live_plan(), 0);
        for ps in &mut state.partitions {
            ps.progress.done = true;
        }
        state.phase = Phase::Copied;
        let moved = state.extend(&now(&[50, 45, 30]));
        assert_eq!(
            moved,
            vec![Moved {
                tp: Tp::new("t", 1),
                from: 40,
                to: 45
            }]
        );
        assert_eq!(state.phase, Phase::Copying);
        let done: Vec<bool> = state.partitions.iter().map(|p| p.progress.done).collect();
        assert_eq!(done, vec![true, false, true]);
        assert_eq!(state.partitions[1].copied_to(), 40);
        // A completed migration and a fixed plan never move.
        state.phase = Phase::Complete;
        assert!(state.extend(&now(&[60, 60, 60])).is_empty());
        let mut fixed = State::new(&live_plan(), 0);
        fixed.plan.live = false;
        assert!(fixed.extend(&now(&[60, 60, 60])).is_empty());
    }

    /// The state of a sync of `before_and_after`'s first reading, with t/0 partly copied,
    /// and what its rescan found.
    fn grown_fixture() -> (State, Growth, Plan) {
        let (before, after) = live_tests::before_and_after(2, None);
        let policy = UncommittedPolicy::Earliest;
        let current = live_tests::live_of(&before, policy, true);
        let mut state = State::new(&current, 0);
        let ps = &mut state.partitions[0];
        ps.progress.base = Some(0);
        for o in 5..9 {
            ps.map.observe(o, o - 5);
            ps.progress.acked = Some((o, o - 5));
            ps.progress.written += 1;
        }
        state.partitions[1].progress.done = true;
        let fresh = live_tests::live_of(&after, policy, true);
        (state, live::grow(&current, &fresh), fresh)
    }

    #[test]
    fn a_grown_state_keeps_its_progress_and_loads() {
        let (mut state, growth, fresh) = grown_fixture();
        state.phase = Phase::Copied;
        let before = state.clone();
        assert_eq!(state.grow(&growth), Ok(true));
        let tps: Vec<String> = state
            .partitions
            .iter()
            .map(|p| format!("{}/{}:{}..{}", p.topic, p.partition, p.start, p.end))
            .collect();
        assert_eq!(
            tps,
            vec!["t/0:5..20", "t/1:10..20", "t/2:0..7", "u/0:12..30"]
        );
        assert_eq!(state.partitions[0], before.partitions[0]);
        assert_eq!(state.partitions[1], before.partitions[1]);
        assert_eq!(state.partitions[2].progress, Progress::default());
        assert_eq!(state.phase, Phase::Copying);
        assert_ne!(state.plan_id, before.plan_id);
        let groups: Vec<&str> = state.plan.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(groups, vec!["g", "h", "k"]);
        // Under "earliest", g and k resume at t/2's first copied record.
        assert_eq!(
            state.partitions[2].translation,
            Tracker::new([("g".to_string(), 0), ("k".to_string(), 0)])
        );
        let bytes = serde_json::to_vec(&state).expect("json");
        let back = State::parse(&bytes, "s.json").expect("a grown state loads");
        assert_eq!(back, state);
        // The same findings again add nothing.
        let again = live::grow(&state.plan, &fresh);
        assert_eq!(state.grow(&again), Ok(false));
        // Applied twice, a growth is refused and changes nothing.
        let grown = state.clone();
        assert!(state.grow(&growth).is_err());
        assert_eq!(state, grown);
    }

    #[test]
    fn only_a_live_unsharded_unfinished_state_grows() {
        let (state, growth, _) = grown_fixture();
        let mut fixed = state.clone();
        fixed.plan.live = false;
        assert!(fixed.grow(&growth).is_err());
        let mut done = state.clone();
        done.phase = Phase::Complete;
        assert!(done.grow(&growth).is_err());
        assert_eq!(done, {
            let mut d = state.clone();
            d.phase = Phase::Complete;
            d
        });
        let mut shard = state;
        shard.shard = Some(Shard { index: 0, count: 2 });
        assert!(shard.grow(&growth).is_err());
    }

    #[test]
    fn a_runs_state_goes_live_keeping_what_it_copied() {
        let mut state = State::new(&fixed_plan(), 0);
        // The run copied t/0 [20, 50) and committed its groups.
        let ps = &mut state.partitions[0];
        for (i, s) in (20..50).enumerate() {
            ps.map.observe(s, i as i64);
        }
        ps.progress = Progress {
            base: Some(0),
            acked: Some((49, 29)),
            written: 30,
            done: true,
            ..Progress::default()
        };
        let copied = ps.clone();
        state.phase = Phase::Complete;
        state.offsets.push(GroupOffsets {
            group: "g".into(),
            offsets: vec![("t".into(), 0, 0)],
            outcome: CommitOutcome::Committed,
        });
        state.go_live().expect("an unsharded run goes live");
        assert!(state.plan.live);
        assert_eq!(state.partitions[0], copied);
        let ranges: Vec<(i32, i64, i64, bool)> = state
            .partitions
            .iter()
            .map(|p| (p.partition, p.start, p.end, p.progress.done))
            .collect();
        assert_eq!(
            ranges,
            vec![(0, 20, 50, true), (1, 40, 40, false), (2, 30, 30, false)]
        );
        assert!(state.offsets.is_empty());
        assert_eq!(state.phase, Phase::Copying);
        let bytes = serde_json::to_vec(&state).expect("json");
        assert_eq!(State::parse(&bytes, "s.json").expect("it loads"), state);
        // Twice is once.
        let again = state.clone();
        state.go_live().expect("live already");
        assert_eq!(state, again);
        // A shard's state is refused.
        let mut shard = State::new(&fixed_plan(), 0);
        shard.shard = Some(Shard { index: 0, count: 2 });
        assert!(shard.go_live().is_err());
    }

    proptest! {
        /// Growing and extending in any order, the saved state loads back as it was, and
        /// what was copied stays as it was.
        #[test]
        fn a_grown_and_extended_state_file_loads(
            steps in proptest::collection::vec((any::<bool>(), 0i64..20), 1..6),
        ) {
            let (mut state, _, fresh) = grown_fixture();
            let copied = state.partitions[0].clone();
            let mut stable = 20;
            for (grow, d) in steps {
                if grow {
                    let growth = live::grow(&state.plan, &fresh);
                    state.grow(&growth).map_err(TestCaseError::fail)?;
                } else {
                    stable += d;
                    let now: BTreeMap<Tp, Ends> = state
                        .partitions
                        .iter()
                        .map(|p| {
                            let w = Ends { high: stable + 30, stable: stable + 30 };
                            (Tp::new(&p.topic, p.partition), w)
                        })
                        .collect();
                    state.extend(&now);
                }
                let bytes = serde_json::to_vec(&state).expect("json");
                let back = State::parse(&bytes, "s.json").expect("the state loads");
                prop_assert_eq!(&back, &state);
                prop_assert_eq!(&state.partitions[0].map, &copied.map);
                prop_assert_eq!(state.partitions[0].progress.written, copied.progress.written);
            }
        }

        /// However the ends move, the saved state loads back as it was: the plan and the
        /// ranges agree, and the fingerprint holds.
        #[test]
        fn an_extended_state_file_loads(
            steps in proptest::collection::vec(proptest::collection::vec(0i64..20, 3), 1..6),
        ) {
            let mut state = State::new(&live_plan(), 0);
            let mut stables = vec![50, 40, 30];
            for step in steps {
                for (s, d) in stables.iter_mut().zip(step) {
                    *s += d;
                }
                state.extend(&now(&stables));
                let bytes = serde_json::to_vec(&state).expect("json");
                let back = State::parse(&bytes, "s.json").expect("an extended state loads");
                prop_assert_eq!(&back, &state);
                let ends: Vec<i64> = back.partitions.iter().map(|p| p.end).collect();
                prop_assert_eq!(&ends, &stables);
            }
        }
    }
}
