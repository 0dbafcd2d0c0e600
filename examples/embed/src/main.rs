//! Embedding steward's loop in your own program.
//!
//! A tiny in-process HTTP service plays a work queue: `GET /depth` answers
//! `{"depth": N}`. A custom [`Source`] reads that depth and the replicas it
//! knows of into a snapshot; a custom [`Actuator`] "scales" the replicas
//! (here, a number the queue's workers drain at); the built-in adaptive
//! policy sizes the fleet to the backlog; the journal records every cycle,
//! decision and outcome. Three cycles run, then a summary line of JSON.
//!
//! Run it: `cargo run -p steward-embed-example -- [STATE_DIR]`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steward_actuators::{Actuator, ActuatorError};
use steward_core::config::EngineConfig;
use steward_core::decision::Action;
use steward_core::policy::Adaptive;
use steward_core::snapshot::{AgentRecord, LivenessSource, Snapshot};
use steward_core::time::UnixMs;
use steward_runtime::{drive, DriveOptions, Engine, Next, RuntimeError};
use steward_sources::{Source, SourceError};

/// The queue's state: what the HTTP service reports and the replicas drain.
struct Queue {
    depth: AtomicU64,
    replicas: AtomicU32,
}

/// Serves `GET /depth` on a free loopback port, one short connection at a time.
fn serve_queue(queue: Arc<Queue>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &queue);
        }
    });
    Ok(addr)
}

fn answer(mut stream: TcpStream, queue: &Queue) -> std::io::Result<()> {
    // A client that never finishes its request must not hold the service.
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    // Read the request head (up to the blank line), at most 8 KiB of it.
    let mut head = BufReader::new(&stream).take(8192);
    let mut request_line = String::new();
    head.read_line(&mut request_line)?;
    let mut line = String::new();
    while head.read_line(&mut line)? > 2 {
        line.clear();
    }
    let (status, body) = if request_line.starts_with("GET /depth ") {
        ("200 OK", format!("{{\"depth\": {}}}", queue.depth.load(Ordering::SeqCst)))
    } else {
        ("404 Not Found", "{\"error\": \"no such endpoint\"}".to_owned())
    };
    let response =
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    stream.write_all(response.as_bytes())
}

/// A source that reads the queue's depth over HTTP, and the replicas the
/// actuator runs as agents.
struct HttpQueueSource {
    addr: SocketAddr,
    replicas: Arc<Queue>,
}

impl HttpQueueSource {
    fn depth(&self) -> Result<u64, String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
        let request = format!("GET /depth HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream.take(64 * 1024).read_to_string(&mut response).map_err(|e| e.to_string())?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("no body in the answer")?;
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        v["depth"].as_u64().ok_or_else(|| format!("no depth in {body}"))
    }
}

impl Source for HttpQueueSource {
    fn target(&self) -> String {
        format!("http://{}/depth", self.addr)
    }

    fn snapshot(&self, now: UnixMs) -> Result<Snapshot, SourceError> {
        let depth = self.depth().map_err(|e| SourceError::Other(format!("reading the queue depth: {e}").into()))?;
        let replicas = self.replicas.replicas.load(Ordering::SeqCst);
        let agents = (0..replicas)
            .map(|i| AgentRecord {
                id: format!("replica-{i}"),
                file: format!("replica-{i}"),
                status: "active".into(),
                last_seen: Some(now),
                liveness_from: LivenessSource::Heartbeat,
                capacity: 1,
                ..AgentRecord::default()
            })
            .collect();
        Ok(Snapshot {
            taken_at: now,
            target_exists: true,
            agent_files: u64::from(replicas),
            work_queue_size: depth,
            agents,
            ..Snapshot::default()
        })
    }
}

/// An actuator that sets the replica count (in real life: a deployment's
/// replicas, an instance group's size, a pool of threads).
struct ReplicaActuator {
    queue: Arc<Queue>,
}

impl Actuator for ReplicaActuator {
    fn name(&self) -> &'static str {
        "replicas"
    }

    fn handles(&self, action: &Action) -> bool {
        matches!(action, Action::Scale { .. })
    }

    fn apply(&mut self, action: &Action, _now: UnixMs) -> Result<String, ActuatorError> {
        let Action::Scale { from, to } = action else {
            return Err(ActuatorError::Unsupported { actuator: "replicas", action: steward_actuators::action_kind(action) });
        };
        self.queue.replicas.store(*to, Ordering::SeqCst);
        Ok(format!("replicas {from} → {to}"))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state_dir =
        std::env::args().nth(1).map_or_else(|| std::env::temp_dir().join(format!("steward-embed-{}", std::process::id())), PathBuf::from);
    let queue = Arc::new(Queue { depth: AtomicU64::new(120), replicas: AtomicU32::new(1) });
    let addr = serve_queue(queue.clone())?;

    let mut cfg = EngineConfig::default();
    cfg.auto.max_agents = 12;
    cfg.auto.scale_up_cooldown = Duration::ZERO;
    cfg.adaptive.target_per_agent = 10.0;
    let engine = Engine::builder(cfg)
        .source(HttpQueueSource { addr, replicas: queue.clone() })
        .policy(Adaptive)
        .fleet_actuator(ReplicaActuator { queue: queue.clone() })
        .state_dir(&state_dir)
        .build()?;

    let opts = DriveOptions { interval: Duration::from_millis(200), max_cycles: 3, dry_run: false, tick_every: Duration::from_millis(50) };
    let mut scale_actions = 0;
    let cycles = drive(&engine, &opts, &AtomicBool::new(false), |result: &Result<_, RuntimeError>| {
        match result {
            Ok(report) => {
                scale_actions += report.executed.len();
                println!(
                    "cycle {}: depth {}, agents {}, health {:.2}, executed {:?}, skipped {:?}",
                    report.cycle_id,
                    report.metrics.work_queue_size,
                    report.metrics.active_agents,
                    report.metrics.health_score,
                    report.executed.iter().map(|e| &e.result).collect::<Vec<_>>(),
                    report.skipped.iter().map(|s| &s.reason).collect::<Vec<_>>(),
                );
            }
            Err(e) => println!("cycle failed: {}", steward_runtime::error_chain(e)),
        }
        // Between cycles, each replica works off ten items.
        let replicas = u64::from(queue.replicas.load(Ordering::SeqCst));
        let _ = queue.depth.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| Some(d.saturating_sub(replicas * 10)));
        Next::Continue
    })?;

    let journal = steward_store::Journal::open_existing_at(engine.journal_at())?.ok_or("the journal was not written")?;
    let summary = serde_json::json!({
        "cycles": cycles,
        "journal_cycles": journal.cycle_count()?,
        "replicas": queue.replicas.load(Ordering::SeqCst),
        "depth": queue.depth.load(Ordering::SeqCst),
        "scale_actions": scale_actions,
        "decisions": engine.recent_decisions(10)?.len(),
    });
    println!("{summary}");
    Ok(())
}
