//! The dashboard in a real browser (Debian's headless chromium, driven over
//! the DevTools protocol) against a real daemon running its loop with a
//! supervisor fleet under load: what the page shows equals the API, it
//! updates without a reload, its charts draw, its rollback button rolls
//! back, and with a token it asks for it and never puts it in a URL or a
//! response.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::cdp::Browser;
use common::{kill_fleet, wait_for, Fixture};
use serde_json::Value;

struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn start(f: &Fixture, config: &str) -> Daemon {
    std::fs::write(f.tmp.path().join("steward.yaml"), config).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = f
        .cmd(&["serve"])
        .env("STEWARD_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(30, || request(port, "GET", "/health", None).0 != 0), "the daemon did not answer");
    Daemon { child, port }
}

/// One HTTP/1.0 request; (status, body). Status 0: no answer.
fn request(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let _ = write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

fn get_json(port: u16, path: &str, token: Option<&str>) -> Value {
    let (status, body) = request(port, "GET", path, token);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The share of a PNG's pixels that differ from its top-left pixel.
fn inked(png_bytes: &[u8]) -> f64 {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let bg = &buf[..px];
    let n = (info.width * info.height) as usize;
    (0..n).filter(|i| &buf[i * px..i * px + px] != bg).count() as f64 / n as f64
}

#[test]
fn the_dashboard_shows_what_the_api_says_live_and_rolls_back() {
    let f = Fixture::new();
    for i in 0..60 {
        f.write(&format!("work_item{i:02}.json"), &format!(r#"{{"id":"item{i:02}"}}"#));
    }
    let daemon = start(
        &f,
        "auto: {interval: 1s, min_agents: 0, max_agents: 2}\n\
         fleet: {kind: supervisor, args: [\"--service-time\", \"const:2\"], heartbeat_interval: 1s}\n",
    );
    let port = daemon.port;
    // The fleet is up and working: the first scale-up was executed.
    assert!(
        wait_for(30, || get_json(port, "/decisions?limit=20", None)["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["outcome"]["result"] == "executed"))),
        "no executed decision"
    );

    let browser = Browser::launch(1280, 1000);
    let page = browser.open(&format!("http://127.0.0.1:{port}/"));
    assert!(
        page.wait_for("window.__steward && __steward.renders > 0 && document.querySelector('#cycle').dataset.id !== ''", 30),
        "no first render"
    );
    let first_render_ms = page.eval("__steward.firstRenderMs");
    eprintln!("first render (charts drawn) at {first_render_ms} ms after navigation start");

    // What the page shows is what /status and /decisions say (same cycle).
    // The page and the API are read one after the other while cycles run
    // every second, so a match needs a moment when neither moved: on a
    // loaded machine that can take several cycles.
    let mut matched = false;
    for _ in 0..80 {
        let dom = page.eval(
            "({cycle: document.querySelector('#cycle').dataset.id, score: document.querySelector('#health-score').dataset.value,
              agents: document.querySelector('#agents').dataset.value, last: document.querySelector('#last-decision').dataset.id})",
        );
        let status = get_json(port, "/status", None);
        let last = get_json(port, "/decisions?limit=1", None)["decisions"][0]["id"].clone();
        if status["assessment"]["last_cycle"]["summary"]["cycle_id"] != dom["cycle"] || dom["last"] != last {
            std::thread::sleep(Duration::from_millis(150));
            continue;
        }
        let m = &status["metrics"];
        assert_eq!(dom["score"].as_str().unwrap().parse::<f64>().unwrap(), m["health_score"].as_f64().unwrap(), "{dom} {m}");
        assert_eq!(dom["agents"].as_str().unwrap().parse::<u64>().unwrap(), m["active_agents"].as_u64().unwrap());
        let shown = page.eval("document.querySelector('#health-score').textContent");
        assert_eq!(shown.as_str().unwrap(), format!("{:.2}", m["health_score"].as_f64().unwrap()));
        matched = true;
        break;
    }
    assert!(matched, "the page never showed the cycle /status reported");

    // The next cycle arrives without a reload.
    page.eval("window.__marker = 'same page'");
    let before = page.eval("document.querySelector('#cycle').dataset.id");
    assert!(page.wait_for(&format!("document.querySelector('#cycle').dataset.id !== {before}"), 20), "no update after the next cycle");
    assert_eq!(page.eval("window.__marker"), "same page", "updated without reloading");
    assert_eq!(page.eval("__steward.live"), "events", "live over Server-Sent Events");

    // The charts drew; the screenshot is not blank.
    assert!(page.wait_for("document.querySelectorAll('#chart-health svg path[d^=\"M\"]').length > 0", 20));
    let paths =
        page.eval("[...document.querySelectorAll('.chart svg path')].filter(p => (p.getAttribute('d') || '').startsWith('M')).length");
    assert!(paths.as_u64().unwrap() >= 3, "{paths}");
    let desc = page.eval("document.querySelector('#chart-fleet desc').textContent");
    assert!(desc.as_str().unwrap().contains("agents: latest"), "a text alternative: {desc}");
    // At a phone's width: no horizontal scrolling of the page itself.
    page.viewport(390, 844);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(page.eval("document.documentElement.scrollWidth <= 390 + 1"), true, "readable at a phone's width");
    page.viewport(1280, 1000);

    // The page weighs far under 150 KB, compressed or not.
    let (_, html) = request(port, "GET", "/", None);
    assert!(html.len() < 150_000, "{} bytes", html.len());

    // Screenshots, light and dark, once the charts have lines (two cycles or more).
    assert!(page.wait_for("document.querySelector('#chart-health svg path[d*=\"L\"]') !== null", 20), "a line in the health chart");
    // docs/dashboard-*.png come from here: STEWARD_SCREENSHOTS=docs cargo test --test dashboard
    let shots = std::env::var_os("STEWARD_SCREENSHOTS")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")), std::path::PathBuf::from);
    let shots = shots.as_path();
    for (dark, name) in [(false, "dashboard-light.png"), (true, "dashboard-dark.png")] {
        page.color_scheme(dark);
        std::thread::sleep(Duration::from_millis(300));
        let png = page.screenshot(&shots.join(name));
        let ink = inked(&png);
        assert!(ink > 0.03, "{name}: only {:.1} % of the pixels drawn", ink * 100.0);
    }
    // Rollback from the page: the newest decision that can be rolled back.
    page.eval("window.confirm = () => true");
    assert!(page.wait_for("document.querySelector('button[data-rollback]') !== null", 20), "no rollback button");
    let id = page.eval("document.querySelector('button[data-rollback]').dataset.rollback");
    page.eval("document.querySelector('button[data-rollback]').click()");
    assert!(page.wait_for("document.querySelector('#rollback-result').textContent !== ''", 20));
    let said = page.eval("document.querySelector('#rollback-result').textContent");
    assert!(said.as_str().unwrap().starts_with("Rolled back"), "{said}");
    let rolled = get_json(port, "/decisions?limit=50", None)["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["parameters"]["rollback_of"] == id && d["outcome"]["result"] == "executed");
    assert!(rolled, "the rollback of {id} is in /decisions");
    // The incidents panel filled in (60 items and no agent was critical);
    // the tasks panel explains what would fill it.
    assert!(page.wait_for("document.querySelector('#incidents tr[data-incident]') !== null", 20), "an incident listed");
    let tasks = page.eval("document.querySelector('#tasks').textContent");
    assert!(tasks.as_str().unwrap().contains("not configured"), "{tasks}");

    // The daemon stops answering: a banner says the figures are stale.
    drop(daemon);
    assert!(page.wait_for("document.querySelector('#stale').classList.contains('show')", 60), "no stale-data banner");
    drop(page);
    drop(browser);
    kill_fleet(&f.state());
}

#[test]
fn with_a_token_the_page_asks_for_it_and_never_shows_it() {
    let token = "dash-secret-7f3a9c";
    let f = Fixture::new();
    f.write("work_a.json", r#"{"id":"a"}"#);
    let daemon = start(&f, &format!("auto: {{interval: 1s}}\nserver: {{tokens: {{ops: {token}}}}}\n"));
    let port = daemon.port;
    for path in ["/status", "/decisions", "/history?window=1h", "/incidents", "/tasks", "/events", "/metrics"] {
        assert_eq!(request(port, "GET", path, None).0, 401, "{path} without the token");
    }
    let browser = Browser::launch(1280, 900);
    let page = browser.open(&format!("http://127.0.0.1:{port}/"));
    assert!(page.wait_for("document.querySelector('#token-form').classList.contains('show')", 20), "the prompt");
    assert_eq!(page.eval("document.querySelector('#app').hidden"), true);
    page.eval(&format!("document.querySelector('#token-input').value = '{token}'; document.querySelector('#token-form').requestSubmit()"));
    assert!(page.wait_for("!document.querySelector('#app').hidden && __steward.renders > 0", 30), "the dashboard after the token");
    assert!(page.wait_for("__steward.statuses > 1", 20), "live with the token");
    for url in page.requests() {
        assert!(!url.contains(token), "the token in a URL: {url}");
    }
    for r in page.responses() {
        assert!(!format!("{:?}", r.headers).contains(token), "the token in {}'s headers", r.url);
    }
    for path in ["/", "/status", "/decisions", "/history?window=1h", "/incidents", "/tasks", "/metrics", "/health"] {
        let (status, body) = request(port, "GET", path, Some(token));
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains(token), "the token in {path}'s answer");
    }
    // A wrong token is refused and asked again.
    // (A reload from inside the script races the evaluation's answer.)
    page.eval("sessionStorage.setItem('steward-token', 'wrong')");
    page.reload();
    assert!(page.wait_for("document.querySelector('#token-form') && document.querySelector('#token-form').classList.contains('show')", 20));
}
