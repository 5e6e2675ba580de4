//! `--progress json`: one JSON object per line on stderr, for programs that follow a run.
//! Every object has `event` and `ts_ms` (Unix milliseconds); the schema is in
//! docs/observability.md. Stdout keeps the tables.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::summary::RunSummary;
use crate::copy::{ProgressSink, Snapshot};

/// Whether this process writes events instead of text on stderr: set once by the command
/// before it prints anything, read by [`super::note`] wherever a note comes from.
static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Writes one event line (see [`line`]).
pub fn emit(event: &str, fields: Value) {
    let line = line(event, crate::model::now_ms(), fields);
    use std::io::Write as _;
    // One write per line under the lock, so that lines from other threads never interleave;
    // a closed stderr is not worth failing a migration for.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// One event: `event` and `ts_ms` first (easy to read and to grep), then the fields of
/// `fields`, an object.
fn line(event: &str, ts_ms: i64, fields: Value) -> String {
    let mut line = format!("{{\"event\":{},\"ts_ms\":{ts_ms}", Value::from(event));
    if let Value::Object(fields) = fields {
        for (k, v) in fields {
            line.push_str(&format!(",{}:{v}", Value::from(k)));
        }
    }
    line.push('}');
    line
}

/// The figures of a snapshot, as the `progress` event carries them.
pub fn progress_fields(s: &Snapshot) -> Value {
    let topics: serde_json::Map<String, Value> = s
        .topics
        .iter()
        .map(|(t, (done, total, records))| {
            (
                t.clone(),
                json!({ "offsets_done": done, "offsets_total": total, "records": records }),
            )
        })
        .collect();
    json!({
        "elapsed_ms": s.elapsed.as_millis() as u64,
        "offsets_done": s.offsets_done,
        "offsets_total": s.offsets_total,
        "records": s.records,
        "records_this_run": s.records_this_run,
        "bytes_this_run": s.bytes_this_run,
        "errors": s.errors,
        "partitions_done": s.partitions.iter().filter(|p| p.done).count(),
        "partitions": s.partitions.len(),
        "topics": topics,
    })
}

pub fn summary(s: &RunSummary) {
    match serde_json::to_value(s) {
        Ok(v) => emit("summary", v),
        Err(e) => emit(
            "warning",
            json!({ "message": format!("the summary could not be encoded as JSON: {e}") }),
        ),
    }
}

/// The copy's progress as events: `progress` every second and at the end, and
/// `partition_done` once per partition as soon as it is seen complete.
#[derive(Default)]
pub struct Events {
    last: Option<Instant>,
    done: BTreeSet<(String, i32)>,
}

impl Events {
    fn completed(&mut self, s: &Snapshot) {
        for p in s.partitions.iter().filter(|p| p.done) {
            if self.done.insert((p.topic.clone(), p.partition)) {
                emit(
                    "partition_done",
                    json!({ "topic": p.topic, "partition": p.partition, "records": p.records }),
                );
            }
        }
    }
}

impl ProgressSink for Events {
    fn update(&mut self, s: &Snapshot) {
        self.completed(s);
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last = Some(Instant::now());
            emit("progress", progress_fields(s));
        }
    }

    fn finish(&mut self, s: &Snapshot) {
        self.completed(s);
        emit("progress", progress_fields(s));
    }
}

/// Log messages as `log` events, for a stderr that carries only JSON lines: installed
/// instead of the text formatter when the command runs with `--progress json`.
pub struct LogEvents;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogEvents {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut out = serde_json::Map::new();
        out.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str().to_ascii_lowercase()),
        );
        out.insert("message".into(), Value::from(fields.message));
        if !fields.other.is_empty() {
            out.insert("fields".into(), Value::Object(fields.other));
        }
        emit("log", Value::Object(out));
    }
}

/// A log event's message and its other fields, as text.
#[derive(Default)]
struct Fields {
    message: String,
    other: serde_json::Map<String, Value>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.other
                .insert(field.name().to_string(), Value::from(text));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.other
                .insert(field.name().to_string(), Value::from(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_json_object_starting_with_its_name_and_time() {
        let l = line(
            "warning",
            1_700_000_000_000,
            json!({ "message": "a \"quoted\"\nline" }),
        );
        assert_eq!(
            l,
            r#"{"event":"warning","ts_ms":1700000000000,"message":"a \"quoted\"\nline"}"#
        );
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["message"], "a \"quoted\"\nline");
        assert_eq!(
            line("phase", 5, json!({})),
            r#"{"event":"phase","ts_ms":5}"#
        );
    }
}
