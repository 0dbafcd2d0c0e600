//! The coordination directory's format and the claim protocol, in one
//! place (`docs/coordination.md` is the same for users).
//!
//! The directory is flat. A file counts when its name is exactly
//! `<prefix>_<id>.json` with one of the prefixes of [`FileKind`]
//! (case-sensitive); anything else, and every name starting with a dot, is
//! not part of the format. An item moves between `work_`, `claimed_`,
//! `completed_` and `failed_` by rename:
//!
//! ```text
//!            claim (rename)             complete (link, then unlink the claim)
//!  work_<id> ─────────────► claimed_<id> ──────────────────────────► completed_<id>
//!      ▲                     │   │   │
//!      └─ retry / requeue ───┘   │   └─ adopt: a completion exists; the leftover claim goes
//!         (attempts + 1)         └─ dead-letter (attempts exhausted, or not a JSON object) ─► failed_<id>
//! ```
//!
//! The source ([`read_record`], [`classify`]), the coordination actuator
//! (requeue, dead-letter, adopt), the supervisor (claims of a dead worker,
//! agent records, temp files) and the built-in worker (claim, complete,
//! retry, release) all call this crate; none of them spells a file name or
//! a transition of its own.
//!
//! **Invariants**, each kept by one function here:
//! - **No work item is ever deleted.** Items change state by `rename()`;
//!   the only removal is of a claim whose completed record exists
//!   ([`CoordinationDir::adopt`]), and a completed record counts only as a
//!   non-empty regular file ([`CoordinationDir::completion_recorded`]).
//! - **Exactly one claimant wins.** A claim is the rename of `work_<id>.json`
//!   to `claimed_<id>.json`, atomic on one filesystem.
//! - **A completion is never replaced.** It is written to a temp file and
//!   published with `link()`, which fails when the record exists
//!   ([`publish`]); the second finisher of an item learns it was a duplicate.
//! - **Readers never see half a file.** Every other write is a temp file in
//!   the same directory and a `rename()` over the destination
//!   ([`write_atomic`]). Temp names start with `.steward-tmp-<pid>-`, never
//!   match the format, and a dead writer's can be swept
//!   ([`CoordinationDir::remove_temp_files_of`]).
//! - **Attempts only grow.** A failed or stale claim goes back with
//!   `attempts + 1`, rewritten in place before the rename, so a crash
//!   between the two steps leaves the claim with its attempt counted; at
//!   `max_attempts` it is dead-lettered instead.
//! - **Reads are bounded and never blocked.** Every file is read only as a
//!   regular file, opened without blocking, up to `coordination.max_item_bytes`
//!   ([`read_record`], [`DEFAULT_MAX_ITEM_BYTES`]); a transition never
//!   follows a symbolic link ([`Links::Refuse`]).
//! - **Nothing is written through a planted name.** Temp files have
//!   unpredictable names and are created with `O_CREAT | O_EXCL |
//!   O_NOFOLLOW` ([`create_new`]); an item that is not a regular file is
//!   never claimed.

#![warn(missing_docs)]

mod agent;
mod error;
mod io;
mod name;
mod transition;

pub use agent::AgentStatus;
pub use error::ProtocolError;
pub use io::{
    create_new, create_new_mode, kind_of, open_append, publish, publish_mode, read_record, unpredictable, write_atomic, Durability, Links,
    RecordError, DEFAULT_MAX_ITEM_BYTES,
};
pub use name::{agent_file_name, classify, file_name, is_temp_name, temp_prefix, valid_id, FileKind, TEMP_PREFIX};
pub use transition::{
    completion_recorded, Census, Claim, Completion, CoordinationDir, Finished, ItemOutcome, Pending, FUTURE_TOLERANCE_MS,
};
