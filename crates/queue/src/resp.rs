//! A small Redis client: RESP2 over one TCP connection, with a timeout on
//! every read and write, pipelining, and bounds on what a reply may hold
//! (a hostile or broken server cannot make steward allocate without end).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::url::RedisUrl;
use crate::QueueError;

/// The largest bulk string accepted (an item's payload, a field).
const MAX_BULK: usize = 64 << 20;
/// The most elements an array may announce.
const MAX_ARRAY: usize = 1 << 24;
/// How deep arrays may nest.
const MAX_DEPTH: usize = 8;

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`: the command failed; the connection is fine.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$n` bytes, or `$-1` (nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` replies, or `*-1` (nil).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The integer, also from a numeric bulk string.
    pub fn int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The text of a bulk or status reply.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Self::Status(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The elements of an array reply (nil and non-arrays are empty).
    pub fn items(&self) -> &[Reply] {
        match self {
            Self::Array(Some(v)) => v,
            _ => &[],
        }
    }

    /// Whether this is nil.
    pub fn is_nil(&self) -> bool {
        matches!(self, Self::Bulk(None) | Self::Array(None))
    }

    /// An error reply as `Err`, naming the command.
    ///
    /// # Errors
    /// [`QueueError::Command`] for an error reply.
    pub fn ok(self, command: &str) -> Result<Self, QueueError> {
        match self {
            Self::Error(e) => Err(QueueError::Command { command: command.to_owned(), message: e }),
            r => Ok(r),
        }
    }

    /// A field of a flat `[k1, v1, k2, v2, ...]` reply (XINFO's maps).
    pub fn field(&self, name: &str) -> Option<&Reply> {
        self.items().chunks(2).find(|kv| kv[0].text().as_deref() == Some(name)).and_then(|kv| kv.get(1))
    }
}

/// A command: its arguments, each bytes.
#[derive(Debug, Clone, Default)]
pub struct Cmd(Vec<Vec<u8>>);

impl Cmd {
    /// A command by name.
    pub fn new(name: &str) -> Self {
        Self(vec![name.as_bytes().to_vec()])
    }

    /// Adds an argument.
    #[must_use]
    pub fn arg(mut self, a: impl AsRef<[u8]>) -> Self {
        self.0.push(a.as_ref().to_vec());
        self
    }

    /// Adds a number.
    #[must_use]
    pub fn num(self, n: impl std::fmt::Display) -> Self {
        self.arg(n.to_string())
    }

    /// The command's name, for messages.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(self.0.first().map_or(&[][..], |v| v.as_slice())).into_owned()
    }

    fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        write!(out, "*{}\r\n", self.0.len())?;
        for a in &self.0 {
            write!(out, "${}\r\n", a.len())?;
            out.write_all(a)?;
            out.write_all(b"\r\n")?;
        }
        Ok(())
    }
}

/// One connection to a Redis server.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    timeout: Duration,
    addr: String,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({})", self.addr)
    }
}

impl Conn {
    /// Connects, authenticates and selects the database, each within `timeout`.
    ///
    /// # Errors
    /// [`QueueError::Connect`] when the server cannot be reached,
    /// [`QueueError::Command`] when it refuses the credentials.
    pub fn open(url: &RedisUrl, timeout: Duration) -> Result<Self, QueueError> {
        let addr = if url.host.contains(':') { format!("[{}]:{}", url.host, url.port) } else { format!("{}:{}", url.host, url.port) };
        let connect_err = |e: std::io::Error| QueueError::Connect { target: format!("redis {addr}"), source: e };
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(connect_err)?.collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host resolves to no address");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;
        stream.set_nodelay(true).map_err(connect_err)?;
        stream.set_read_timeout(Some(timeout)).map_err(connect_err)?;
        stream.set_write_timeout(Some(timeout)).map_err(connect_err)?;
        let w = stream.try_clone().map_err(connect_err)?;
        let mut conn =
            Self { reader: BufReader::with_capacity(64 << 10, stream), writer: BufWriter::with_capacity(64 << 10, w), timeout, addr };
        if let Some(pw) = &url.password {
            let auth = match &url.user {
                Some(u) => Cmd::new("AUTH").arg(u).arg(pw),
                None => Cmd::new("AUTH").arg(pw),
            };
            // The reply names no secret; the command is not echoed.
            conn.call(&auth)?.ok("AUTH")?;
        }
        if url.db != 0 {
            conn.call(&Cmd::new("SELECT").num(url.db))?.ok("SELECT")?;
        }
        Ok(conn)
    }

    /// The server's address, for messages.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sets the read timeout for the next replies (a blocking read waits
    /// longer than a plain call).
    ///
    /// # Errors
    /// The socket refuses the setting.
    pub fn set_read_timeout(&mut self, t: Duration) -> Result<(), QueueError> {
        self.reader.get_ref().set_read_timeout(Some(t)).map_err(|e| self.io(e))
    }

    /// Restores the connection's own read timeout.
    ///
    /// # Errors
    /// As [`Conn::set_read_timeout`].
    pub fn reset_read_timeout(&mut self) -> Result<(), QueueError> {
        let t = self.timeout;
        self.set_read_timeout(t)
    }

    fn io(&self, e: std::io::Error) -> QueueError {
        QueueError::Io { target: format!("redis {}", self.addr), source: e }
    }

    /// Sends one command and reads its reply. An error reply is returned
    /// as [`Reply::Error`]: check it with [`Reply::ok`].
    ///
    /// # Errors
    /// The connection failed or timed out; the reply broke the protocol.
    pub fn call(&mut self, cmd: &Cmd) -> Result<Reply, QueueError> {
        let mut r = self.pipeline(std::slice::from_ref(cmd))?;
        r.pop().ok_or_else(|| QueueError::Protocol { target: self.addr.clone(), why: "no reply".into() })
    }

    /// Sends commands in one write and reads their replies in order.
    ///
    /// # Errors
    /// As [`Conn::call`]. After an error the connection must be dropped.
    pub fn pipeline(&mut self, cmds: &[Cmd]) -> Result<Vec<Reply>, QueueError> {
        for c in cmds {
            c.write_to(&mut self.writer).map_err(|e| self.io(e))?;
        }
        self.writer.flush().map_err(|e| self.io(e))?;
        let mut out = Vec::with_capacity(cmds.len());
        for _ in cmds {
            out.push(self.read_reply(0)?);
        }
        Ok(out)
    }

    fn line(&mut self) -> Result<String, QueueError> {
        let mut buf = Vec::with_capacity(32);
        // A line is a type byte and a number or a short status: bounded.
        let n = (&mut self.reader).take(64 << 10).read_until(b'\n', &mut buf).map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(self.io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection")));
        }
        if !buf.ends_with(b"\r\n") {
            return Err(QueueError::Protocol { target: self.addr.clone(), why: "a reply line without CRLF (or over 64 KiB)".into() });
        }
        buf.truncate(buf.len() - 2);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn read_reply(&mut self, depth: usize) -> Result<Reply, QueueError> {
        let line = self.line()?;
        let proto = |why: String| QueueError::Protocol { target: self.addr.clone(), why };
        let (kind, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
        let len = |rest: &str| rest.parse::<i64>().map_err(|_| proto(format!("bad length {rest:?}")));
        match kind {
            "+" => Ok(Reply::Status(rest.to_owned())),
            "-" => Ok(Reply::Error(rest.to_owned())),
            ":" => Ok(Reply::Int(len(rest)?)),
            "$" => {
                let n = len(rest)?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_BULK {
                    return Err(proto(format!("a bulk string of {n} bytes (the bound is {MAX_BULK})")));
                }
                let mut b = vec![0; n + 2];
                self.reader.read_exact(&mut b).map_err(|e| self.io(e))?;
                if !b.ends_with(b"\r\n") {
                    return Err(proto("a bulk string without CRLF".into()));
                }
                b.truncate(n);
                Ok(Reply::Bulk(Some(b)))
            }
            "*" => {
                let n = len(rest)?;
                if n < 0 {
                    return Ok(Reply::Array(None));
                }
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_ARRAY || depth >= MAX_DEPTH {
                    return Err(proto(format!("an array of {n} elements at depth {depth}")));
                }
                let mut v = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    v.push(self.read_reply(depth + 1)?);
                }
                Ok(Reply::Array(Some(v)))
            }
            _ => Err(proto(format!("unknown reply type in {:?}", line.chars().take(20).collect::<String>()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve(reply: &'static [u8]) -> (RedisUrl, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply);
            std::thread::sleep(Duration::from_millis(300));
        });
        let url = RedisUrl {
            host: "127.0.0.1".into(),
            port,
            db: 0,
            user: None,
            password: None,
            kind: crate::url::RedisKind::List { list: "q".into() },
        };
        (url, h)
    }

    #[test]
    fn replies_of_every_type_are_read() {
        let (url, h) = serve(b"*5\r\n+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n-ERR no\r\n*-1\r\n");
        let mut c = Conn::open(&url, Duration::from_secs(2)).unwrap();
        let r = c.call(&Cmd::new("PING")).unwrap();
        let items = r.items();
        assert_eq!(items[0], Reply::Status("OK".into()));
        assert_eq!(items[1].int(), Some(42));
        assert_eq!(items[2].text().as_deref(), Some("abc"));
        assert!(items[3].is_nil());
        assert_eq!(items[4].items()[0], Reply::Error("ERR no".into()));
        assert!(items[4].items()[1].is_nil());
        h.join().unwrap();
    }

    #[test]
    fn a_hostile_server_cannot_make_it_allocate_or_hang() {
        for reply in [
            &b"$999999999999\r\n"[..],
            b"*99999999999\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
            b"?what\r\n",
            b"$3\r\nabcXY",
        ] {
            let (url, h) = serve(reply);
            let mut c = Conn::open(&url, Duration::from_millis(500)).unwrap();
            assert!(c.call(&Cmd::new("PING")).is_err(), "{:?}", String::from_utf8_lossy(reply));
            h.join().unwrap();
        }
        // A server that says nothing: the read times out.
        let (url, h) = serve(b"");
        let mut c = Conn::open(&url, Duration::from_millis(200)).unwrap();
        let started = std::time::Instant::now();
        assert!(c.call(&Cmd::new("PING")).is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        h.join().unwrap();
    }
}
