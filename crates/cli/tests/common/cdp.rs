//! A small Chrome DevTools Protocol client for tests that drive a real
//! browser: Debian's headless `chromium` over one websocket (flattened
//! sessions, one per tab), synchronous, every call bounded by 60 s.
//!
//! ```ignore
//! let browser = cdp::Browser::launch(1200, 800);
//! let page = browser.open("http://127.0.0.1:8080/");
//! assert!(page.wait_for("document.title == 'ready'", 10));
//! assert_eq!(page.eval("1 + 2"), 3);
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long one protocol call (or one wait for a load) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long chromium may take to write `DevToolsActivePort`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Headless Chromium from Debian's `chromium` package (scripts/test installs it).
pub fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
        })
        .expect("chromium is not installed (looked for chromium, chromium-browser, google-chrome on PATH): scripts/test installs Debian's chromium")
}

/// A headless chromium and the websocket to its browser target. Dropping it
/// closes the browser, kills what is left of its process group and removes
/// its profile directory.
pub struct Browser {
    conn: Arc<Mutex<Conn>>,
    child: Child,
    // Declared last: removed after chromium is gone.
    tmp: tempfile::TempDir,
}

/// One tab, attached through a flattened session on the browser's socket.
pub struct Page {
    conn: Arc<Mutex<Conn>>,
    session: String,
    target: String,
}

/// A response the page received (`Network.responseReceived`); header names
/// are lower-cased, repeated headers are joined by `\n` as chromium reports them.
#[derive(Clone, Debug)]
pub struct Response {
    pub url: String,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
}

impl Browser {
    /// Starts headless chromium with a fresh profile and a `width`×`height`
    /// window, waits up to 30 s for its DevTools port and connects to it.
    pub fn launch(width: u32, height: u32) -> Browser {
        use std::os::unix::process::CommandExt;
        let tmp = tempfile::tempdir().unwrap();
        let profile = tmp.path().join("profile");
        let log = tmp.path().join("chromium.log");
        let mut child = Command::new(chromium())
            .args([
                "--headless=new",
                // Root (tests and CI) cannot use chromium's sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
                "--password-store=basic",
                "--use-mock-keychain",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            // Its own process group, so Drop can end the renderers too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromium ({e}): scripts/test installs Debian's chromium"));

        let start = Instant::now();
        let port_file = profile.join("DevToolsActivePort");
        let (port, path) = loop {
            // Written as "PORT\n/devtools/browser/UUID"; wait for both lines.
            if let Some((port, path)) = fs::read_to_string(&port_file).ok().and_then(|s| {
                let mut lines = s.lines();
                let port = lines.next()?.trim().parse::<u16>().ok()?;
                let path = lines.next()?.trim().to_owned();
                path.starts_with('/').then_some((port, path))
            }) {
                break (port, path);
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || start.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                let tail = fs::read_to_string(&log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                match exited {
                    Some(status) => panic!("chromium exited ({status}) before opening its DevTools port; its stderr ends:\n{tail}"),
                    None => panic!("chromium wrote no {} in {START_TIMEOUT:?}; its stderr ends:\n{tail}", port_file.display()),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let conn = Conn::connect(port, &path);
        Browser { conn: Arc::new(Mutex::new(conn)), child, tmp }
    }

    /// The browser's profile directory (`--user-data-dir`).
    pub fn profile_dir(&self) -> PathBuf {
        self.tmp.path().join("profile")
    }

    /// Opens a new tab on `url` and waits for its load event. Network and
    /// lifecycle events are enabled before it navigates, so `requests()`
    /// holds every request of the page, the document's own first.
    pub fn open(&self, url: &str) -> Page {
        let (target, session) = {
            let mut conn = lock(&self.conn);
            let created = conn.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
            let target = created["targetId"].as_str().expect("Target.createTarget gave no targetId").to_owned();
            let attached = conn.call(None, "Target.attachToTarget", json!({ "targetId": target, "flatten": true }));
            let session = attached["sessionId"].as_str().expect("Target.attachToTarget gave no sessionId").to_owned();
            conn.sessions.insert(session.clone(), Tab::default());
            for method in ["Page.enable", "Network.enable"] {
                conn.call(Some(&session), method, json!({}));
            }
            conn.call(Some(&session), "Page.setLifecycleEventsEnabled", json!({ "enabled": true }));
            let tree = conn.call(Some(&session), "Page.getFrameTree", json!({}));
            let frame = tree["frameTree"]["frame"]["id"].as_str().expect("Page.getFrameTree gave no main frame").to_owned();
            conn.sessions.get_mut(&session).unwrap().main_frame = frame;
            (target, session)
        };
        let page = Page { conn: self.conn.clone(), session, target };
        page.goto(url);
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask politely (it flushes the profile), then make sure: the whole group.
        lock(&self.conn).send_only(None, "Browser.close", json!({}));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on the process group chromium leads (process_group(0) at spawn).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Page {
    /// `Runtime.evaluate` with awaitPromise and returnByValue: the value
    /// (`Null` for `undefined`). Panics with the exception text if it threw.
    pub fn eval(&self, js: &str) -> Value {
        self.try_eval(js).unwrap_or_else(|e| panic!("script threw: {e}\nscript: {js}"))
    }

    /// Like `eval`, but an exception is returned as its text.
    pub fn try_eval(&self, js: &str) -> Result<Value, String> {
        let params = json!({ "expression": js, "awaitPromise": true, "returnByValue": true, "userGesture": true });
        let answer = self.call("Runtime.evaluate", params);
        if let Some(details) = answer.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["exception"]["value"].as_str())
                .or_else(|| details["text"].as_str())
                .unwrap_or("an exception");
            return Err(text.to_owned());
        }
        Ok(answer["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Polls `js` (a boolean expression) every 100 ms until it is `true` or
    /// `secs` have passed; whether it became true. A throw counts as false.
    pub fn wait_for(&self, js: &str, secs: u64) -> bool {
        let start = Instant::now();
        loop {
            if self.try_eval(js) == Ok(Value::Bool(true)) {
                return true;
            }
            if start.elapsed() >= Duration::from_secs(secs) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub fn color_scheme(&self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.call("Emulation.setEmulatedMedia", json!({ "features": [{ "name": "prefers-color-scheme", "value": value }] }));
    }

    /// Emulates a `width`×`height` desktop viewport at device scale factor 1.
    pub fn viewport(&self, width: u32, height: u32) {
        let params = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false });
        self.call("Emulation.setDeviceMetricsOverride", params);
    }

    /// A PNG of the viewport, written to `path`; its bytes.
    pub fn screenshot(&self, path: &Path) -> Vec<u8> {
        let answer = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let data = answer["data"].as_str().expect("Page.captureScreenshot gave no data");
        let png = base64_decode(data).unwrap_or_else(|e| panic!("Page.captureScreenshot: {e}"));
        fs::write(path, &png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        png
    }

    /// Reloads the page and waits for the new document's load event.
    pub fn reload(&self) {
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut conn = lock(&self.conn);
        let before: HashSet<String> = conn.tab(&self.session).loads.iter().cloned().collect();
        conn.call(Some(&self.session), "Page.reload", json!({ "ignoreCache": true }));
        conn.wait_until(deadline, "Page.reload's load event", |conn| conn.tab(&self.session).loads.iter().any(|l| !before.contains(l)));
    }

    /// Navigates to `url` and waits for its load event. Panics if chromium
    /// could not load it (`errorText`, e.g. `net::ERR_CONNECTION_REFUSED`).
    pub fn goto(&self, url: &str) {
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut conn = lock(&self.conn);
        let answer = conn.call(Some(&self.session), "Page.navigate", json!({ "url": url }));
        if let Some(error) = answer["errorText"].as_str().filter(|e| !e.is_empty()) {
            panic!("Page.navigate to {url}: {error}");
        }
        // A same-document navigation (only the fragment changes) has no loader and no load.
        let Some(loader) = answer["loaderId"].as_str().map(str::to_owned) else { return };
        conn.wait_until(deadline, &format!("the load event of {url}"), |conn| conn.tab(&self.session).loads.contains(&loader));
    }

    /// The URL of every request the page made since it was opened
    /// (`Network.requestWillBeSent`), in order; redirects appear once per hop.
    pub fn requests(&self) -> Vec<String> {
        let mut conn = lock(&self.conn);
        conn.drain();
        conn.tab(&self.session).requests.clone()
    }

    /// Every response the page received since it was opened, in order.
    pub fn responses(&self) -> Vec<Response> {
        let mut conn = lock(&self.conn);
        conn.drain();
        conn.tab(&self.session).responses.clone()
    }

    /// Sends any other protocol command to this tab; its result.
    pub fn call(&self, method: &str, params: Value) -> Value {
        lock(&self.conn).call(Some(&self.session), method, params)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let mut conn = lock(&self.conn);
        conn.send_only(None, "Target.closeTarget", json!({ "targetId": self.target }));
        conn.sessions.remove(&self.session);
    }
}

/// A panic inside a call poisons the lock; the connection is still usable
/// (a test that caught the panic carries on).
fn lock(conn: &Mutex<Conn>) -> MutexGuard<'_, Conn> {
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the events of one tab told so far.
#[derive(Default)]
struct Tab {
    main_frame: String,
    /// loaderIds of the main frame's documents that fired `load`.
    loads: Vec<String>,
    requests: Vec<String>,
    responses: Vec<Response>,
}

struct Conn {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    sessions: HashMap<String, Tab>,
}

impl Conn {
    fn connect(port: u16, path: &str) -> Conn {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("cannot connect to chromium's DevTools port {port}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(CALL_TIMEOUT)).unwrap();
        // Screenshots come as one text message of several MB: no size limits.
        let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
            .unwrap_or_else(|e| panic!("websocket handshake with {url} failed: {e}"));
        Conn { ws, next_id: 0, sessions: HashMap::new() }
    }

    fn tab(&self, session: &str) -> &Tab {
        self.sessions.get(session).expect("the page was closed")
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<u64, tungstenite::Error> {
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.ws.send(Message::Text(message.to_string().into()))?;
        Ok(self.next_id)
    }

    /// Sends without waiting for the answer (Drop: never panics).
    fn send_only(&mut self, session: Option<&str>, method: &str, params: Value) {
        let _ = self.send(session, method, params);
    }

    /// Sends `method` and waits (60 s at most) for its answer, recording the
    /// events that come before it. Panics naming the method on a protocol
    /// error or a timeout.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let deadline = Instant::now() + CALL_TIMEOUT;
        let id = self.send(session, method, params).unwrap_or_else(|e| panic!("{method}: cannot send: {e}"));
        loop {
            let message = self.next(deadline, method);
            if message["id"].as_u64() == Some(id) {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message.get("result").cloned().unwrap_or(Value::Null);
            }
        }
    }

    /// Reads messages until `done` holds (checked first), or panics at `deadline`.
    fn wait_until(&mut self, deadline: Instant, what: &str, done: impl Fn(&Conn) -> bool) {
        while !done(self) {
            self.next(deadline, what);
        }
    }

    /// Records whatever is already waiting on the socket, without blocking long.
    fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(1);
        while let Some(_message) = self.read(deadline) {}
    }

    /// The next message (an event is recorded before it is returned).
    fn next(&mut self, deadline: Instant, what: &str) -> Value {
        self.read(deadline).unwrap_or_else(|| panic!("{what}: no answer from chromium in {CALL_TIMEOUT:?}"))
    }

    /// The next message, or `None` once `deadline` passes.
    fn read(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            self.ws.get_mut().set_read_timeout(Some(left)).unwrap();
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("chromium sent bad JSON ({e})"));
                    self.record(&message);
                    return Some(message);
                }
                Ok(Message::Close(frame)) => panic!("chromium closed the DevTools connection: {frame:?}"),
                Ok(_) => {} // pings are answered by tungstenite; CDP sends no binary
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                }
                Err(e) => panic!("the DevTools connection to chromium failed: {e}"),
            }
        }
    }

    fn record(&mut self, message: &Value) {
        let (Some(method), Some(session)) = (message["method"].as_str(), message["sessionId"].as_str()) else { return };
        let Some(tab) = self.sessions.get_mut(session) else { return };
        let params = &message["params"];
        match method {
            "Page.lifecycleEvent" if params["name"] == "load" && params["frameId"] == tab.main_frame.as_str() => {
                tab.loads.push(params["loaderId"].as_str().unwrap_or_default().to_owned());
            }
            "Network.requestWillBeSent" => {
                tab.requests.push(params["request"]["url"].as_str().unwrap_or_default().to_owned());
            }
            "Network.responseReceived" => {
                let response = &params["response"];
                let headers = response["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                tab.responses.push(Response {
                    url: response["url"].as_str().unwrap_or_default().to_owned(),
                    status: response["status"].as_u64().unwrap_or_default() as u16,
                    headers,
                });
            }
            _ => {}
        }
    }
}

/// Standard base64 (with or without padding; whitespace ignored).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in text.bytes().enumerate() {
        if c == b'=' {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = value(c).ok_or_else(|| format!("not base64: byte {c:#04x} at {i}"))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
