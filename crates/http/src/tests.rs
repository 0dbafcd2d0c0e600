//! The client against one-shot servers on loopback, and the URL rules.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::*;

/// A server on loopback that accepts one connection, reads the request
/// head, writes `answer` and hands back the request it read. It closes the
/// way real servers do (a lingering close): its side shut first, then what
/// the client still sends (a body behind the head) read and dropped, since
/// closing with unread data resets the connection, and a client can then
/// lose the answer before it reads it (a flaky test, not a client bug).
fn serve_once(answer: impl FnOnce(&mut std::net::TcpStream) + Send + 'static) -> (Url, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/p", listener.local_addr().unwrap())).unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        answer(&mut s);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        String::from_utf8_lossy(&got).into_owned()
    });
    (url, h)
}

fn answering(text: &'static str) -> impl FnOnce(&mut std::net::TcpStream) + Send + 'static {
    move |s| s.write_all(text.as_bytes()).unwrap()
}

const T: Duration = Duration::from_secs(5);

#[test]
fn urls_parse_strictly() {
    assert_eq!(Url::parse("http://h:81/a/b").unwrap(), Url { host: "h".into(), port: 81, path: "/a/b".into() });
    assert_eq!(Url::parse("http://h").unwrap().path, "/");
    assert_eq!(Url::parse("http://h").unwrap().port, 80);
    assert_eq!(Url::parse_with_default_port("http://h/x", 9090).unwrap().port, 9090);
    assert_eq!(Url::parse("http://[::1]:9090/").unwrap().host, "[::1]");
    assert_eq!(Url::parse("http://[::1]/").unwrap().port, 80);
    assert_eq!(Url::parse("http://[::1]/").unwrap().bare_host(), "::1");
    assert!(Url::parse("https://h/").unwrap_err().contains("https"));
    assert!(Url::parse("ftp://h/").is_err());
    assert!(Url::parse("http://h:99999/").is_err());
    assert!(Url::parse("http://h:0/").is_err());
    assert!(Url::parse("http://::1/").is_err());
    assert!(Url::parse("http:///x").is_err());
    assert!(Url::parse("http://h/a b").is_err());
    assert!(Url::parse("http://h/a\r\nX: y").is_err());
    let e = Url::parse("http://user:s3cret@h/").unwrap_err();
    assert!(e.contains("credentials") && !e.contains("s3cret"), "{e}");
    assert_eq!(Url::parse("http://h:1/x").unwrap().to_string(), "http://h:1/x");
}

#[test]
fn queries_are_percent_encoded_and_decoded() {
    let q = r#"sum(rate(jobs_total{queue="a b"}[5m])) + 1 / 2"#;
    assert_eq!(percent_encode("a-Z_0.~"), "a-Z_0.~");
    assert_eq!(percent_encode("a b+c&d=é"), "a%20b%2Bc%26d%3D%C3%A9");
    assert_eq!(form_decode(&percent_encode(q)).unwrap(), q);
    assert_eq!(form_decode("a+b%2Bc").unwrap(), "a b+c");
    assert!(form_decode("50%").is_err());
    assert!(form_decode("%zz").is_err());
    assert!(form_decode("%ff").is_err());
    let url = Url::parse("http://h/api").unwrap().with_query(&[("query", "up == 1"), ("time", "1.5")]);
    assert_eq!(url.path, "/api?query=up%20%3D%3D%201&time=1.5");
    assert_eq!(url.with_query(&[("x", "y")]).path, "/api?query=up%20%3D%3D%201&time=1.5&x=y");
}

#[test]
fn a_get_sends_its_query_and_reads_a_sized_body() {
    let (url, h) = serve_once(answering("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more"));
    let answer = get(&url, &[("query", "a+b")], &[("X-Tenant".into(), "t1".into())], T).unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello"));
    let req = h.join().unwrap();
    assert!(req.starts_with("GET /p?query=a%2Bb HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("\r\nX-Tenant: t1\r\n") && req.contains("Connection: close"), "{req}");
}

#[test]
fn a_chunked_body_is_decoded() {
    let (url, h) = serve_once(answering(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    ));
    assert_eq!(request("GET", &url, &[], None, T).unwrap().body, "hello, world");
    h.join().unwrap();
}

#[test]
fn a_body_without_framing_runs_to_the_close_and_interim_answers_are_skipped() {
    let (url, h) = serve_once(answering("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 503 Busy\r\nX: y\r\n\r\nlater"));
    let answer = request("POST", &url, &[], Some(("text/plain", b"x")), T).unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (503, "later"));
    h.join().unwrap();
}

#[test]
fn broken_answers_are_errors() {
    for (text, says) in [
        ("", "no HTTP status"),
        ("SSH-2.0-OpenSSH\r\n\r\n", "no HTTP status"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "ended after 5 of its 10 bytes"),
        ("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc", "middle of a chunk"),
        ("HTTP/1.1 200 OK\r\nContent-Le", "middle of its head"),
    ] {
        let (url, h) = serve_once(answering(text));
        let e = request("GET", &url, &[], None, T).unwrap_err();
        assert!(e.to_string().contains(says), "{text:?}: {e}");
        h.join().unwrap();
    }
}

#[test]
fn a_body_over_the_limit_is_refused_whatever_its_framing() {
    let declared = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_BODY_BYTES + 1);
    let (url, h) = serve_once(move |s| s.write_all(declared.as_bytes()).unwrap());
    let e = request("GET", &url, &[], None, T).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("larger than 8388608 bytes"), "{e}");
    h.join().unwrap();

    let streamed = |chunked: bool| {
        move |s: &mut std::net::TcpStream| {
            let head: &[u8] = if chunked { b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" } else { b"HTTP/1.1 200 OK\r\n\r\n" };
            s.write_all(head).unwrap();
            let block = vec![b'x'; 1 << 20];
            // The client stops reading at the limit: writes fail then.
            for _ in 0..9 {
                if chunked && s.write_all(format!("{:x}\r\n", block.len()).as_bytes()).is_err() {
                    return;
                }
                if s.write_all(&block).is_err() || (chunked && s.write_all(b"\r\n").is_err()) {
                    return;
                }
            }
        }
    };
    for chunked in [false, true] {
        let (url, h) = serve_once(streamed(chunked));
        let e = request("GET", &url, &[], None, T).unwrap_err();
        assert!(e.to_string().contains("larger than"), "chunked {chunked}: {e}");
        h.join().unwrap();
    }
}

#[test]
fn a_silent_or_dripping_server_times_out_with_a_sentence() {
    let (url, h) = serve_once(|_| thread::sleep(Duration::from_millis(1500)));
    let start = Instant::now();
    let e = request("GET", &url, &[], None, Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(e.to_string().contains("no complete answer within 300ms"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(1));
    h.join().unwrap();

    // One byte every 100 ms: each read is quick, the whole is not.
    let (url, h) = serve_once(|s| {
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789" {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let start = Instant::now();
    let e = request("GET", &url, &[], None, Duration::from_millis(500)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(start.elapsed() < Duration::from_millis(1500));
    h.join().unwrap();
}

#[test]
fn an_unreachable_port_is_an_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    assert!(request("GET", &url, &[], None, T).is_err());
}
