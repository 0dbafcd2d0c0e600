//! deploy/: the systemd unit, the Kubernetes manifests and the Grafana
//! dashboard, each checked against the real binary.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{wait_for, Fixture};

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(path)
}

fn get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// A real daemon on a free port, killed on drop.
struct Daemon {
    child: std::process::Child,
    port: u16,
    _f: Fixture,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon() -> Daemon {
    let f = Fixture::new();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    fs::write(f.tmp.path().join("steward.yaml"), format!("server: {{listen: \"127.0.0.1:{port}\"}}\nauto: {{interval: 1s}}\n")).unwrap();
    let child = f.cmd(&["serve"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    assert!(wait_for(20, || get(port, "/metrics").1.contains("steward_cycles_total 1")), "the daemon came up and cycled");
    Daemon { child, port, _f: f }
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = fs::read_to_string(deploy("steward.service")).unwrap();
    for line in
        ["NoNewPrivileges=yes", "ProtectSystem=strict", "User=steward", "Restart=on-failure", "KillSignal=SIGTERM", "KillMode=mixed"]
    {
        assert!(unit.lines().any(|l| l.trim() == line), "the unit lacks {line}");
    }
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    assert!(exec.ends_with(" serve"), "systemd runs the foreground daemon: {exec}");
    // With the real binary in place, systemd's own checker must accept it.
    if Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join("steward.service");
        fs::write(&local, unit.replace("/usr/local/bin/steward", env!("CARGO_BIN_EXE_steward"))).unwrap();
        let out = Command::new("systemd-analyze").arg("verify").arg(&local).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let complaints: Vec<&str> = text.lines().filter(|l| l.contains("steward.service")).collect();
        assert!(out.status.success() && complaints.is_empty(), "{text}");
    }
}

#[test]
fn manifests_parse_and_their_probes_and_dashboard_queries_are_real() {
    let text = fs::read_to_string(deploy("kubernetes/steward.yaml")).unwrap();
    let docs: Vec<Value> = text.split("\n---\n").map(|d| serde_saphyr::from_str::<Value>(d).unwrap()).collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service"]);
    // Everything the Deployment refers to is defined here.
    let deployment = &docs[3];
    let pod = &deployment["spec"]["template"]["spec"];
    let claim = pod["volumes"].as_array().unwrap().iter().find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str()).unwrap();
    assert_eq!(claim, docs[2]["metadata"]["name"].as_str().unwrap());
    let container = &pod["containers"][0];
    let secret = container["env"].as_array().unwrap().iter().find_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str()).unwrap();
    assert_eq!(secret, docs[1]["metadata"]["name"].as_str().unwrap());
    let mut paths: Vec<String> =
        ["livenessProbe", "readinessProbe"].iter().map(|p| container[p]["httpGet"]["path"].as_str().unwrap().to_owned()).collect();
    paths.push(deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"].as_str().unwrap().to_owned());
    assert_eq!(container["ports"][0]["containerPort"], 8080);

    // The ConfigMap's steward.yaml is a valid config (its token comes from the Secret).
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("steward.yaml");
    fs::write(&cfg, docs[0]["data"]["steward.yaml"].as_str().unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("--config")
        .arg(&cfg)
        .arg("config")
        .env("STEWARD_SERVER_TOKEN", "t")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let d = daemon();
    for path in &paths {
        assert_eq!(get(d.port, path).0, 200, "probe or scrape path {path} answers on the real daemon");
    }
    let exposition = get(d.port, "/metrics").1;
    let dash: Value = serde_json::from_str(&fs::read_to_string(deploy("grafana/steward-dashboard.json")).unwrap()).unwrap();
    let mut names = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("steward_") {
                let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[i + name.len()..];
                names.push(name);
            }
        }
    }
    assert!(names.len() >= 10);
    for name in names {
        assert!(
            exposition.lines().any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{"))),
            "the dashboard queries {name}, which the daemon does not expose"
        );
    }
}
