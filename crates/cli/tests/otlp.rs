//! Spans over OTLP/HTTP, decoded by opentelemetry-proto on an in-process receiver.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

mod common;
use common::Fixture;

/// Accepts OTLP/HTTP posts on loopback and hands their bodies over.
fn receiver() -> (u16, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            // Read the head, then exactly Content-Length bytes of body.
            let (head, body) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                        .unwrap_or(0);
                    let mut body = buf[i + 4..].to_vec();
                    while body.len() < len {
                        let n = s.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    break (head, body);
                }
            };
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}");
            let _ = tx.send((head, body));
        }
    });
    (port, rx)
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> &'a V {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

#[test]
fn a_cycle_exports_one_trace_with_the_four_span_kinds() {
    let f = Fixture::new();
    f.write("agent_1.json", r#"{"id":"agent_1","status":"active"}"#);
    for i in 0..3 {
        f.write(&format!("work_{i}.json"), "{}");
    }
    // A stale claim: the cycle executes a coordination_improve decision.
    f.write("claimed_s1.json", r#"{"id":"s1","claimed_by":"ghost","claimed_at":"2001-01-01T00:00:00Z"}"#);
    let (port, rx) = receiver();
    let out = f
        .cmd(&["execute", "--format", "json"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("OTEL_SERVICE_NAME", "steward-test")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (head, body) = rx.recv_timeout(Duration::from_secs(10)).expect("the cycle's spans arrive");
    assert!(head.starts_with("POST /v1/traces "), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/x-protobuf"), "{head}");

    let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    let rs = &req.resource_spans[0];
    let res = &rs.resource.as_ref().unwrap().attributes;
    assert!(matches!(attr(res, "service.name"), V::StringValue(s) if s == "steward-test"));
    assert!(matches!(attr(res, "deployment.environment"), V::StringValue(s) if s == "test"));
    let spans = &rs.scope_spans[0].spans;
    let trace = &spans[0].trace_id;
    assert_eq!(trace.len(), 16);
    assert!(spans.iter().all(|s| &s.trace_id == trace), "one trace per cycle");

    let root = spans.iter().find(|s| s.name == "swarmsh.autonomous.cycle_complete").unwrap();
    assert!(root.parent_span_id.is_empty());
    assert!(matches!(attr(&root.attributes, "cycle_duration_ms"), V::IntValue(_)));
    assert!(matches!(attr(&root.attributes, "decisions_executed"), V::IntValue(n) if *n >= 1));
    assert!(matches!(attr(&root.attributes, "decisions_failed"), V::IntValue(0)));
    assert!(matches!(attr(&root.attributes, "system_improvement"), V::BoolValue(false)), "no previous cycle to improve on");

    let child = |name: &str| {
        let s = spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(s.parent_span_id, root.span_id, "{name} is a child of the cycle");
        s
    };
    let analysis = child("swarmsh.autonomous.system_analysis");
    assert!(matches!(attr(&analysis.attributes, "completion_rate"), V::DoubleValue(_)));
    assert!(matches!(attr(&analysis.attributes, "active_agents"), V::IntValue(1)));
    assert!(matches!(attr(&analysis.attributes, "work_queue_size"), V::IntValue(3)));
    assert!(matches!(attr(&analysis.attributes, "health_score"), V::DoubleValue(x) if (0.0..=1.0).contains(x)));
    assert!(matches!(attr(&analysis.attributes, "health_state"), V::StringValue(_)));
    let generation = child("swarmsh.autonomous.decision_generation");
    let V::IntValue(count) = attr(&generation.attributes, "decision_count") else { panic!("decision_count is an int") };
    assert!(matches!(attr(&generation.attributes, "highest_priority"), V::IntValue(_)));
    let V::ArrayValue(types) = attr(&generation.attributes, "decision_types") else { panic!("decision_types is an array") };
    assert_eq!(types.values.len() as i64, *count);
    assert!(types.values.iter().all(|v| matches!(v.value, Some(V::StringValue(_)))));

    let executions: Vec<_> = spans.iter().filter(|s| s.name == "swarmsh.autonomous.decision_execution").collect();
    assert_eq!(executions.len() as i64, *count, "one execution span per decision");
    for e in &executions {
        assert_eq!(e.parent_span_id, root.span_id);
        assert!(matches!(attr(&e.attributes, "decision_id"), V::StringValue(_)));
        assert!(matches!(attr(&e.attributes, "decision_type"), V::StringValue(_)));
        assert!(matches!(attr(&e.attributes, "confidence"), V::DoubleValue(_)));
    }
    assert!(executions.iter().any(|e| matches!(attr(&e.attributes, "execution_result"), V::StringValue(r) if r == "executed")));
}
