//! The one small HTTP/1.1 client steward uses for its few plain-http calls:
//! webhooks, OTLP span export, and asking its own daemon for /health.
//! std's TCP with timeouts, `Connection: close`, no TLS.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A parsed `http://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address.
    pub host: String,
    /// Port (80 when not given).
    pub port: u16,
    /// Path, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses a plain-http URL.
    ///
    /// # Errors
    /// A sentence: not http (https is named as unsupported), no host, bad
    /// port, or characters a request line cannot carry.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            if url.starts_with("https://") {
                "https is not supported (plain http only)".to_owned()
            } else {
                format!("{url:?} is not an http:// URL")
            }
        })?;
        let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?} has no plain host"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h.to_owned(), p.parse::<u16>().map_err(|_| format!("bad port in {url:?}"))?)
            }
            _ => (authority.to_owned(), 80),
        };
        if path.contains(['\r', '\n', ' ']) {
            return Err(format!("{url:?} has characters a request line cannot carry"));
        }
        Ok(Self { host, port, path })
    }
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (at most 1 MiB, lossily decoded).
    pub body: String,
}

/// Sends one request and reads the whole answer, within `timeout` for the
/// connection and for each read and write. `body` is (content type, bytes).
///
/// # Errors
/// The host cannot be resolved or reached, the exchange failed, or the
/// answer carries no HTTP status.
pub fn request(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> io::Result<Response> {
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{} resolves to nothing", url.host)))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
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
    stream.write_all(head.as_bytes())?;
    if let Some((_, bytes)) = body {
        stream.write_all(bytes)?;
    }
    let mut answer = Vec::new();
    let _ = stream.take(1 << 20).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io::Error::other("no HTTP status in the answer"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok(Response { status, body })
}
