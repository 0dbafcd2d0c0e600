//! The embedding example runs three cycles against its own HTTP queue and
//! scales through its own actuator, with everything journaled.

use std::process::Command;

#[test]
fn the_embedded_loop_scales_a_custom_fleet_from_a_custom_source() {
    let tmp = std::env::temp_dir().join(format!("steward-embed-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_embed")).arg(&tmp).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["cycles"], 3, "{stdout}");
    assert_eq!(summary["journal_cycles"], 3, "every cycle is in the journal: {stdout}");
    // 120 items at 10 per agent: the adaptive policy asks for more than the one replica it found.
    assert!(summary["replicas"].as_u64().unwrap() > 1, "{stdout}");
    assert!(summary["scale_actions"].as_u64().unwrap() >= 1, "{stdout}");
    assert!(summary["decisions"].as_u64().unwrap() >= 1, "{stdout}");
    assert!(stdout.contains("replicas 1 → "), "the custom actuator did the scaling: {stdout}");
    let _ = std::fs::remove_dir_all(&tmp);
}
