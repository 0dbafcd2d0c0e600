//! The test harness's DevTools client (`common::cdp`) against a real
//! headless chromium and a page served from this test: load events,
//! evaluation, promises, network capture, media emulation, screenshots,
//! reload and navigation.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::cdp::{self, Browser};
use serde_json::json;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title>
<style>
  body { background: rgb(255, 255, 255); color: rgb(20, 20, 20); font: 16px sans-serif; }
  @media (prefers-color-scheme: dark) { body { background: rgb(0, 0, 0); color: rgb(230, 230, 230); } }
  .band { height: 120px; background: linear-gradient(90deg, red, orange, yellow, green, blue, violet); }
</style></head>
<body>
  <h1>cdp smoke</h1>
  <p>A page with a little of everything, so the screenshot is not blank.</p>
  <div class="band"></div>
  <script>
    window.__n = 0;
    fetch('/data.json').then(r => r.json()).then(d => { if (d.ok) document.title = 'ready'; });
  </script>
</body></html>"#;

/// Serves `PAGE` at `/`, `{"ok":true}` at `/data.json`, a second page at
/// `/other`, 404 otherwise, on a loopback port; its base URL.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // One thread each: chromium opens speculative connections that never send.
            std::thread::spawn(move || answer(stream));
        }
    });
    base
}

fn answer(mut stream: TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, kind, body) = match path {
        "/" => ("200 OK", "text/html; charset=utf-8", PAGE.to_owned()),
        "/data.json" => ("200 OK", "application/json", r#"{"ok":true}"#.to_owned()),
        "/other" => ("200 OK", "text/html; charset=utf-8", "<!doctype html><title>other</title><p>other".to_owned()),
        _ => ("404 Not Found", "text/plain", "not found".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

#[test]
fn base64_decoder() {
    assert_eq!(cdp::base64_decode("").unwrap(), b"");
    assert_eq!(cdp::base64_decode("Zg==").unwrap(), b"f");
    assert_eq!(cdp::base64_decode("Zm8=").unwrap(), b"fo");
    assert_eq!(cdp::base64_decode("Zm9v").unwrap(), b"foo");
    assert_eq!(cdp::base64_decode("Zm9vYmFy").unwrap(), b"foobar");
    assert_eq!(cdp::base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
    assert_eq!(cdp::base64_decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    assert!(cdp::base64_decode("Zm9v!").is_err());
}

#[test]
fn drives_headless_chromium() {
    let started = Instant::now();
    let base = serve();
    let browser = Browser::launch(1000, 700);
    let launched = started.elapsed();
    let page = browser.open(&format!("{base}/"));
    let opened = started.elapsed();

    assert!(page.wait_for("document.title == 'ready'", 20), "the page's fetch never set its title: {:?}", page.eval("document.title"));
    assert_eq!(page.eval("1 + 2"), 3);
    assert_eq!(page.eval("({ a: [1, 'two'], b: null })"), json!({ "a": [1, "two"], "b": null }));
    assert_eq!(page.eval("undefined"), serde_json::Value::Null);
    assert_eq!(page.eval("new Promise(r => setTimeout(() => r('later'), 50))"), "later");
    assert_eq!(page.eval("fetch('/data.json').then(r => r.json())"), json!({ "ok": true }));
    assert!(!page.wait_for("false", 0));

    // A script that throws: its exception text (`eval` panics with it).
    assert!(page.try_eval("throw new Error('boom')").unwrap_err().starts_with("Error: boom"));
    assert_eq!(page.try_eval("Promise.reject(new TypeError('nope'))").unwrap_err().split('\n').next(), Some("TypeError: nope"));
    assert_eq!(page.eval("'still usable'"), "still usable");

    // The network: the document, its fetch, each with a status and headers.
    let requests = page.requests();
    assert_eq!(requests.first(), Some(&format!("{base}/")), "{requests:?}");
    assert!(requests.contains(&format!("{base}/data.json")), "{requests:?}");
    let responses = page.responses();
    let data = responses.iter().find(|r| r.url.ends_with("/data.json")).expect("no response for /data.json");
    assert_eq!(data.status, 200);
    assert_eq!(data.headers.get("content-type").map(String::as_str), Some("application/json"));

    // prefers-color-scheme.
    let background = "getComputedStyle(document.body).backgroundColor";
    page.color_scheme(false);
    assert_eq!(page.eval(background), "rgb(255, 255, 255)");
    page.color_scheme(true);
    assert_eq!(page.eval(background), "rgb(0, 0, 0)");
    assert_eq!(page.eval("matchMedia('(prefers-color-scheme: dark)').matches"), true);

    // The viewport and a screenshot of it.
    page.viewport(800, 600);
    assert_eq!(page.eval("[innerWidth, innerHeight]"), json!([800, 600]));
    let shot = browser.profile_dir().with_file_name("shot.png");
    let png = page.screenshot(&shot);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:?}", &png[..png.len().min(16)]);
    assert!(png.len() > 1024, "a {} byte screenshot", png.len());
    assert_eq!(std::fs::read(&shot).unwrap(), png);
    let (width, height) = (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((width, height), (800, 600));

    // A screenshot of noise: a PNG of several MB, one websocket message of more in base64.
    page.viewport(1600, 1200);
    let noise = "const c = document.createElement('canvas'); c.width = 1600; c.height = 1200; \
                 c.style = 'position:fixed;left:0;top:0;z-index:9'; document.body.append(c); \
                 const g = c.getContext('2d'), d = g.createImageData(1600, 1200); \
                 for (let i = 0; i < d.data.length; i += 65536) crypto.getRandomValues(d.data.subarray(i, i + 65536)); \
                 for (let i = 3; i < d.data.length; i += 4) d.data[i] = 255; \
                 g.putImageData(d, 0, 0); new Promise(r => requestAnimationFrame(() => r(true)))";
    assert_eq!(page.eval(noise), true);
    let big = page.screenshot(&shot);
    assert!(big.len() > 4 << 20, "a noise screenshot of only {} bytes", big.len());
    page.viewport(800, 600);

    // reload: a new document, so a new window.
    assert_eq!(page.eval("++window.__n"), 1);
    assert_eq!(page.eval("++window.__n"), 2);
    page.reload();
    assert_eq!(page.eval("window.__n"), 0);
    assert!(page.wait_for("document.title == 'ready'", 20));
    assert_eq!(page.requests().iter().filter(|u| u.ends_with("/data.json")).count(), 3, "{:?}", page.requests());

    // goto: another document, loaded when it returns.
    page.goto(&format!("{base}/other"));
    assert_eq!(page.eval("[location.pathname, document.title, document.readyState]"), json!(["/other", "other", "complete"]));
    assert!(page.responses().iter().any(|r| r.url.ends_with("/other") && r.status == 200));

    // A second tab beside the first.
    let second = browser.open(&format!("{base}/"));
    assert!(second.wait_for("document.title == 'ready'", 20));
    assert_eq!(page.eval("location.pathname"), "/other");
    drop(second);

    eprintln!(
        "chromium launched in {launched:?}, first page loaded at {opened:?}, a {} byte screenshot, all done in {:?}",
        big.len(),
        started.elapsed()
    );
}

#[test]
#[should_panic(expected = "script threw: Error: boom")]
fn eval_panics_with_the_exception() {
    let base = serve();
    let browser = Browser::launch(400, 300);
    let page = browser.open(&format!("{base}/other"));
    page.eval("throw new Error('boom')");
}
