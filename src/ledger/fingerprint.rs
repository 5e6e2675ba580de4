//! The fingerprint of a plan: a state file only resumes the plan it was made for.

use crate::model::Shard;
use crate::plan::{Plan, Status};

/// A fingerprint of what a plan copies and from where to where. Two plans with the same
/// ranges, clusters and groups have the same id.
pub fn plan_id(plan: &Plan) -> String {
    let mut h = Fnv::new();
    h.add(plan.source.as_bytes());
    h.add(plan.target.as_bytes());
    // A live plan's ends move (`kmigrate sync`): its fingerprint leaves them out, and says
    // it is live so that it never equals a fixed plan's.
    if plan.live {
        h.add(b"live");
    }
    for p in plan
        .partitions
        .iter()
        .filter(|p| p.status == Status::Migrate)
    {
        h.add(p.topic.as_bytes());
        // Only a renamed topic adds its target name, so that the fingerprints of state
        // files written before topics could be renamed stay the same.
        if p.target() != p.topic {
            h.add(b"\0->");
            h.add(p.target().as_bytes());
        }
        h.add(&p.partition.to_le_bytes());
        h.add(&p.start.to_le_bytes());
        if !plan.live {
            h.add(&p.end.to_le_bytes());
        }
        for (g, c) in &p.committed {
            h.add(g.as_bytes());
            h.add(&c.to_le_bytes());
        }
    }
    format!("{:016x}", h.0)
}

/// The fingerprint a state file records: the plan's, and for a shard also which shard of
/// how many, so that one shard's file never resumes another's share.
pub fn state_id(plan: &Plan, shard: Option<Shard>) -> String {
    match shard {
        None => plan_id(plan),
        Some(s) => format!("{}-shard-{}-of-{}", plan_id(plan), s.index, s.count),
    }
}

/// FNV-1a: a small, stable hash for fingerprints (not for security).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator so that ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::live::tests::{fixed_plan, live_plan};

    #[test]
    fn a_live_plans_fingerprint_leaves_out_the_ends() {
        // The live fingerprint leaves out the ends, and differs from the fixed one's.
        let fixed_id = plan_id(&fixed_plan());
        let mut plan = live_plan();
        let live_id = plan_id(&plan);
        assert_ne!(live_id, fixed_id);
        plan.partitions[1].end = 99;
        assert_eq!(plan_id(&plan), live_id);
        plan.partitions[1].start = 41;
        assert_ne!(plan_id(&plan), live_id);
    }
}
