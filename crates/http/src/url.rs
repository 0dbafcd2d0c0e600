//! Plain-http URLs, and the percent-encoding of query strings.

/// A parsed `http://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address (an IPv6 address keeps its brackets).
    pub host: String,
    /// Port (80 when not given).
    pub port: u16,
    /// Path, starting with `/`, with its query string if it has one.
    pub path: String,
}

impl Url {
    /// Parses a plain-http URL.
    ///
    /// # Errors
    /// A sentence: not http (https is named as unsupported), no host,
    /// credentials (never repeated in the sentence), bad port, or
    /// characters a request line cannot carry.
    pub fn parse(url: &str) -> Result<Self, String> {
        Self::parse_with_default_port(url, 80)
    }

    /// [`Url::parse`], with `default_port` when the URL names none (a
    /// service's own default, such as Prometheus's 9090).
    ///
    /// # Errors
    /// As [`Url::parse`].
    pub fn parse_with_default_port(url: &str, default_port: u16) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            if url.starts_with("https://") {
                "https is not supported (plain http only)".to_owned()
            } else {
                format!("{:?} is not an http:// URL", without_credentials(url))
            }
        })?;
        let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        if authority.contains('@') {
            return Err(format!(
                "{:?} carries credentials, which are not supported in the URL (send them in a header)",
                without_credentials(url)
            ));
        }
        if authority.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let (host, port) = split_authority(authority, default_port).map_err(|e| format!("{url:?}: {e}"))?;
        if path.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control()) || path.contains('#') {
            return Err(format!("{url:?} has characters a request line cannot carry"));
        }
        Ok(Self { host, port, path })
    }

    /// This URL with `pairs` appended to its query string, each name and
    /// value percent-encoded.
    pub fn with_query(&self, pairs: &[(&str, &str)]) -> Self {
        let mut path = self.path.clone();
        for (i, (name, value)) in pairs.iter().enumerate() {
            let sep = if i == 0 && !path.contains('?') { '?' } else { '&' };
            path.push(sep);
            path.push_str(&percent_encode(name));
            path.push('=');
            path.push_str(&percent_encode(value));
        }
        Self { path, ..self.clone() }
    }

    /// The host without an IPv6 address's brackets, for resolving.
    pub(crate) fn bare_host(&self) -> &str {
        self.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&self.host)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// `host[:port]` or `[v6][:port]`.
fn split_authority(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("an IPv6 address without its closing bracket")?;
        if addr.is_empty() || !addr.contains(':') {
            return Err("an empty or malformed IPv6 address".into());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
        };
        (format!("[{addr}]"), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h.to_owned(), Some(p)),
            Some(_) => return Err("an IPv6 address must be in brackets".into()),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control() || "?#\\".contains(c)) {
        return Err("no plain host".into());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or("bad port")?,
    };
    Ok((host, port))
}

/// `url` with any `user:password@` removed, for messages.
fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) if scheme.is_empty() => rest[at + 1..].to_owned(),
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), so any text is one query-string component.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes one query-string component as forms encode it: `%XX` escapes,
/// and `+` for a space (so a literal `+` must be written `%2B`).
///
/// # Errors
/// A sentence: a `%` not followed by two hex digits, or bytes that are
/// not UTF-8 once decoded.
pub fn form_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("a '%' at byte {i} is not followed by two hex digits"))?;
                out.push(byte);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded text is not UTF-8".to_owned())
}
