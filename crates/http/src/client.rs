//! One request, one answer, one connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::url::Url;

/// The largest answer body the client reads: 8 MiB. A larger one is an
/// error, not a truncated body.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The largest status line or header line the client reads.
const MAX_LINE_BYTES: u64 = 16 << 10;

/// The most header lines an answer may carry.
const MAX_HEADERS: usize = 200;

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (at most [`MAX_BODY_BYTES`], lossily decoded as UTF-8).
    pub body: String,
}

/// Sends one request and reads the whole answer. The exchange, from
/// connecting to the last byte of the answer, takes at most `timeout`: the
/// connection and each read and write get what remains of it. `body` is
/// (content type, bytes).
///
/// # Errors
/// The host cannot be resolved or reached; the exchange failed or took
/// longer than `timeout` (`ErrorKind::TimedOut`); the answer carries no
/// HTTP status, breaks its own framing, or has a body larger than
/// [`MAX_BODY_BYTES`] (`ErrorKind::InvalidData`).
pub fn request(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> io::Result<Response> {
    let deadline = Deadline { at: Instant::now() + timeout, timeout };
    let stream = connect(url, &deadline)?;
    let mut conn = DeadlineStream { stream, deadline };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nUser-Agent: steward/{}\r\n",
        url.path,
        url.host,
        url.port,
        env!("CARGO_PKG_VERSION")
    );
    if let Some((content_type, bytes)) = body {
        head.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", bytes.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if let Some((_, bytes)) = body {
        conn.write_all(bytes)?;
    }
    conn.flush()?;
    read_response(BufReader::new(conn), method.eq_ignore_ascii_case("HEAD"))
}

/// A GET of `url` with `query` appended to its query string (each name
/// and value percent-encoded), e.g. Prometheus's
/// `/api/v1/query?query=...&time=...`.
///
/// # Errors
/// As [`request`].
pub fn get(url: &Url, query: &[(&str, &str)], headers: &[(String, String)], timeout: Duration) -> io::Result<Response> {
    request("GET", &url.with_query(query), headers, None, timeout)
}

/// When the exchange must be over.
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    /// What remains, or a `TimedOut` error when nothing does.
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(self.timed_out())
        } else {
            Ok(left)
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, format!("no complete answer within {:?}", self.timeout))
    }

    /// A socket timeout reads as `WouldBlock` on Unix ("resource
    /// temporarily unavailable"); say what it is.
    fn explain(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timed_out(),
            _ => e,
        }
    }
}

/// Tries each address the host resolves to, within what remains.
fn connect(url: &Url, deadline: &Deadline) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (url.bare_host(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, deadline.remaining()?) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(deadline.explain(e)),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other(format!("{} resolves to no address", url.host))))
}

/// A stream whose every read and write gets what remains of the deadline.
struct DeadlineStream {
    stream: TcpStream,
    deadline: Deadline,
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.deadline.remaining()?))?;
        self.stream.read(buf).map_err(|e| self.deadline.explain(e))
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.deadline.remaining()?))?;
        self.stream.write(buf).map_err(|e| self.deadline.explain(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn too_large() -> io::Error {
    invalid(format!("the answer's body is larger than {MAX_BODY_BYTES} bytes (8 MiB), the most this client reads"))
}

/// How the body's end is known.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Reads the status line, the headers and the body (skipping interim
/// `1xx` answers).
fn read_response<R: BufRead>(mut reader: R, head_only: bool) -> io::Result<Response> {
    loop {
        let status_line = read_line(&mut reader)?;
        if status_line.is_empty() {
            return Err(invalid("no HTTP status in the answer (the server closed the connection)"));
        }
        let status = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| invalid("no HTTP status in the answer"))?;
        let mut length = None;
        let mut chunked = false;
        for n in 0.. {
            let line = read_line(&mut reader)?;
            if line.is_empty() {
                break;
            }
            if n >= MAX_HEADERS {
                return Err(invalid(format!("the answer has more than {MAX_HEADERS} header lines")));
            }
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<u64>().map_err(|_| invalid(format!("a bad Content-Length: {value:?}")))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            }
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let framing = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::None
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        let body = read_body(&mut reader, framing)?;
        return Ok(Response { status, body: String::from_utf8_lossy(&body).into_owned() });
    }
}

/// One line without its `\r\n`; empty at the end of the head (or of the
/// stream).
fn read_line<R: BufRead>(reader: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    reader.by_ref().take(MAX_LINE_BYTES).read_until(b'\n', &mut line)?;
    if !line.is_empty() && !line.ends_with(b"\n") {
        return Err(invalid(if line.len() as u64 >= MAX_LINE_BYTES {
            format!("a line of the answer's head is longer than {MAX_LINE_BYTES} bytes")
        } else {
            "the answer ended in the middle of its head".to_owned()
        }));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn read_body<R: BufRead>(reader: &mut R, framing: Framing) -> io::Result<Vec<u8>> {
    let limit = MAX_BODY_BYTES as u64;
    let mut body = Vec::new();
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            if n > limit {
                return Err(too_large());
            }
            reader.take(n).read_to_end(&mut body)?;
            if (body.len() as u64) < n {
                return Err(invalid(format!("the answer ended after {} of its {n} bytes", body.len())));
            }
        }
        Framing::UntilClose => {
            reader.take(limit + 1).read_to_end(&mut body)?;
            if body.len() as u64 > limit {
                return Err(too_large());
            }
        }
        Framing::Chunked => loop {
            let line = read_line(reader)?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| invalid(format!("a bad chunk size: {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line (or the close).
                while !read_line(reader)?.is_empty() {}
                break;
            }
            if body.len() as u64 + size > limit {
                return Err(too_large());
            }
            let before = body.len();
            reader.take(size).read_to_end(&mut body)?;
            if ((body.len() - before) as u64) < size || !read_line(reader)?.is_empty() {
                return Err(invalid("the answer ended in the middle of a chunk"));
            }
        },
    }
    Ok(body)
}
