use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

struct Fake {
    failing: AtomicBool,
    executed: AtomicUsize,
    ingested: std::sync::atomic::AtomicU64,
    callers: std::sync::Mutex<Vec<String>>,
}

impl Control for Fake {
    fn execute(&self, caller: &str) -> Result<Value, ControlError> {
        self.executed.fetch_add(1, Ordering::SeqCst);
        self.callers.lock().unwrap().push(caller.to_owned());
        Ok(json!({"cycle_id": "c1", "executed": []}))
    }
    fn rollback(&self, id: &str, caller: &str) -> Result<Value, ControlError> {
        self.callers.lock().unwrap().push(caller.to_owned());
        match id {
            "known" => Err(ControlError::Refused("the fleet has changed since".into())),
            _ => Err(ControlError::NotFound(format!("no decision {id}"))),
        }
    }
    fn status(&self) -> Value {
        json!({"metrics": {"health_score": 0.5}, "assessment": {}})
    }
    fn decisions(&self, limit: usize) -> Result<Value, ControlError> {
        Ok(json!({"decisions": [], "limit": limit}))
    }
    fn tasks(&self) -> Value {
        json!({"tasks": []})
    }
    fn ingest(&self, records: u64) {
        self.ingested.fetch_add(records, Ordering::SeqCst);
    }
    fn health(&self) -> Vec<Component> {
        let failing = self.failing.load(Ordering::SeqCst);
        vec![
            Component { name: "loop".into(), status: if failing { "failing" } else { "ok" }.into(), message: "cycling".into() },
            Component { name: "queue".into(), status: "ok".into(), message: "42 pending (not a failure)".into() },
        ]
    }
}

/// Starts a server on a free loopback port; returns its address and the fake.
fn start(token: Option<&str>) -> (SocketAddr, Arc<Fake>, tokio::runtime::Runtime) {
    start_with(token, &[])
}

fn start_with(token: Option<&str>, named: &[(&str, &str)]) -> (SocketAddr, Arc<Fake>, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fake = Arc::new(Fake {
        failing: AtomicBool::new(false),
        executed: AtomicUsize::new(0),
        ingested: std::sync::atomic::AtomicU64::new(0),
        callers: std::sync::Mutex::new(Vec::new()),
    });
    let opts = ServerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: token.map(Into::into),
        tokens: named.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect(),
        max_body_bytes: 64 * 1024,
        request_timeout: std::time::Duration::from_secs(60),
        limits: ConnectionLimits::default(),
    };
    let listener = rt.block_on(tokio::net::TcpListener::bind(opts.listen)).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(fake.clone(), Arc::new(Metrics::new()), &opts);
    rt.spawn(serve(listener, app, std::future::pending()));
    (addr, fake, rt)
}

/// Sends one raw HTTP/1.1 request; returns (status, body).
fn send(addr: SocketAddr, request: &str, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    send(addr, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"), b"")
}

fn post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    send(addr, &format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()), body)
}

fn is_json_error(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| v["error"]["message"].is_string())
}

#[test]
fn health_is_503_only_for_a_failing_component() {
    let (addr, fake, _rt) = start(None);
    let (code, body) = get(addr, "/health", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], "healthy");
    fake.failing.store(true, Ordering::SeqCst);
    let (code, body) = get(addr, "/health", None);
    assert_eq!(code, 503);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["failing"][0]["name"], "loop");
}

#[test]
fn hostile_requests_get_json_4xx_and_the_server_keeps_serving() {
    let (addr, fake, _rt) = start(None);
    let (code, body) = get(addr, "/no/such/thing", None);
    assert_eq!(code, 404);
    assert!(is_json_error(&body), "{body}");
    let (code, body) = post(addr, "/health", b"");
    assert_eq!(code, 405);
    assert!(is_json_error(&body), "{body}");
    let (code, _) = get(addr, "/execute", None);
    assert_eq!(code, 405);
    // 1 MiB against a 64 KiB limit: refused, and the action never ran.
    let (code, body) = post(addr, "/execute", &vec![b'x'; 1 << 20]);
    assert_eq!(code, 413, "{body}");
    assert!(is_json_error(&body), "413 is JSON too: {body}");
    let (code, body) = get(addr, "/decisions?limit=1&limit=2", None);
    assert_eq!(code, 400);
    assert!(is_json_error(&body), "{body}");
    assert_eq!(fake.executed.load(Ordering::SeqCst), 0);
    let (code, body) = get(addr, "/decisions?limit=abc", None);
    assert_eq!(code, 400);
    assert!(is_json_error(&body));
    let (code, _) = send(addr, "GARBAGE\r\n\r\n", b"");
    assert!(code == 400 || code == 0, "{code}");
    // Still serving.
    assert_eq!(get(addr, "/health", None).0, 200);
    let (code, body) = post(addr, "/execute", b"");
    assert_eq!(code, 200, "{body}");
    assert_eq!(fake.executed.load(Ordering::SeqCst), 1);
    assert_eq!(post(addr, "/rollback/nope", b"").0, 404);
    assert_eq!(post(addr, "/rollback/known", b"").0, 409);
}

#[test]
fn a_token_guards_everything_but_health_and_the_page() {
    let (addr, _fake, _rt) = start(Some("s3cret"));
    assert_eq!(get(addr, "/health", None).0, 200);
    // The dashboard page holds no data: it asks for the token itself.
    let (code, page) = get(addr, "/", None);
    assert_eq!(code, 200);
    assert!(!page.contains("s3cret"));
    for path in ["/events", "/nowhere"] {
        assert_eq!(get(addr, path, None).0, 401, "{path}");
    }
    for path in ["/status", "/metrics", "/decisions", "/tasks", "/history", "/incidents"] {
        let (code, body) = get(addr, path, None);
        assert_eq!(code, 401, "{path}");
        assert!(is_json_error(&body));
        assert_eq!(get(addr, path, Some("wrong")).0, 401, "{path}");
        assert_eq!(get(addr, path, Some("s3cret")).0, 200, "{path}");
    }
    // The scheme is case-insensitive.
    let (code, _) = send(addr, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: bearer s3cret\r\nConnection: close\r\n\r\n", b"");
    assert_eq!(code, 200);
}

#[test]
fn metrics_are_prometheus_text_and_json_on_request() {
    let (addr, _fake, _rt) = start(None);
    let (code, body) = get(addr, "/metrics", None);
    assert_eq!(code, 200);
    assert!(body.contains("# TYPE steward_health_score gauge"), "{body}");
    let (code, body) = get(addr, "/metrics?format=json", None);
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["health_score"], 0.5);
    assert_eq!(get(addr, "/metrics?format=xml", None).0, 400);
}

#[test]
fn exposure_needs_a_token() {
    let o = |listen: &str, token: Option<&str>| ServerOptions {
        listen: listen.parse().unwrap(),
        token: token.map(Into::into),
        tokens: vec![],
        max_body_bytes: 1,
        request_timeout: std::time::Duration::from_secs(1),
        limits: ConnectionLimits::default(),
    };
    assert!(check_exposure(&o("127.0.0.1:8080", None)).is_ok());
    assert!(check_exposure(&o("[::1]:8080", None)).is_ok());
    assert!(check_exposure(&o("0.0.0.0:8080", None)).is_err());
    assert!(check_exposure(&o("0.0.0.0:8080", Some(""))).is_err());
    assert!(check_exposure(&o("0.0.0.0:8080", Some("   "))).is_err(), "a token of spaces is no token");
    assert!(check_exposure(&o("0.0.0.0:8080", Some("t"))).is_ok());
}

fn post_typed(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    send(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
        body,
    )
}

#[test]
fn otlp_ingest_counts_spans_and_rejects_garbage() {
    use prost::Message as _;
    let (addr, fake, _rt) = start(None);
    let span = |name: &str| otlp::Span { name: name.into(), trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() };
    let req = otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: None,
            scope_spans: vec![otlp::ScopeSpans { scope: None, spans: vec![span("a"), span("b"), span("c")] }],
        }],
    };
    let (code, body) = post_typed(addr, "/v1/traces", "application/x-protobuf", &req.encode_to_vec());
    assert_eq!(code, 200, "{body}");
    let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"},{"name":"y"}]}]}]}"#;
    assert_eq!(post_typed(addr, "/v1/traces", "application/json", json).0, 200);
    assert_eq!(
        post_typed(addr, "/v1/metrics", "application/json", br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m"}]}]}]}"#).0,
        200
    );
    assert_eq!(fake.ingested.load(Ordering::SeqCst), 6);
    // Malformed OTLP: 400 with a JSON error; an unknown media type: 415.
    let (code, body) = post_typed(addr, "/v1/traces", "application/x-protobuf", &[0xff, 0xff, 0xff, 0x0f, 0x01]);
    assert_eq!(code, 400, "{body}");
    assert!(is_json_error(&body));
    assert_eq!(post_typed(addr, "/v1/traces", "application/json", b"{not json").0, 400);
    assert_eq!(post_typed(addr, "/v1/traces", "text/plain", b"hello").0, 415);
    assert_eq!(get(addr, "/health", None).0, 200, "still serving");
}

/// Regression (issue 9): a token of only spaces was accepted as a token.
#[test]
fn a_blank_token_is_refused_by_the_config() {
    let cfg = ServerConfig { token: Some("   ".into()), ..ServerConfig::default() };
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.key, "server.token");
    assert!(ServerConfig { token: Some("s3cret".into()), ..ServerConfig::default() }.validate().is_ok());
}

/// Starts `router` behind `serve_until` with the given limits.
fn start_limited(limits: ConnectionLimits) -> (SocketAddr, Arc<std::sync::atomic::AtomicBool>, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake {
        failing: AtomicBool::new(false),
        executed: AtomicUsize::new(0),
        ingested: std::sync::atomic::AtomicU64::new(0),
        callers: std::sync::Mutex::new(Vec::new()),
    });
    let opts = ServerOptions {
        listen: addr,
        token: None,
        tokens: vec![],
        max_body_bytes: 1024,
        request_timeout: std::time::Duration::from_secs(60),
        limits,
    };
    let app = router(fake, Arc::new(Metrics::new()), &opts);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    rt.spawn(serve_until(listener, app, stop.clone(), std::time::Duration::from_secs(1), limits));
    (addr, stop, rt)
}

/// Whether the server closed this connection within `within` (reads EOF or a reset).
fn closed_within(stream: &mut std::net::TcpStream, within: std::time::Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

/// Regression (issue 9): a client that sends half its headers and goes
/// silent (slowloris) was kept forever; so was an idle keep-alive
/// connection. Both are closed after the header timeout.
#[test]
fn half_sent_headers_and_idle_connections_are_closed() {
    use std::io::Write;
    let limits = ConnectionLimits { header_timeout: std::time::Duration::from_millis(300), max_connections: 64 };
    let (addr, _stop, _rt) = start_limited(limits);
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    assert!(closed_within(&mut slow, std::time::Duration::from_secs(10)), "a half-sent request is closed");
    assert!(closed_within(&mut idle, std::time::Duration::from_secs(10)), "an idle connection is closed");
    // A client that sends its request in time is answered.
    assert_eq!(get(addr, "/health", None).0, 200);
}

/// Regression (issue 9): connections beyond the cap are closed as they
/// come, so strangers cannot take every file descriptor; once they leave,
/// the server serves again.
#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let limits = ConnectionLimits { header_timeout: std::time::Duration::from_secs(30), max_connections: 16 };
    let (addr, _stop, _rt) = start_limited(limits);
    let held: Vec<std::net::TcpStream> = (0..16).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut extra = std::net::TcpStream::connect(addr).unwrap();
    assert!(closed_within(&mut extra, std::time::Duration::from_secs(10)), "the 17th connection is closed");
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(get(addr, "/health", None).0, 200, "served again once the others left");
}

#[test]
fn named_tokens_say_who_asked() {
    let (addr, fake, _rt) = start_with(Some("plain-token"), &[("ops-team", "ops-secret"), ("ci", "ci-secret")]);
    let post = |token: &str, path: &str| {
        send(
            addr,
            &format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            b"",
        )
        .0
    };
    assert_eq!(post("ops-secret", "/execute"), 200);
    assert_eq!(post("plain-token", "/execute"), 200);
    assert_eq!(post("ci-secret", "/rollback/known"), 409);
    assert_eq!(post("ops-secre", "/execute"), 401, "a prefix of a token is no token");
    assert_eq!(post("wrong", "/rollback/known"), 401);
    assert_eq!(*fake.callers.lock().unwrap(), ["http:ops-team", "http:token", "http:ci"]);
    // Without tokens, on loopback: anonymous.
    let (addr, fake, _rt2) = start(None);
    let (code, _) = send(addr, "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", b"");
    assert_eq!(code, 200);
    assert_eq!(*fake.callers.lock().unwrap(), ["http:anonymous"]);
}

#[test]
fn named_tokens_are_checked_at_load() {
    let cfg = |tokens: &[(&str, &str)]| ServerConfig {
        tokens: tokens.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect(),
        ..ServerConfig::default()
    };
    assert!(cfg(&[("ops", "a-secret")]).validate().is_ok());
    for (bad, needle) in
        [(cfg(&[("ops", " ")]), "empty"), (cfg(&[("o p", "x1")]), "name"), (cfg(&[("a", "same"), ("b", "same")]), "same token")]
    {
        let e = bad.validate().unwrap_err();
        assert!(e.key.starts_with("server.tokens.") && e.message.contains(needle), "{e:?}");
    }
    // A named token is enough to listen beyond loopback.
    let exposed = ServerConfig { listen: "0.0.0.0:8080".into(), ..cfg(&[("ops", "a-secret")]) };
    assert!(exposed.validate().is_ok());
}

#[test]
fn no_other_origin_can_change_anything_and_no_name_can_reach_a_tokenless_daemon() {
    let (addr, fake, _rt) = start(None);
    // What a browser sends cross-site without a preflight.
    let cross = "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(send(addr, cross, b"").0, 403);
    let other_origin =
        "POST /rollback/known HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(send(addr, other_origin, b"").0, 403);
    assert_eq!(fake.executed.load(Ordering::SeqCst), 0, "nothing ran");
    // The page's own requests (same origin) pass.
    let same = format!("POST /execute HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(send(addr, &same, b"").0, 200);
    // DNS rebinding: a name that resolves here is refused without a token.
    assert_eq!(send(addr, "GET /status HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n", b"").0, 403);
    for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "10.1.2.3"] {
        let r = format!("GET /status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(send(addr, &r, b"").0, 200, "{host}");
    }
    // With a token, a name is fine (the token is the guard).
    let (addr, _fake, _rt2) = start(Some("tok"));
    let r = "GET /status HTTP/1.1\r\nHost: steward.internal\r\nAuthorization: Bearer tok\r\nConnection: close\r\n\r\n";
    assert_eq!(send(addr, r, b"").0, 200);
}

#[test]
fn event_streams_cannot_take_every_connection() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fake = Arc::new(Fake {
        failing: AtomicBool::new(false),
        executed: AtomicUsize::new(0),
        ingested: std::sync::atomic::AtomicU64::new(0),
        callers: std::sync::Mutex::new(Vec::new()),
    });
    let limits = ConnectionLimits { max_connections: 8, ..ConnectionLimits::default() };
    let opts = ServerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: None,
        tokens: vec![],
        max_body_bytes: 1024,
        request_timeout: std::time::Duration::from_secs(60),
        limits,
    };
    let listener = rt.block_on(tokio::net::TcpListener::bind(opts.listen)).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(serve(listener, router(fake, Arc::new(Metrics::new()), &opts), std::future::pending()));
    // A quarter of the connections may stream: 2 here.
    let open = |n: usize| -> Vec<std::net::TcpStream> {
        (0..n)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
                let mut buf = [0u8; 12];
                s.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"HTTP/1.1 200", "a stream opens");
                s
            })
            .collect()
    };
    let streams = open(2);
    let (code, _) = send(addr, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", b"");
    assert_eq!(code, 503, "a third stream is refused");
    assert_eq!(get(addr, "/health", None).0, 200, "/health still answers");
    drop(streams);
    // Closed streams give their places back (the server notices within a second).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let again = open(1);
    drop(again);
}
