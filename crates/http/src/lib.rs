//! The one small HTTP/1.1 client steward uses for its few plain-http calls:
//! webhooks, OTLP span export, Alertmanager notifications, asking its own
//! daemon for /health, and Prometheus's query API.
//!
//! std's TCP, `Connection: close`, no TLS. The whole exchange (connecting,
//! sending, reading the answer) happens within one timeout; the answer is
//! read by its framing (`Content-Length`, chunked, or up to the close) and
//! refused when its body is larger than [`MAX_BODY_BYTES`].
//!
//! **API boundary:** no dependency beyond std, so any crate may use it
//! (sources read Prometheus with it, actuators post webhooks).

#![warn(missing_docs)]

mod client;
mod url;

#[cfg(test)]
mod tests;

pub use client::{get, request, Response, MAX_BODY_BYTES};
pub use url::{form_decode, percent_encode, Url};
