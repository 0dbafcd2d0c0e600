//! The daemon's HTTP server (spec/observability.md).
//!
//! **Architecture invariant:** the server acts only through [`Control`],
//! which the runtime implements with the same executor, guards and journal
//! as the loop. The server itself owns no engine state.
//!
//! Bad requests get a 4xx with a JSON error body: unknown paths 404, wrong
//! methods 405, bodies over the limit 413 (refused as the limit is crossed,
//! never read whole), a missing or wrong token 401.

#![warn(missing_docs)]

mod listen;
pub mod metrics;
pub use steward_otlp as otlp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use steward_core::config::InvalidValue;

pub use listen::{connection_budget, raise_fd_limit, serve, serve_until, ConnectionLimits, Stopped, FD_RESERVE};
pub use metrics::Metrics;
pub use steward_core::control::{Component, Control, ControlError};

/// The `server:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where `steward serve` listens. Any address but loopback needs `token`. Default 127.0.0.1:8080.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token required on every endpoint but /health (env STEWARD_SERVER_TOKEN). Default none.
    #[serde(default)]
    pub token: Option<String>,
    /// Named bearer tokens, `{name: token}`: each is accepted like `token`,
    /// and the audit trail records its name as who asked (`http:NAME`) for
    /// POST /execute and /rollback. Default none.
    #[serde(default)]
    pub tokens: std::collections::BTreeMap<String, String>,
    /// Largest request body accepted, in bytes. Default 1048576.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// A client must send a request's headers within this, and an idle
    /// keep-alive connection its next request, or it is closed (slowloris).
    /// Default 10s.
    #[serde(default = "default_header_timeout", with = "steward_core::config::duration")]
    pub header_timeout: Duration,
    /// A whole request (body and answer) must be done within this, or it
    /// gets 408. Default 60s.
    #[serde(default = "default_request_timeout", with = "steward_core::config::duration")]
    pub request_timeout: Duration,
    /// Connections served at once; more are closed as they are accepted.
    /// Lowered to keep 256 file descriptors for the loop. Default 4096.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl ServerConfig {
    /// The options the server runs with.
    ///
    /// # Errors
    /// `listen` is not an address and port.
    pub fn options(&self) -> Result<ServerOptions, InvalidValue> {
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| InvalidValue { key: "server.listen".into(), message: format!("{:?} is not an address:port", self.listen) })?;
        Ok(ServerOptions {
            listen,
            token: self.token.clone(),
            tokens: self.tokens.iter().map(|(n, t)| (n.clone(), t.clone())).collect(),
            max_body_bytes: self.max_body_bytes,
            request_timeout: self.request_timeout,
            limits: ConnectionLimits { header_timeout: self.header_timeout, max_connections: self.max_connections },
        })
    }

    /// Checks the section: an address, a token where the address is not
    /// loopback, a body limit above zero.
    ///
    /// # Errors
    /// The first bad value, naming its key.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(InvalidValue {
                key: "server.token".into(),
                message: "is empty or only white space: that is no token (leave it unset for none)".into(),
            });
        }
        for (name, token) in &self.tokens {
            let key = format!("server.tokens.{name}");
            if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
                return Err(InvalidValue { key, message: "a token's name is 1 to 64 letters, digits, - _ . or @".into() });
            }
            if token.trim().is_empty() {
                return Err(InvalidValue { key, message: "is empty or only white space: that is no token".into() });
            }
            if self.token.as_deref() == Some(token.as_str()) || self.tokens.iter().any(|(n, t)| n != name && t == token) {
                return Err(InvalidValue { key, message: "is the same token as another: each identity needs its own".into() });
            }
        }
        let opts = self.options()?;
        check_exposure(&opts).map_err(|message| InvalidValue { key: "server.token".into(), message })?;
        if self.max_body_bytes == 0 {
            return Err(InvalidValue { key: "server.max_body_bytes".into(), message: "must be above zero".into() });
        }
        for (key, d) in [("server.header_timeout", self.header_timeout), ("server.request_timeout", self.request_timeout)] {
            if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&d) {
                return Err(InvalidValue { key: key.into(), message: format!("{d:?} must be between 100ms and 1h") });
            }
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(InvalidValue {
                key: "server.max_connections".into(),
                message: format!("{} must be between 1 and 1000000", self.max_connections),
            });
        }
        Ok(())
    }
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_connections() -> usize {
    4096
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    1 << 20
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            token: None,
            tokens: std::collections::BTreeMap::new(),
            max_body_bytes: default_max_body(),
            header_timeout: default_header_timeout(),
            request_timeout: default_request_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

/// How the server listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Bearer token required on every endpoint but `/health`, when set.
    pub token: Option<String>,
    /// Named tokens, accepted like `token`; the name is who asked.
    pub tokens: Vec<(String, String)>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A whole request must be done within this, or it gets 408.
    pub request_timeout: Duration,
    /// Header deadline and connection cap.
    pub limits: ConnectionLimits,
}

/// A listen address that is not loopback needs a token.
///
/// # Errors
/// A message saying so.
pub fn check_exposure(opts: &ServerOptions) -> Result<(), String> {
    if !opts.listen.ip().is_loopback() && opts.token.as_deref().is_none_or(|t| t.trim().is_empty()) && opts.tokens.is_empty() {
        return Err(format!("listening on {} (not loopback) requires server.token (or server.tokens)", opts.listen));
    }
    Ok(())
}

#[derive(Clone)]
struct App {
    control: Arc<dyn Control>,
    metrics: Arc<Metrics>,
    /// Set when the daemon stops: open event streams end.
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Event streams open now, and the most allowed (the rest of the
    /// connections stay for /health and the API).
    streams: Arc<std::sync::atomic::AtomicUsize>,
    max_streams: usize,
    /// (identity, token): `token` for the unnamed one.
    tokens: Arc<Vec<(String, String)>>,
}

/// Who sent a request, for the audit trail: `http:NAME` by the token's
/// name, `http:token` for the unnamed token, `http:anonymous` without one.
#[derive(Clone)]
struct Caller(Arc<str>);

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"status": status.as_u16(), "message": message.into()}}))).into_response()
}

/// A control error as its HTTP status and a JSON body.
fn control_error(e: ControlError) -> Response {
    let status = match &e {
        ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        ControlError::Refused(_) => StatusCode::CONFLICT,
        ControlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// The router with every endpoint.
pub fn router(control: Arc<dyn Control>, metrics: Arc<Metrics>, opts: &ServerOptions) -> Router {
    router_until(control, metrics, opts, Arc::new(std::sync::atomic::AtomicBool::new(false)))
}

/// [`router`], whose `/events` streams end when `stop` is set (pass the
/// flag given to [`serve_until`], so a stop is not held up by a dashboard).
pub fn router_until(
    control: Arc<dyn Control>,
    metrics: Arc<Metrics>,
    opts: &ServerOptions,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Router {
    let mut tokens: Vec<(String, String)> =
        opts.token.iter().filter(|t| !t.trim().is_empty()).map(|t| ("token".to_owned(), t.clone())).collect();
    tokens.extend(opts.tokens.iter().filter(|(_, t)| !t.trim().is_empty()).cloned());
    let max_streams = (opts.limits.max_connections / 4).clamp(1, 64);
    let app =
        App { control, metrics, stop, streams: Arc::new(std::sync::atomic::AtomicUsize::new(0)), max_streams, tokens: Arc::new(tokens) };
    Router::new()
        .route("/", get(dashboard))
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(prometheus))
        .route("/tasks", get(tasks))
        .route("/decisions", get(decisions))
        .route("/history", get(history))
        .route("/incidents", get(incidents))
        .route("/events", get(events))
        .route("/execute", post(execute))
        .route("/rollback/{id}", post(rollback))
        .route("/v1/traces", post(ingest_traces))
        .route("/v1/metrics", post(ingest_metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint") })
        .layer(middleware::from_fn_with_state(app.clone(), authorize))
        .layer(DefaultBodyLimit::max(opts.max_body_bytes))
        .layer(middleware::from_fn_with_state(opts.request_timeout, deadline))
        .with_state(app)
}

/// A request that takes longer than its deadline (a client that trickles
/// its body) gets 408 and its connection back.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(StatusCode::REQUEST_TIMEOUT, format!("the request took longer than {} s", limit.as_secs_f64())),
    }
}

/// Whether a `Host` header names this machine by address or `localhost`
/// (a DNS name pointing here could be an attacker's, rebound to 127.0.0.1).
fn host_is_local(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host })
    };
    name.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost")
}

async fn authorize(State(app): State<App>, headers: HeaderMap, mut request: Request, next: Next) -> Response {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    // A web page elsewhere must not make the browser act here: a change
    // from another origin is refused (what a browser sends cross-site
    // without a preflight would otherwise reach /execute).
    if request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD {
        let site = header(header::HeaderName::from_static("sec-fetch-site"));
        let origin = header(header::ORIGIN);
        let host = header(header::HOST);
        let same = origin.is_empty() || origin.split_once("://").is_some_and(|(_, o)| o.eq_ignore_ascii_case(&host));
        if matches!(site.as_str(), "cross-site" | "same-site") || !same {
            return error(StatusCode::FORBIDDEN, "a request from another origin cannot change anything here");
        }
    }
    // Without a token, only requests addressed to this machine by address
    // (DNS rebinding would otherwise let any page read and drive the daemon).
    let host = header(header::HOST);
    if app.tokens.is_empty() && !host.is_empty() && !host_is_local(&host) {
        return error(
            StatusCode::FORBIDDEN,
            "without a token the daemon answers only requests to its address or localhost (set server.token to be reached by name)",
        );
    }
    let mut caller = "http:anonymous".to_owned();
    // /health for probes, / for the dashboard page itself (static: it asks
    // for the token before it reads anything).
    if !app.tokens.is_empty() && !matches!(request.uri().path(), "/health" | "/") {
        // The scheme name is case-insensitive (RFC 7235).
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        // Compare every token without an early exit, so timing reveals
        // neither a prefix nor which token matched.
        let mut matched: Option<&str> = None;
        if let Some(g) = given {
            for (name, token) in app.tokens.iter() {
                let same = g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
                if same && matched.is_none() {
                    matched = Some(name);
                }
            }
        }
        let Some(name) = matched else {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer realm=\"steward\""));
            return r;
        };
        caller = format!("http:{name}");
    }
    request.extensions_mut().insert(Caller(Arc::from(caller)));
    next.run(request).await
}

async fn health(State(app): State<App>) -> Response {
    let components = app.control.health();
    let failing: Vec<&Component> = components.iter().filter(|c| c.status == "failing").collect();
    let mut body = if failing.is_empty() {
        json!({"status": "healthy", "components": components})
    } else {
        json!({"status": "unhealthy", "failing": failing, "components": components})
    };
    // A standby is healthy: it answers 200 and says it stands by.
    if let Some(role) = app.control.role() {
        body["role"] = json!(role);
    }
    let code = if failing.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn status(State(app): State<App>) -> Json<Value> {
    Json(app.control.status())
}

#[derive(Deserialize)]
struct MetricsQuery {
    format: Option<String>,
}

/// A query or body the extractors refused, as a JSON error with their status.
fn rejected(status: StatusCode, text: String) -> Response {
    error(status, text)
}

async fn prometheus(State(app): State<App>, q: Result<Query<MetricsQuery>, QueryRejection>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return rejected(e.status(), e.body_text()),
    };
    match q.format.as_deref() {
        None | Some("prometheus" | "text") => {
            // prometheus-client writes OpenMetrics text (`_total` samples of
            // TYPE-named counters, `# EOF`): say so, so parsers read it right.
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.encode()).into_response()
        }
        Some("json") => Json(app.control.status().get("metrics").cloned().unwrap_or(Value::Null)).into_response(),
        Some(other) => error(StatusCode::BAD_REQUEST, format!("unknown format {other:?} (prometheus or json)")),
    }
}

async fn tasks(State(app): State<App>) -> Json<Value> {
    Json(app.control.tasks())
}

#[derive(Deserialize)]
struct DecisionsQuery {
    limit: Option<String>,
}

async fn decisions(State(app): State<App>, q: Result<Query<DecisionsQuery>, QueryRejection>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return control_error(ControlError::BadRequest(e.body_text())),
    };
    let limit = match q.limit.as_deref() {
        None => 20,
        Some(t) => match t.parse::<usize>().ok().filter(|n| (1..=1000).contains(n)) {
            Some(n) => n,
            None => return control_error(ControlError::BadRequest(format!("limit {t:?} must be 1 to 1000"))),
        },
    };
    let control = app.control.clone();
    answer(tokio::task::spawn_blocking(move || control.decisions(limit)).await)
}

/// The answer of a control call run on the blocking pool.
fn answer(joined: Result<Result<Value, ControlError>, tokio::task::JoinError>) -> Response {
    match joined {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => control_error(e),
        Err(e) => control_error(ControlError::Internal(e.to_string())),
    }
}

async fn execute(State(app): State<App>, caller: Option<Extension<Caller>>, body: Result<Bytes, BytesRejection>) -> Response {
    if let Err(e) = body {
        return rejected(e.status(), e.body_text());
    }
    let control = app.control.clone();
    let caller = caller.map_or_else(|| Arc::from("http:anonymous"), |Extension(c)| c.0);
    answer(tokio::task::spawn_blocking(move || control.execute(&caller)).await)
}

async fn rollback(
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = body {
        return rejected(e.status(), e.body_text());
    }
    let control = app.control.clone();
    let caller = caller.map_or_else(|| Arc::from("http:anonymous"), |Extension(c)| c.0);
    answer(tokio::task::spawn_blocking(move || control.rollback(&id, &caller)).await)
}

async fn ingest_traces(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match body {
        Ok(b) => ingest(&app, &headers, &b, true),
        Err(e) => rejected(e.status(), e.body_text()),
    }
}

async fn ingest_metrics(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match body {
        Ok(b) => ingest(&app, &headers, &b, false),
        Err(e) => rejected(e.status(), e.body_text()),
    }
}

/// OTLP/HTTP ingest: protobuf (`application/x-protobuf`) or JSON
/// (`application/json`); anything else is 415, a malformed body 400.
fn ingest(app: &App, headers: &HeaderMap, body: &[u8], traces: bool) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/x-protobuf");
    let json = if content_type.starts_with("application/json") {
        true
    } else if content_type.starts_with("application/x-protobuf") || content_type.starts_with("application/protobuf") {
        false
    } else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {content_type:?}: OTLP/HTTP is application/x-protobuf or application/json"),
        );
    };
    match otlp::count(body, json, traces) {
        Ok(n) => {
            app.control.ingest(n);
            // An empty partial_success is a full success in OTLP.
            (StatusCode::OK, Json(json!({"partialSuccess": {}}))).into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn dashboard() -> Response {
    // Its own policy: the page's inline script and style, nothing from elsewhere.
    (
        [
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(DASHBOARD),
    )
        .into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    window: Option<String>,
}

/// `/history?window=15m|1h|6h|24h`: the journal's cycles, decisions and
/// the arrival forecast over that window, for the dashboard's charts.
async fn history(State(app): State<App>, q: Result<Query<HistoryQuery>, QueryRejection>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return control_error(ControlError::BadRequest(e.body_text())),
    };
    let window_ms: i64 = match q.window.as_deref().unwrap_or("1h") {
        "15m" => 15 * 60_000,
        "1h" => 3_600_000,
        "6h" => 6 * 3_600_000,
        "24h" => 24 * 3_600_000,
        other => return control_error(ControlError::BadRequest(format!("window {other:?}: one of 15m, 1h, 6h, 24h"))),
    };
    let control = app.control.clone();
    answer(tokio::task::spawn_blocking(move || control.history(window_ms)).await)
}

async fn incidents(State(app): State<App>) -> Response {
    let control = app.control.clone();
    answer(tokio::task::spawn_blocking(move || Ok(control.incidents())).await)
}

/// `/events`: Server-Sent Events, a `status` event at once and after every
/// cycle, a comment every 15 s to keep proxies from closing it. Ends when
/// the daemon stops, or after an hour (the client reconnects).
async fn events(State(app): State<App>) -> Response {
    struct Feed {
        rx: tokio::sync::broadcast::Receiver<()>,
        app: App,
        first: bool,
        started: std::time::Instant,
    }
    impl Drop for Feed {
        fn drop(&mut self) {
            self.app.streams.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    if app.streams.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= app.max_streams {
        app.streams.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} event streams are open, the most allowed; poll /status instead", app.max_streams),
        );
    }
    let feed = Feed { rx: app.metrics.subscribe(), app, first: true, started: std::time::Instant::now() };
    let stream = futures_util::stream::unfold(feed, |mut f| async move {
        let status = |app: &App| {
            let control = app.control.clone();
            async move {
                let v = tokio::task::spawn_blocking(move || control.status()).await.unwrap_or(Value::Null);
                Ok::<String, std::io::Error>(format!("event: status\ndata: {v}\n\n"))
            }
        };
        if f.first {
            f.first = false;
            let e = status(&f.app).await;
            return Some((e, f));
        }
        let mut quiet = 0u32;
        loop {
            if f.app.stop.load(std::sync::atomic::Ordering::SeqCst) || f.started.elapsed() > Duration::from_secs(3600) {
                return None;
            }
            match tokio::time::timeout(Duration::from_secs(1), f.rx.recv()).await {
                Ok(Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    let e = status(&f.app).await;
                    return Some((e, f));
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                Err(_) => {
                    quiet += 1;
                    if quiet >= 15 {
                        return Some((Ok(": keep-alive\n\n".to_owned()), f));
                    }
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// The dashboard: one page, its script, style and charts inline (no CDN).
const DASHBOARD: &str = include_str!("dashboard.html");

#[cfg(test)]
mod tests;
