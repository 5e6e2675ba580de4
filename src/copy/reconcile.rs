//! The acknowledgement reconciler: pairs each acknowledged source offset with the target
//! offset it got, in order, checks that the target offsets follow on, and names the record
//! the target refused.

use std::time::Duration;

use anyhow::bail;

use super::slot::Slot;
use crate::kafka::error::KafkaError;
use crate::kafka::writer::{Failure, TargetWriter};

/// Applies the writer's acknowledgements to the slots. Fails, before recording anything
/// wrong, when the target's offsets do not follow on (the partition holds records kmigrate
/// did not write there in this order) or when the target refused a record.
/// `topics` and `targets` name each topic index on the source and on the target.
pub(super) fn reconcile(
    writer: &TargetWriter,
    slots: &mut [Slot],
    topics: &[String],
    targets: &[String],
) -> anyhow::Result<()> {
    // A producer that stopped (a record refused, gapless) reports its failed records a
    // moment later: serve those reports first, so the error names the record.
    let fatal = writer.fatal_error();
    if fatal.is_some() {
        writer.poll(Duration::from_millis(200));
    }
    for (si, s) in slots.iter_mut().enumerate() {
        if !s.sent.is_empty() {
            apply_acks(writer, si, s, targets)?;
        }
    }
    // Failures after the acknowledgements: those are counted first, so the records still
    // in `sent` are the failed ones, in order.
    let failures = writer.take_failures();
    if let Some(first) = failures.first() {
        return Err(refused(
            writer,
            slots,
            (topics, targets),
            &failures,
            first.slot,
        ));
    }
    if let Some(fatal) = fatal {
        bail!(
            "the producer to the {} failed: {fatal}",
            writer.cluster().describe()
        );
    }
    Ok(())
}

/// `targets` names each topic index on the target.
fn apply_acks(
    writer: &TargetWriter,
    si: usize,
    s: &mut Slot,
    targets: &[String],
) -> anyhow::Result<()> {
    let acks = writer.acks(si);
    let new = acks.count - s.acks_seen;
    if new == 0 {
        return Ok(());
    }
    // Checked before the acknowledgements are recorded: the state keeps the last pair
    // known to be right.
    let expected_last = s.next_target + new as i64 - 1;
    if acks.last_offset != expected_last {
        bail!(
            "{}/{}: the target gave offset {} to a record kmigrate expected at \
             {expected_last}: the partition holds records kmigrate did not write there in \
             this order, from another producer or written twice by a producer retry after a \
             broker outage. Stop any other producer; `kmigrate run` then checks the records \
             past the last checkpoint before continuing",
            targets[s.topic],
            s.partition,
            acks.last_offset
        );
    }
    if new > s.sent.len() as u64 {
        bail!(
            "{}/{}: more acknowledgements than records sent",
            targets[s.topic],
            s.partition
        );
    }
    for _ in 0..new {
        if let Some(src) = s.sent.pop_front() {
            s.landed(src);
        }
    }
    s.progress.written += new;
    s.acks_seen = acks.count;
    s.dirty = true;
    Ok(())
}

/// The error for records the target refused, naming the first partition's culprit.
fn refused(
    writer: &TargetWriter,
    slots: &[Slot],
    (topics, targets): (&[String], &[String]),
    failures: &[Failure],
    si: usize,
) -> anyhow::Error {
    let mine: Vec<&Failure> = failures.iter().filter(|f| f.slot == si).collect();
    let s = &slots[si];
    let i = culprit(
        &mine
            .iter()
            .map(|f| (f.too_large, f.size))
            .collect::<Vec<_>>(),
    );
    let f = mine[i];
    let at = s.sent.get(i).copied().unwrap_or(s.last_read);
    let target = writer.cluster().describe();
    let (topic, to, p) = (&topics[s.topic], &targets[s.topic], s.partition);
    if f.too_large {
        return anyhow::anyhow!(
            "writing offset {at} of {topic}/{p} to {to}/{p} on the {target} failed: the record \
             ({size} bytes of key, value and headers) is larger than the target accepts \
             ({why}). Raise max.message.bytes on the target topic {to} (and, if the record is \
             larger than them, message.max.bytes and replica.fetch.max.bytes on the target's \
             brokers), then run `kmigrate run` again: it resumes at this record. No record of \
             {topic}/{p} after it was written",
            size = f.size,
            why = f.reason,
        );
    }
    let text = format!(
        "writing offset {at} of {topic}/{p} to {to}/{p} on the {target} failed: {}. No record \
         of that partition after it was written",
        f.reason
    );
    match f.code {
        // The code travels with the text, so that a sync can tell an outage it waits out
        // from a refusal.
        Some(code) => {
            anyhow::Error::new(KafkaError::new(code, "producing", &f.reason)).context(text)
        }
        None => anyhow::anyhow!(text),
    }
}

/// Which of a partition's failed records (too large?, size), in the order they were sent,
/// to name: the largest of those refused as too large (a batch is refused whole, so its
/// small records fail with it), else the first.
fn culprit(failures: &[(bool, usize)]) -> usize {
    let mut best: Option<(usize, usize)> = None;
    for (i, (too_large, size)) in failures.iter().enumerate() {
        if *too_large && best.is_none_or(|(_, b)| *size > b) {
            best = Some((i, *size));
        }
    }
    best.map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn culprit_is_the_largest_record_refused_as_too_large() {
        // A batch refused whole: small records fail with the big one.
        assert_eq!(culprit(&[(true, 10), (true, 60_000), (true, 12)]), 1);
        // Later records failed for another reason (the producer stopped after it).
        assert_eq!(culprit(&[(false, 10), (true, 60_000), (false, 99_999)]), 1);
        // Ties: the first.
        assert_eq!(culprit(&[(true, 5), (true, 5)]), 0);
        // Nothing too large: the first failed record.
        assert_eq!(culprit(&[(false, 10), (false, 60_000)]), 0);
    }
}
