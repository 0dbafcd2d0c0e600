//! The webhook actuator: POSTs each fleet action as JSON to a URL, with a
//! timeout; a 2xx answer is success. Plain HTTP/1.1 over std's TCP (for
//! HTTPS endpoints, use the command actuator with curl).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_core::config::{duration, InvalidValue};
use steward_core::decision::Action;
use steward_core::time::{format_rfc3339, UnixMs};

use crate::actuator::{Actuator, ActuatorError};
use crate::http::{self, Url};

/// The `fleet:` section when `kind: webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST, e.g. `http://scaler.internal:9000/scale`. `http://` only.
    pub url: String,
    /// Longest the whole request may take. Default 10s.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Extra request headers, e.g. `{Authorization: "Bearer ..."}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn parse_url(url: &str) -> Result<Url, String> {
    Url::parse(url).map_err(|e| if url.starts_with("https://") { format!("{e}; use `kind: command` with curl for https") } else { e })
}

impl WebhookConfig {
    /// Checks the config before anything is sent.
    ///
    /// # Errors
    /// The URL or a header is unusable.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        parse_url(&self.url).map_err(|message| InvalidValue { key: "fleet.url".into(), message })?;
        if self.headers.iter().any(|(k, v)| k.is_empty() || k.contains([':', '\r', '\n']) || v.contains(['\r', '\n'])) {
            return Err(InvalidValue {
                key: "fleet.headers".into(),
                message: "names must be non-empty without ':'; no line breaks anywhere".into(),
            });
        }
        if self.timeout.is_zero() {
            return Err(InvalidValue { key: "fleet.timeout".into(), message: "must be above zero".into() });
        }
        Ok(())
    }
}

/// POSTs fleet actions to a URL.
pub struct WebhookActuator {
    cfg: WebhookConfig,
}

impl WebhookActuator {
    /// An actuator posting to `cfg.url`.
    pub fn new(cfg: WebhookConfig) -> Self {
        Self { cfg }
    }

    fn post(&self, body: &[u8]) -> Result<String, ActuatorError> {
        let url = parse_url(&self.cfg.url).map_err(ActuatorError::Refused)?;
        // Outcomes are journaled, signed and shown: never with the query,
        // where a webhook's key often travels.
        let shown = self.cfg.url.split(['?', '#']).next().unwrap_or_default();
        let headers: Vec<(String, String)> = self.cfg.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let answer = http::request("POST", &url, &headers, Some(("application/json", body)), self.cfg.timeout)
            .map_err(|e| ActuatorError::Refused(format!("POST {shown}: {e}")))?;
        if (200..300).contains(&answer.status) {
            Ok(format!("POST {shown} answered {}", answer.status))
        } else {
            Err(ActuatorError::Refused(format!(
                "POST {shown} answered {}: {}",
                answer.status,
                answer.body.chars().take(300).collect::<String>()
            )))
        }
    }
}

impl Actuator for WebhookActuator {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn handles(&self, action: &Action) -> bool {
        action.is_fleet()
    }

    fn apply(&mut self, action: &Action, now: UnixMs) -> Result<String, ActuatorError> {
        if !action.is_fleet() {
            return Err(ActuatorError::Unsupported { actuator: "webhook", action: crate::actuator::action_kind(action) });
        }
        let body = serde_json::json!({"action": action, "sent_at": format_rfc3339(now), "source": "steward"});
        self.post(body.to_string().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn urls_parse_strictly() {
        assert_eq!(parse_url("http://h:81/a/b").unwrap(), Url { host: "h".into(), port: 81, path: "/a/b".into() });
        assert_eq!(parse_url("http://h").unwrap().path, "/");
        assert!(parse_url("https://h/").unwrap_err().contains("https"));
        assert!(parse_url("ftp://h/").is_err());
        assert!(parse_url("http://u:p@h/").is_err());
        assert!(parse_url("http://h:99999/").is_err());
    }

    /// A one-shot server on loopback that answers `status` and hands back the request.
    fn serve_once(status: u16) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/scale", listener.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("\"source\"") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            write!(s, "HTTP/1.1 {status} X\r\nContent-Length: 4\r\n\r\nnope").unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (url, h)
    }

    #[test]
    fn posts_the_action_and_reads_the_status() {
        let (url, h) = serve_once(200);
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_owned(), "Bearer t".to_owned());
        let mut act = WebhookActuator::new(WebhookConfig { url, timeout: Duration::from_secs(5), headers });
        let r = act.apply(&Action::Scale { from: 2, to: 4 }, 0).unwrap();
        assert!(r.contains("200"));
        let req = h.join().unwrap();
        assert!(req.starts_with("POST /scale HTTP/1.1") && req.contains("Authorization: Bearer t"));
        assert!(req.contains(r#""action":{"from":2,"kind":"scale","to":4}"#), "{req}");

        let (url, h) = serve_once(503);
        let mut act = WebhookActuator::new(WebhookConfig { url, timeout: Duration::from_secs(5), headers: BTreeMap::new() });
        let e = act.apply(&Action::Scale { from: 2, to: 4 }, 0).unwrap_err().to_string();
        assert!(e.contains("503") && e.contains("nope"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn an_unreachable_endpoint_fails_within_the_timeout() {
        // A port nothing listens on (bound then dropped).
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut act = WebhookActuator::new(WebhookConfig {
            url: format!("http://127.0.0.1:{port}/"),
            timeout: Duration::from_secs(2),
            headers: BTreeMap::new(),
        });
        assert!(act.apply(&Action::Scale { from: 1, to: 2 }, 0).is_err());
    }
}
