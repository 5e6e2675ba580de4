//! `--metrics ADDR`: the run's figures in the Prometheus text format on `GET /metrics`,
//! while the run lasts. Labels are only topic, partition, phase and commit result: never a
//! bootstrap address or a configuration value (they may carry credentials).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::summary::{RunPhase, RunSummary};
use crate::copy::{ProgressSink, Snapshot};
use crate::ledger::CommitOutcome;

type Labels = Vec<(String, String)>;

/// The metric handles (each an `Arc` inside: clones update the same values).
#[derive(Clone, Default)]
struct Metrics {
    records: Counter,
    bytes: Counter,
    errors: Counter,
    offsets_total: Gauge,
    offsets_done: Gauge,
    lag_total: Gauge,
    records_on_target: Gauge,
    partitions: Gauge,
    partitions_done: Gauge,
    lag: Family<Labels, Gauge>,
    phase: Family<Labels, Gauge>,
    groups: Family<Labels, Gauge>,
}

impl Metrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "records_copied",
            "Records written to the target by this run",
            self.records.clone(),
        );
        r.register(
            "bytes_copied",
            "Key and value bytes written to the target by this run",
            self.bytes.clone(),
        );
        r.register(
            "errors",
            "Failures reported by the copy or that ended the run",
            self.errors.clone(),
        );
        r.register(
            "offsets_planned",
            "Offsets in the planned ranges",
            self.offsets_total.clone(),
        );
        r.register(
            "offsets_read",
            "Offsets of the planned ranges read so far",
            self.offsets_done.clone(),
        );
        r.register(
            "lag_records",
            "Offsets still to copy, all partitions (an upper bound of the records to go)",
            self.lag_total.clone(),
        );
        r.register(
            "records_on_target",
            "Records on the target, this run and earlier ones",
            self.records_on_target.clone(),
        );
        r.register("partitions", "Planned partitions", self.partitions.clone());
        r.register(
            "partitions_done",
            "Planned partitions completely copied",
            self.partitions_done.clone(),
        );
        r.register(
            "partition_lag_records",
            "Offsets still to copy in one partition",
            self.lag.clone(),
        );
        r.register(
            "phase",
            "1 for the phase the run is in, 0 for the others",
            self.phase.clone(),
        );
        r.register(
            "groups",
            "Consumer groups by the result of their commit on the target",
            self.groups.clone(),
        );
    }

    fn set_phase(&self, now: RunPhase) {
        for p in RunPhase::ALL {
            self.phase
                .get_or_create(&vec![("phase".to_string(), p.name().to_string())])
                .set(i64::from(p == now));
        }
    }

    fn update(&self, s: &Snapshot) {
        // Counters only go up: add what this snapshot has beyond what was counted.
        let add = |c: &Counter, now: u64| c.inc_by(now.saturating_sub(c.get()));
        add(&self.records, s.records_this_run);
        add(&self.bytes, s.bytes_this_run);
        add(&self.errors, s.errors);
        self.offsets_total.set(s.offsets_total);
        self.offsets_done.set(s.offsets_done);
        self.lag_total
            .set((s.offsets_total - s.offsets_done).max(0));
        self.records_on_target.set(s.records as i64);
        self.partitions.set(s.partitions.len() as i64);
        self.partitions_done
            .set(s.partitions.iter().filter(|p| p.done).count() as i64);
        for p in &s.partitions {
            let labels = vec![
                ("topic".to_string(), p.topic.clone()),
                ("partition".to_string(), p.partition.to_string()),
            ];
            self.lag.get_or_create(&labels).set(p.lag());
        }
    }
}

/// The endpoint and the metrics it serves.
pub struct Exporter {
    metrics: Metrics,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    /// Binds `addr` and serves from a thread of its own until dropped.
    pub fn start(addr: &str) -> anyhow::Result<Exporter> {
        let listener = TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| {
                crate::error::usage(format!(
                    "cannot serve metrics on {addr} (--metrics {addr}): {e}. Pass a free \
                     HOST:PORT to --metrics (e.g. 127.0.0.1:9464), or leave it out; nothing \
                     was copied"
                ))
            })?;
        let bound = listener.local_addr().map_err(|e| {
            anyhow::anyhow!("reading the address the metrics endpoint bound ({addr}): {e}")
        })?;
        let metrics = Metrics::default();
        let mut registry = Registry::with_prefix("kmigrate");
        metrics.register(&mut registry);
        metrics.set_phase(RunPhase::Planning);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || serve(&listener, &registry, &stop))
                .map_err(|e| anyhow::anyhow!("starting the metrics endpoint's thread: {e}"))?
        };
        tracing::info!("serving metrics on http://{addr}/metrics");
        Ok(Exporter {
            metrics,
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The address served (with the port chosen when ADDR asked for port 0).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn phase(&self, phase: RunPhase) {
        self.metrics.set_phase(phase);
    }

    pub fn error(&self) {
        self.metrics.errors.inc();
    }

    pub fn sink(&self) -> impl ProgressSink + use<> {
        Sink(self.metrics.clone())
    }

    pub fn summary(&self, s: &RunSummary) {
        let mut by_result = std::collections::BTreeMap::<&str, i64>::new();
        for g in &s.groups {
            let result = match g.outcome {
                CommitOutcome::Pending => "pending",
                CommitOutcome::Committed => "committed",
                CommitOutcome::KeptAhead(_) => "kept-ahead",
                CommitOutcome::Refused(_) => "refused",
            };
            *by_result.entry(result).or_default() += 1;
        }
        for (result, n) in by_result {
            self.metrics
                .groups
                .get_or_create(&vec![("result".to_string(), result.to_string())])
                .set(n);
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Sink(Metrics);

impl ProgressSink for Sink {
    fn update(&mut self, s: &Snapshot) {
        self.0.update(s);
    }

    fn finish(&mut self, s: &Snapshot) {
        self.0.update(s);
    }
}

/// Answers one connection at a time: scrapes are rare and small, and a slow client is cut
/// off by the timeouts rather than holding a thread per connection.
fn serve(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, registry) {
                    tracing::debug!("metrics request: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => {
                tracing::debug!("metrics endpoint: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The longest request head read; anything longer is not a scrape.
const MAX_REQUEST: usize = 8 * 1024;

fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut words = std::str::from_utf8(line).unwrap_or("").split_whitespace();
    let (method, path) = (words.next(), words.next());
    let path = path.map(|p| p.split('?').next().unwrap_or(p));
    let (status, content_type, body) = match (method, path) {
        (Some("GET"), Some("/metrics")) => {
            let mut body = String::new();
            match encode(&mut body, registry) {
                Ok(()) => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(_) => (
                    "500 Internal Server Error",
                    "text/plain",
                    "encoding failed\n".into(),
                ),
            }
        }
        (Some("GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics\n".into(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn snapshot(done: i64, records: u64) -> Snapshot {
        let mut s = Snapshot {
            offsets_done: done,
            offsets_total: 100,
            records,
            records_this_run: records,
            bytes_this_run: records * 10,
            partitions: vec![Default::default()],
            ..Snapshot::default()
        };
        let p = &mut s.partitions[0];
        p.topic = "orders".into();
        p.partition = 3;
        p.offsets_done = done;
        p.offsets_total = 100;
        p.records = records;
        p.done = done == 100;
        s
    }

    #[test]
    fn serves_the_snapshot_figures_and_the_phase() {
        let ex = Exporter::start("127.0.0.1:0").unwrap();
        let mut sink = ex.sink();
        sink.update(&snapshot(40, 40));
        ex.phase(RunPhase::Copying);
        let body = get(ex.addr(), "/metrics");
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("kmigrate_records_copied_total 40"), "{body}");
        assert!(body.contains("kmigrate_bytes_copied_total 400"), "{body}");
        assert!(
            body.contains(r#"kmigrate_partition_lag_records{topic="orders",partition="3"} 60"#),
            "{body}"
        );
        assert!(
            body.contains(r#"kmigrate_phase{phase="copying"} 1"#),
            "{body}"
        );
        assert!(
            body.contains(r#"kmigrate_phase{phase="planning"} 0"#),
            "{body}"
        );
        sink.finish(&snapshot(100, 95));
        let body = get(ex.addr(), "/metrics?x=1");
        assert!(body.contains("kmigrate_records_copied_total 95"), "{body}");
        assert!(body.contains("kmigrate_lag_records 0"), "{body}");
        assert!(body.contains("kmigrate_partitions_done 1"), "{body}");
        assert!(get(ex.addr(), "/").starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn an_address_in_use_is_a_usage_error_naming_it_and_the_flag() {
        let ex = Exporter::start("127.0.0.1:0").unwrap();
        let addr = ex.addr().to_string();
        let Err(e) = Exporter::start(&addr) else {
            panic!("bound {addr} twice")
        };
        let msg = format!("{e:#}");
        assert!(msg.contains(&addr) && msg.contains("--metrics"), "{msg}");
        assert_eq!(
            crate::error::exit_kind(&e),
            crate::error::ExitKind::Usage,
            "{msg}"
        );
    }
}
