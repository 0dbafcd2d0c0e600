//! `MANIFEST.json`: what an archive holds, each file with its size and
//! SHA-256 (docs/backup.md).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::{classify, EntryKind};

/// The archive format this steward writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The `format` field of every manifest: what kind of archive this is.
pub const FORMAT_NAME: &str = "steward-backup";

/// The manifest of an archive (its last entry, `MANIFEST.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `steward-backup`.
    pub format: String,
    /// The archive format's version ([`FORMAT_VERSION`]); a newer one is
    /// refused.
    pub format_version: u32,
    /// When the backup was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The version of the steward that took it.
    pub steward_version: String,
    /// Where the files came from (for people; a restore writes where it is
    /// told, never where an archive says).
    pub source: Source,
    /// Every file in the archive but the manifest, in archive order.
    pub entries: Vec<ManifestEntry>,
}

/// Where a backup's files came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The state directory.
    pub state_dir: String,
    /// The coordination directory.
    pub coordination_dir: String,
    /// The config file, if there was one.
    pub config_file: Option<String>,
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Its path in the archive: `state/journal.db`, `state/fleet.json`,
    /// `config/steward.yaml`, `coordination/work_1.json`, ...
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Its permission bits when it was copied (restored without the group
    /// and others' write bits; `audit.key` always 0600).
    pub mode: u32,
}

/// Files in an archive, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// 1 when the journal is in it, else 0.
    pub journal: usize,
    /// Other files of the state directory (`fleet.json`, `audit.key`, ...).
    pub state: usize,
    /// 1 when the config file is in it, else 0.
    pub config: usize,
    /// Files of the coordination directory.
    pub coordination: usize,
    /// Bytes of all of them (the manifest not counted).
    pub bytes: u64,
}

impl Counts {
    /// The counts of a manifest's entries.
    pub fn of(manifest: &Manifest) -> Self {
        let mut counts = Self::default();
        for entry in &manifest.entries {
            counts.bytes += entry.size;
            match classify(&entry.path) {
                Ok(EntryKind::Journal) => counts.journal += 1,
                Ok(EntryKind::State) => counts.state += 1,
                Ok(EntryKind::Config) => counts.config += 1,
                Ok(EntryKind::Coordination) => counts.coordination += 1,
                Ok(EntryKind::Manifest) | Err(_) => {}
            }
        }
        counts
    }
}

/// A running SHA-256 and byte count.
#[derive(Default)]
pub(crate) struct Hashing {
    hasher: Sha256,
    len: u64,
}

impl Hashing {
    /// Adds bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The byte count and the hex digest.
    pub(crate) fn finish(self) -> (u64, String) {
        let digest = self.hasher.finalize();
        (self.len, digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// The size and SHA-256 of some bytes.
pub(crate) fn sha256(bytes: &[u8]) -> (u64, String) {
    let mut h = Hashing::default();
    h.update(bytes);
    h.finish()
}
