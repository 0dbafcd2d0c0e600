//! Fuzzing the OTLP decoders (issue 9): any body, protobuf or JSON, spans
//! or metrics, is counted or refused with a message, never a panic.
//!
//! CI runs a few hundred cases per property. For a long run:
//! `STEWARD_FUZZ_CASES=2000000 cargo test --release -p steward-otlp --test fuzz_decode -- --nocapture`

use proptest::prelude::*;
use prost::Message as _;
use steward_otlp::{count, ExportTraceServiceRequest, KeyValue, ResourceSpans, ScopeSpans, Span, Value};

fn cases() -> u32 {
    std::env::var("STEWARD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// A valid trace export with `n` spans, as protobuf.
fn valid_protobuf(n: usize, name: &str) -> Vec<u8> {
    let span = |i: usize| Span {
        name: format!("{name}{i}"),
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        attributes: vec![KeyValue::new("k", Value::Int(i as i64))],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans { scope: None, spans: (0..n).map(span).collect() }],
        }],
    }
    .encode_to_vec()
}

/// Flips, truncates, duplicates and inserts bytes of a valid body.
fn mutate(mut body: Vec<u8>, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, at, byte) in edits {
        if body.is_empty() {
            body.push(byte);
            continue;
        }
        let at = at % body.len();
        match op % 4 {
            0 => body[at] ^= byte,
            1 => body.truncate(at),
            2 => body.insert(at, byte),
            _ => {
                let tail = body[at..].to_vec();
                body.extend_from_slice(&tail);
            }
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048), json: bool, traces: bool) {
        let _ = count(&body, json, traces);
    }

    #[test]
    fn mutated_protobuf_is_counted_or_refused(n in 0usize..20, edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..8), traces: bool) {
        let body = mutate(valid_protobuf(n, "s"), &edits);
        if let Ok(spans) = count(&body, false, traces) {
            // Every span costs at least a few bytes on the wire.
            prop_assert!(spans <= body.len() as u64);
        }
    }

    #[test]
    fn mutated_json_is_counted_or_refused(n in 0usize..20, edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..8), traces: bool) {
        let (outer, inner, leaf) = if traces { ("resourceSpans", "scopeSpans", "spans") } else { ("resourceMetrics", "scopeMetrics", "metrics") };
        let items: Vec<String> = (0..n).map(|i| format!("{{\"name\":\"x{i}\"}}")).collect();
        let body = format!("{{\"{outer}\":[{{\"{inner}\":[{{\"{leaf}\":[{}]}}]}}]}}", items.join(",")).into_bytes();
        if edits.is_empty() {
            prop_assert_eq!(count(&body, true, traces), Ok(n as u64));
        }
        let mutated = mutate(body, &edits);
        if let Ok(spans) = count(&mutated, true, traces) {
            // Each counted item is at least two bytes of the body.
            prop_assert!(spans <= mutated.len() as u64);
        }
    }

    #[test]
    fn deeply_nested_json_is_refused_not_a_stack_overflow(depth in 1usize..100_000, traces: bool) {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let _ = count(body.as_bytes(), true, traces);
    }
}
