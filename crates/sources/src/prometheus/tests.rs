//! The source against a fake Prometheus on loopback: canned answers of
//! the query API, and the ways a server goes wrong.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use steward_core::config::EngineConfig;

use super::*;

const NOW: UnixMs = 1_800_000_000_000;

/// A fake server: answers each request with `answer(query)`, where
/// `query` is the decoded PromQL, and records the request heads.
struct Fake {
    addr: String,
    heads: Arc<Mutex<Vec<String>>>,
}

type Answer = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

impl Fake {
    fn start(answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (record, answer): (_, Answer) = (Arc::clone(&heads), Arc::new(answer));
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (record, answer) = (Arc::clone(&record), Arc::clone(&answer));
                thread::spawn(move || serve(stream, &record, &*answer));
            }
        });
        Self { addr, heads }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, record: &Mutex<Vec<String>>, answer: &(dyn Fn(&str) -> Vec<u8> + Send + Sync)) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let target = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let query = target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("query="))
        .map(|q| steward_http::form_decode(q).unwrap())
        .unwrap_or_default();
    record.lock().unwrap().push(head);
    let _ = (&stream).write_all(&answer(&query));
}

fn http(status: u16, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn vector(values: &[&str]) -> Vec<u8> {
    let series: Vec<String> =
        values.iter().enumerate().map(|(i, v)| format!(r#"{{"metric":{{"i":"{i}"}},"value":[1800000000,"{v}"]}}"#)).collect();
    http(200, &format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#, series.join(",")))
}

fn scalar(value: &str) -> Vec<u8> {
    http(200, &format!(r#"{{"status":"success","data":{{"resultType":"scalar","result":[1800000000,"{value}"]}}}}"#))
}

/// A config for `fake` with these queries (name, PromQL).
fn config(url: &str, queries: &[(&str, &str)]) -> PrometheusConfig {
    let mut cfg = PrometheusConfig::from_url(url);
    for (name, promql) in queries {
        let slot = match *name {
            "queue_depth" => &mut cfg.queries.queue_depth,
            "in_flight" => &mut cfg.queries.in_flight,
            "consumers" => &mut cfg.queries.consumers,
            "completed" => &mut cfg.queries.completed,
            "failed" => &mut cfg.queries.failed,
            "error_rate" => &mut cfg.queries.error_rate,
            "response_time_ms" => &mut cfg.queries.response_time_ms,
            other => panic!("{other}"),
        };
        *slot = Some((*promql).to_owned());
    }
    cfg
}

fn snapshot_error(source: &PrometheusSource) -> String {
    let e = source.snapshot(NOW).unwrap_err();
    assert!(matches!(e, SourceError::Other(_)), "{e:?}");
    e.to_string()
}

#[test]
fn every_query_fills_its_field() {
    let fake = Fake::start(|q| match q {
        "depth" => vector(&["42.4"]),
        "flight" => vector(&["3"]),
        "consumers" => vector(&["2"]),
        "done" => vector(&["1000"]),
        "failed" => vector(&["7"]),
        "errors" => vector(&["0.05"]),
        "latency" => vector(&["120.5"]),
        other => panic!("{other}"),
    });
    let cfg = config(
        &fake.url(),
        &[
            ("queue_depth", "depth"),
            ("in_flight", "flight"),
            ("consumers", "consumers"),
            ("completed", "done"),
            ("failed", "failed"),
            ("error_rate", "errors"),
            ("response_time_ms", "latency"),
        ],
    );
    let source = PrometheusSource::new(cfg);
    source.check().unwrap();
    let snapshot = source.snapshot(NOW).unwrap();
    assert!(snapshot.target_exists && snapshot.warnings.is_empty(), "{:?}", snapshot.warnings);
    assert_eq!(snapshot.taken_at, NOW);
    assert_eq!((snapshot.work_queue_size, snapshot.completed, snapshot.failed), (42, 1000, 7));
    assert_eq!((snapshot.telemetry.error_rate, snapshot.telemetry.response_time_ms), (Some(0.05), Some(120.5)));
    let ids: Vec<&str> = snapshot.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["prometheus-consumer-1", "prometheus-consumer-2"]);
    assert!(snapshot.agents.iter().all(|a| a.status == "active"
        && a.last_seen == Some(NOW)
        && a.liveness_from == LivenessSource::Heartbeat
        && !a.managed_by_steward));
    assert_eq!(snapshot.agent_files, 2);
    assert_eq!(snapshot.claims.len(), 3);
    assert!(snapshot.claims.iter().all(|c| c.claimed_at == Some(NOW) && c.claimed_by.is_none()));

    // What the core makes of it: the claims are in flight, never stale.
    let assessment = steward_core::assess::assess(&snapshot, &EngineConfig::default(), NOW);
    assert_eq!((assessment.metrics.in_flight, assessment.metrics.stale_claims, assessment.metrics.active_agents), (3, 0, 2));

    let heads = fake.heads();
    assert_eq!(heads.len(), 7);
    assert!(heads.iter().all(|h| h.starts_with("GET /api/v1/query?query=") && h.contains("&time=1800000000.000 HTTP/1.1")), "{heads:?}");
}

#[test]
fn a_scalar_is_one_sample() {
    let fake = Fake::start(|_| scalar("5"));
    let snapshot = PrometheusSource::new(config(&fake.url(), &[("queue_depth", "scalar(x)")])).snapshot(NOW).unwrap();
    assert_eq!(snapshot.work_queue_size, 5);
    assert!(snapshot.agents.is_empty() && snapshot.claims.is_empty());
}

#[test]
fn no_sample_is_a_warning_except_for_queue_depth() {
    let fake = Fake::start(|q| if q == "depth" { vector(&["4"]) } else { vector(&[]) });
    let snapshot = PrometheusSource::new(config(&fake.url(), &[("queue_depth", "depth"), ("in_flight", "flight")])).snapshot(NOW).unwrap();
    assert_eq!(snapshot.work_queue_size, 4);
    assert!(snapshot.claims.is_empty());
    let [warning] = snapshot.warnings.as_slice() else { panic!("{:?}", snapshot.warnings) };
    assert_eq!(warning.file, "prometheus query in_flight");
    assert!(warning.reason.contains("`flight` gave no sample") && warning.reason.contains("in_flight is unknown"), "{warning}");

    let source = PrometheusSource::new(config(&fake.url(), &[("queue_depth", "nothing")]));
    let e = snapshot_error(&source);
    assert!(
        e.contains("queue_depth query `nothing` gave no sample") && e.contains(&format!("at {}", fake.url())) && e.contains("or vector(0)"),
        "{e}"
    );
}

#[test]
fn unusable_values_are_refused_with_a_warning() {
    let fake = Fake::start(|q| match q {
        "nan" => vector(&["NaN"]),
        "inf" => vector(&["+Inf"]),
        "neg" => scalar("-1"),
        "two" => vector(&["1", "2"]),
        "matrix" => http(200, r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#),
        "percent" => vector(&["5"]),
        "text" => vector(&["many"]),
        _ => vector(&["1"]),
    });
    let cfg = config(
        &fake.url(),
        &[
            ("queue_depth", "depth"),
            ("in_flight", "nan"),
            ("consumers", "inf"),
            ("completed", "neg"),
            ("failed", "two"),
            ("error_rate", "percent"),
            ("response_time_ms", "matrix"),
        ],
    );
    let snapshot = PrometheusSource::new(cfg).snapshot(NOW).unwrap();
    assert_eq!(snapshot.work_queue_size, 1);
    assert!(snapshot.claims.is_empty() && snapshot.agents.is_empty());
    assert_eq!((snapshot.completed, snapshot.failed), (0, 0));
    assert_eq!(snapshot.telemetry, Default::default());
    let reasons: Vec<String> = snapshot.warnings.iter().map(ToString::to_string).collect();
    for (i, says) in [
        "in_flight: `nan` gave NaN",
        "consumers: `inf` gave inf, which is no count",
        "completed: `neg` gave -1, a negative value",
        "failed: `two` gave 2 samples where one was expected",
        "response_time_ms: `matrix` gave a matrix where an instant vector or a scalar was expected",
        "error_rate: error_rate 5 is above 1",
    ]
    .iter()
    .enumerate()
    {
        assert!(reasons.iter().any(|r| r.contains(says)), "{i}: {says:?} not in {reasons:#?}");
    }
    assert_eq!(reasons.len(), 6, "{reasons:#?}");

    for bad in ["NaN", "-3", "many"] {
        let fake = Fake::start(move |_| vector(&[bad]));
        let e = snapshot_error(&PrometheusSource::new(config(&fake.url(), &[("queue_depth", "q")])));
        assert!(e.contains("the queue_depth query `q` gave"), "{bad}: {e}");
    }
}

#[test]
fn prometheus_warnings_are_passed_on() {
    let body = r#"{"status":"success","warnings":["PromQL info: metric might not be a counter"],
        "data":{"resultType":"vector","result":[{"metric":{},"value":[1,"9"]}]}}"#;
    let fake = Fake::start(move |_| http(200, body));
    let snapshot = PrometheusSource::new(config(&fake.url(), &[("queue_depth", "q")])).snapshot(NOW).unwrap();
    assert_eq!(snapshot.work_queue_size, 9);
    assert_eq!(
        snapshot.warnings[0].to_string(),
        "prometheus query queue_depth: Prometheus warns: PromQL info: metric might not be a counter"
    );
}

#[test]
fn an_error_status_fails_the_snapshot_with_prometheus_error_type() {
    let fake = Fake::start(|q| {
        if q == "depth" {
            vector(&["1"])
        } else {
            http(400, r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected right parenthesis ')'"}"#)
        }
    });
    let e = snapshot_error(&PrometheusSource::new(config(&fake.url(), &[("queue_depth", "depth"), ("consumers", "sum(x))")])));
    assert_eq!(
        e,
        format!(
            "the Prometheus server at {} answered consumers (`sum(x))`) with 400: bad_data: 1:5: parse error: unexpected right parenthesis ')'",
            fake.url()
        )
    );

    // The same, under a 200.
    let fake = Fake::start(|_| http(200, r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#));
    let e = snapshot_error(&PrometheusSource::new(config(&fake.url(), &[("queue_depth", "q")])));
    assert!(e.ends_with("with 200: timeout: query timed out"), "{e}");
}

#[test]
fn a_500_or_404_fails_the_snapshot() {
    let fake = Fake::start(|_| http(500, "internal trouble\n"));
    let e = snapshot_error(&PrometheusSource::new(config(&fake.url(), &[("queue_depth", "q")])));
    assert!(e.ends_with("answered queue_depth (`q`) with 500: internal trouble"), "{e}");

    let fake = Fake::start(|_| http(404, "404 page not found"));
    let e = snapshot_error(&PrometheusSource::new(config(&format!("{}/wrong", fake.url()), &[("queue_depth", "q")])));
    assert!(e.contains(&format!("at {}/wrong answered", fake.url())) && e.contains("path prefix"), "{e}");
}

#[test]
fn a_garbage_body_fails_the_snapshot() {
    for body in ["<html>hello</html>", r#"{"status":"success"}"#, r#"{"status":"maybe"}"#, ""] {
        let fake = Fake::start(move |_| http(200, body));
        let e = snapshot_error(&PrometheusSource::new(config(&fake.url(), &[("queue_depth", "q")])));
        assert!(e.contains("not the query API's JSON") && e.contains("is the URL right?"), "{body}: {e}");
    }
}

#[test]
fn a_huge_body_fails_the_snapshot() {
    let fake = Fake::start(|_| format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 9 << 20).into_bytes());
    let e = snapshot_error(&PrometheusSource::new(config(&fake.url(), &[("queue_depth", "q")])));
    assert!(e.contains("cannot query the Prometheus server at") && e.contains("larger than 8388608 bytes"), "{e}");
}

#[test]
fn a_slow_server_times_out() {
    let fake = Fake::start(|_| {
        thread::sleep(Duration::from_secs(2));
        vector(&["1"])
    });
    let mut cfg = config(&fake.url(), &[("queue_depth", "q"), ("in_flight", "f"), ("consumers", "c")]);
    cfg.timeout = Duration::from_millis(300);
    let start = Instant::now();
    let e = snapshot_error(&PrometheusSource::new(cfg));
    // The queries run in parallel: one timeout, not three.
    assert!(start.elapsed() < Duration::from_millis(1500), "{:?}", start.elapsed());
    assert!(e.contains("for queue_depth: no complete answer within 300ms"), "{e}");
}

#[test]
fn an_unreachable_server_fails_with_a_sentence() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = snapshot_error(&PrometheusSource::from_url(&format!("prometheus://127.0.0.1:{port}?queue_depth=q")));
    assert!(e.starts_with(&format!("cannot query the Prometheus server at http://127.0.0.1:{port} for queue_depth: ")), "{e}");
}

#[test]
fn the_prefix_and_headers_reach_the_server() {
    let fake = Fake::start(|_| vector(&["1"]));
    let mut cfg = config(&format!("{}/prom/", fake.url()), &[("queue_depth", r#"sum(depth{q="a b"}) + 1"#)]);
    cfg.headers = BTreeMap::from([("X-Scope-OrgID".to_owned(), "tenant-1".to_owned())]);
    let source = PrometheusSource::new(cfg);
    assert_eq!(source.target(), format!("prometheus {}/prom", fake.url()));
    source.snapshot(NOW).unwrap();
    let heads = fake.heads();
    assert!(heads[0].starts_with("GET /prom/api/v1/query?query=sum%28depth%7Bq%3D%22a%20b%22%7D%29%20%2B%201&time="), "{heads:?}");
    assert!(heads[0].contains("\r\nX-Scope-OrgID: tenant-1\r\n"), "{heads:?}");
}

#[test]
fn counts_beyond_the_cap_are_capped_with_a_warning() {
    let fake = Fake::start(|q| if q == "c" { vector(&["1e12"]) } else { vector(&["1e30"]) });
    let snapshot = PrometheusSource::new(config(&fake.url(), &[("queue_depth", "q"), ("consumers", "c")])).snapshot(NOW).unwrap();
    assert_eq!(snapshot.work_queue_size, u64::MAX);
    assert_eq!(snapshot.agents.len() as u64, MAX_SYNTHESIZED);
    assert!(snapshot.warnings[0].reason.contains("1000000000000 consumers is more than the 100000"), "{:?}", snapshot.warnings);
}

#[test]
fn a_source_url_configures_the_source() {
    let source = PrometheusSource::from_url(
        "prometheus://prom.internal?queue_depth=sum%28jobs_queue_depth%29&in_flight=sum(jobs_in_flight)&consumers=count+by+(pod)+(up)",
    );
    source.check().unwrap();
    assert_eq!(source.target(), "prometheus http://prom.internal:9090");
    let resolved = source.resolved.as_ref().unwrap();
    assert_eq!(resolved.endpoint.path, "/api/v1/query");
    let queries: Vec<(&str, &str)> = resolved.queries.iter().map(|(m, q)| (m.name(), q.as_str())).collect();
    assert_eq!(
        queries,
        [("queue_depth", "sum(jobs_queue_depth)"), ("in_flight", "sum(jobs_in_flight)"), ("consumers", "count by (pod) (up)")]
    );

    let source = PrometheusSource::from_url("prometheus+http://[::1]:9091/prometheus/?queue_depth=x");
    assert_eq!(source.target(), "prometheus http://[::1]:9091/prometheus");
    assert_eq!(source.resolved.as_ref().unwrap().endpoint.path, "/prometheus/api/v1/query");
    assert_eq!(PrometheusSource::from_url("http://h?").target(), "prometheus http://h");

    // The config's queries win over the URL's; the URL fills the rest.
    let mut cfg = PrometheusConfig::from_url("prometheus://h:1?queue_depth=from_url&failed=f");
    cfg.queries.queue_depth = Some("from_config".into());
    let resolved = cfg.resolve().unwrap();
    assert_eq!(resolved.queries, [(Measure::QueueDepth, "from_config".to_owned()), (Measure::Failed, "f".to_owned())]);
    assert_eq!(resolved.server, "http://h:1");
}

#[test]
fn wrong_configs_say_which_key_and_why() {
    let check = |cfg: PrometheusConfig, key: &str, says: &str| {
        let source = PrometheusSource::new(cfg.clone());
        let e = source.check().unwrap_err().to_string();
        assert!(e.contains(&format!("{key}: ")) && e.contains(says), "{:?}: {e}", cfg.url);
        assert!(!e.contains("s3cret") && !source.target().contains("s3cret"), "{e}");
        assert_eq!(snapshot_error(&source), e);
        assert_eq!(cfg.validate().unwrap_err().key, key);
    };
    let url = |u: &str| PrometheusConfig::from_url(u);
    let q = "prometheus.queries.queue_depth";
    check(url("http://h:9090"), q, "is required");
    check(url("prometheus://h?in_flight=x"), q, "is required");
    check(url("prometheus://h?queue_depth="), "prometheus.url", "the URL's queue_depth is empty");
    check(config("http://h", &[("queue_depth", " ")]), q, "is empty");
    check(url("prometheus://h?queue_depth=a&queue_depth=b"), "prometheus.url", "names queue_depth twice");
    check(url("prometheus://h?queue_depht=a"), "prometheus.url", "unknown query \"queue_depht\" (known: queue_depth, in_flight");
    check(url("prometheus://h?queue_depth=50%"), "prometheus.url", "not followed by two hex digits");
    check(url("https://h?queue_depth=a"), "prometheus.url", "https is not supported");
    check(url("redis://h"), "prometheus.url", "the scheme \"redis\"");
    check(url("h:9090"), "prometheus.url", "is not a URL");
    check(url("http://h:9090?queue_depth=a"), "prometheus.url", "an http:// URL takes no query string");
    check(url("prometheus://admin:s3cret@h?queue_depth=a"), "prometheus.url", "carries credentials");
    check(url("prometheus://h:99999?queue_depth=a"), "prometheus.url", "bad port");
    check(url("prometheus://h?queue_depth=a#x"), "prometheus.url", "fragment");
    let mut cfg = config("http://h", &[("queue_depth", "q")]);
    cfg.timeout = Duration::ZERO;
    check(cfg, "prometheus.timeout", "above zero");
    let mut cfg = config("http://h", &[("queue_depth", "q")]);
    cfg.headers.insert("X-Evil".into(), "a\r\nHost: b".into());
    check(cfg, "prometheus.headers.X-Evil", "control character");
    let mut cfg = config("http://h", &[("queue_depth", "q")]);
    cfg.headers.insert("Bad Name".into(), "v".into());
    check(cfg, "prometheus.headers.Bad Name", "not a header name");
}

#[test]
fn the_config_reads_from_json_and_refuses_unknown_keys() {
    let cfg: PrometheusConfig = serde_json::from_str(
        r#"{"url": "http://prom:9090", "timeout": "2s", "queries": {"queue_depth": "sum(q)", "consumers": "count(up)"}}"#,
    )
    .unwrap();
    assert_eq!(cfg.timeout, Duration::from_secs(2));
    assert_eq!(cfg.queries.consumers.as_deref(), Some("count(up)"));
    cfg.validate().unwrap();
    assert_eq!(PrometheusConfig::from_url("http://x").timeout, Duration::from_secs(5));
    for bad in [
        r#"{"url": "http://prom", "querys": {}}"#,
        r#"{"url": "http://prom", "queries": {"depth": "q"}}"#,
        r#"{"queries": {"queue_depth": "q"}}"#,
    ] {
        assert!(serde_json::from_str::<PrometheusConfig>(bad).is_err(), "{bad}");
    }
    // What is serialized reads back the same.
    let text = serde_json::to_string(&cfg).unwrap();
    assert!(!text.contains("in_flight"), "{text}");
    assert_eq!(serde_json::from_str::<PrometheusConfig>(&text).unwrap(), cfg);
}
