//! Fuzzing what steward reads from queue servers and users (issue 9's rule
//! for every parser): any bytes a Redis server (or something pretending to
//! be one) sends are a reply or an error, never a panic, a hang or an
//! allocation without bound; any queue URL parses or is refused, and a
//! password in it never shows in what steward prints.
//!
//! CI runs a few hundred cases per property. For a long run:
//! `STEWARD_FUZZ_CASES=200000 cargo test --release -p steward-queue --test fuzz_wire -- --nocapture`

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use proptest::prelude::*;
use steward_queue::resp::{Cmd, Conn};
use steward_queue::url::redact;
use steward_queue::{QueueUrl, RedisKind, RedisUrl};

fn cases() -> u32 {
    std::env::var("STEWARD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// One connection to a server that answers `reply` to the first command.
fn ask(reply: Vec<u8>) -> Result<(), String> {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&reply);
        }
    });
    let url = RedisUrl { host: "127.0.0.1".into(), port, db: 0, user: None, password: None, kind: RedisKind::List { list: "q".into() } };
    let started = std::time::Instant::now();
    let r = Conn::open(&url, Duration::from_millis(300)).and_then(|mut c| c.call(&Cmd::new("PING")));
    let _ = server.join();
    if started.elapsed() > Duration::from_secs(3) {
        return Err(format!("took {:?}", started.elapsed()));
    }
    let _ = r;
    Ok(())
}

/// Valid replies to mutate: nested arrays, bulk strings, integers, errors.
const VALID: &[&[u8]] = &[
    b"*2\r\n$3\r\nabc\r\n:42\r\n",
    b"*1\r\n*2\r\n$5\r\n1-0\r\n*2\r\n$2\r\nid\r\n$1\r\nx\r\n",
    b"$-1\r\n",
    b"-ERR no\r\n",
    b"+OK\r\n",
    b"*3\r\n:1\r\n*-1\r\n$0\r\n\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_from_a_server_are_a_reply_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(ask(bytes).is_ok());
    }

    #[test]
    fn mutated_replies_are_a_reply_or_an_error(which in 0..VALID.len(), edits in proptest::collection::vec((0u8..3, any::<usize>(), any::<u8>()), 1..6)) {
        let mut body = VALID[which].to_vec();
        for (op, at, byte) in edits {
            let at = at % body.len().max(1);
            match op {
                0 if !body.is_empty() => body[at] = byte,
                1 => body.insert(at.min(body.len()), byte),
                _ => body.truncate(at),
            }
        }
        prop_assert!(ask(body).is_ok());
    }

    #[test]
    fn any_queue_url_parses_or_is_refused_and_never_shows_its_password(
        scheme in prop_oneof![Just("redis://"), Just("postgres://"), Just("rediss://"), Just("postgresql://")],
        user in "[a-z]{0,6}",
        sep in prop_oneof![Just("/"), Just("?"), Just("@"), Just(""), Just("%2F")],
        rest in "[ -~]{0,40}",
    ) {
        let secret = "Zq9SECRETvx";
        let url = format!("{scheme}{user}:{secret}{sep}x@127.0.0.1:6379/0{rest}");
        let shown = match QueueUrl::parse_with_env(&url, |_| None) {
            Ok(u) => format!("{u} {u:?} {}", u.without_password().0),
            Err(e) => e.to_string(),
        };
        prop_assert!(!shown.contains(secret), "{url} -> {shown}");
        prop_assert!(!redact(&url).contains(secret), "{url} -> {}", redact(&url));
    }

    #[test]
    fn any_string_given_as_a_queue_url_is_handled(s in "\\PC{0,80}") {
        let _ = QueueUrl::parse_with_env(&s, |_| None);
        let _ = redact(&s);
    }
}
