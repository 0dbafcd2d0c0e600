//! A lake for the tests: datasets of 60 daily partitions, 20 % missing,
//! 5 % truncated, optionally today's stale; collector scripts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use steward_core::reconcile::{compile_all, Dataset, DatasetConfig, DatesConfig, Priority, PriorityRule};
use steward_core::time::UnixMs;

pub const DAY: i64 = 86_400_000;

pub fn now_ms() -> UnixMs {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64
}

pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// Writes 100 bytes at $STEWARD_LAKE_DIR/$STEWARD_TASK_KEY.
pub const COLLECT: &str = "#!/bin/sh\nset -e\nout=\"$STEWARD_LAKE_DIR/$STEWARD_TASK_KEY\"\nmkdir -p \"$(dirname \"$out\")\"\nprintf '%0100d' 0 > \"$out.part\"\nmv \"$out.part\" \"$out\"\necho \"collected $1\"\n";
/// Says it worked; writes nothing.
pub const LIAR: &str = "#!/bin/sh\necho \"all good for $1\"\nexit 0\n";

pub struct Lake {
    pub _tmp: tempfile::TempDir,
    pub lake: PathBuf,
    pub state: PathBuf,
    pub tools: PathBuf,
}

pub fn dataset(name: &str, tools: &Path, collector: &str, from: &str) -> DatasetConfig {
    DatasetConfig {
        name: name.into(),
        key: format!("{name}/{{date:%Y/%m/%d}}.json"),
        dates: Some(DatesConfig { from: from.into(), to: "today".into(), every: Duration::from_secs(86_400) }),
        values: None,
        min_bytes: 50,
        max_age: Duration::from_secs(26 * 3600),
        collector: vec!["sh".into(), tools.join(collector).display().to_string(), "{date}".into()],
        env: BTreeMap::new(),
        min_interval: Duration::ZERO,
        priority: vec![
            PriorityRule { when: "age_days <= 2".into(), is: Priority::Critical },
            PriorityRule { when: "kind == 'truncated'".into(), is: Priority::High },
            PriorityRule { when: "true".into(), is: Priority::Low },
        ],
    }
}

/// What the test put in the lake, per dataset: (missing, truncated, stale).
pub type Planted = BTreeMap<String, (u64, u64, u64)>;

pub fn lake(names: &[(&str, &str)], now: UnixMs) -> (Lake, Vec<Dataset>, Planted) {
    lake_with(names, now, true)
}

/// As [`lake`]; `stale` makes today's partition stale (written 30 h ago).
pub fn lake_with(names: &[(&str, &str)], now: UnixMs, stale_today: bool) -> (Lake, Vec<Dataset>, Planted) {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let state = tmp.path().join("state");
    let tools = tmp.path().join("tools");
    for d in [&lake, &state, &tools] {
        std::fs::create_dir_all(d).unwrap();
    }
    script(&tools, "collect.sh", COLLECT);
    script(&tools, "liar.sh", LIAR);
    let today = now.div_euclid(DAY) * DAY;
    let from = steward_core::time::format_rfc3339(today - 59 * DAY)[..10].to_owned();
    let cfgs: Vec<DatasetConfig> = names.iter().map(|(n, c)| dataset(n, &tools, c, &from)).collect();
    let datasets = compile_all(&cfgs, now).unwrap();
    let mut planted = Planted::new();
    for d in &datasets {
        assert_eq!(d.count(), 60);
        let (mut missing, mut truncated, mut stale) = (0, 0, 0);
        for i in 0..d.count() {
            let path = lake.join(d.key(i));
            if i % 5 == 0 {
                missing += 1;
                continue;
            }
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if i % 20 == 1 {
                truncated += 1;
                std::fs::write(&path, b"{}").unwrap();
                continue;
            }
            std::fs::write(&path, vec![b'x'; 120]).unwrap();
            if !stale_today {
                continue;
            }
            let written = if i == d.count() - 1 {
                // Today's, written 30 hours ago: stale.
                stale += 1;
                now - 30 * 3_600_000
            } else {
                // Written the day after its partition: complete.
                d.end(i).unwrap() + 3_600_000
            };
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_millis(written.min(now) as u64)).unwrap();
        }
        planted.insert(d.name().to_owned(), (missing, truncated, stale));
    }
    (Lake { _tmp: tmp, lake, state, tools }, datasets, planted)
}
