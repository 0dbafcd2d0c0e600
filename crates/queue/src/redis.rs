//! Redis Streams with a consumer group (and lists, depth only): see the
//! crate doc for the protocol.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::resp::{Cmd, Conn, Reply};
use crate::url::{RedisKind, RedisUrl};
use crate::{item_body, Census, Consumer, Fate, Item, PendingClaim, QueueError, Recovery, WorkQueue, REQUEUE_CONSUMER};

/// Acknowledges an entry and, only if it was still pending (this call took
/// it off the pending list), adds its copy: a requeue, a retry or a dead
/// letter happens once, whoever races it (a slow worker's `fail`,
/// steward's recovery). KEYS: the stream, where the copy goes. ARGV: the
/// group, the entry id, then the copy's fields.
const ACK_THEN_ADD: &str = "if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then \
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3)) return 1 end return 0";

/// A Redis queue. Connects on first use and after any connection error.
pub struct RedisQueue {
    url: RedisUrl,
    timeout: Duration,
    conn: Option<Conn>,
}

/// Milliseconds since the Unix epoch, for completion records.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An entry's fields, from `[id, [k, v, k, v...]]`.
struct Entry {
    entry_id: String,
    fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn parse(r: &Reply) -> Option<Self> {
        let parts = r.items();
        let entry_id = parts.first()?.text()?;
        // A deleted entry comes back with nil fields.
        let fields = parts
            .get(1)
            .map(|f| {
                f.items()
                    .chunks(2)
                    .filter_map(|kv| {
                        Some((
                            kv[0].text()?,
                            kv.get(1).and_then(|v| match v {
                                Reply::Bulk(Some(b)) => Some(b.clone()),
                                _ => None,
                            })?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self { entry_id, fields })
    }

    fn get(&self, k: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_slice())
    }

    fn text(&self, k: &str) -> Option<String> {
        self.get(k).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn item(&self) -> Item {
        let id = self.text("id").unwrap_or_else(|| self.entry_id.clone());
        let payload = self.text("payload");
        Item {
            claim: self.entry_id.clone(),
            body: item_body(&id, payload.as_deref()),
            id,
            attempts: self.text("attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
            max_attempts: self.text("max_attempts").and_then(|a| a.parse().ok()),
            completed: false,
        }
    }
}

impl RedisQueue {
    /// A queue on this URL; nothing is connected yet.
    pub fn new(url: RedisUrl, timeout: Duration) -> Self {
        Self { url, timeout, conn: None }
    }

    fn names(&self) -> Result<(&str, &str), QueueError> {
        match &self.url.kind {
            RedisKind::Stream { stream, group } => Ok((stream, group)),
            RedisKind::List { list } => Err(QueueError::Unsupported(format!(
                "the list {list} has no claims steward could work or recover: use a stream with a consumer group"
            ))),
        }
    }

    fn completed_key(stream: &str) -> String {
        format!("{stream}:completed")
    }

    fn dead_key(stream: &str) -> String {
        format!("{stream}:dead")
    }

    /// Runs `f` on a connection, dropping the connection after a
    /// connection error so the next call reconnects.
    fn with<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T, QueueError>) -> Result<T, QueueError> {
        if self.conn.is_none() {
            self.conn = Some(Conn::open(&self.url, self.timeout)?);
        }
        let Some(conn) = self.conn.as_mut() else { return Err(QueueError::Unsupported("no connection".into())) };
        let r = f(conn);
        if r.as_ref().is_err_and(QueueError::is_connection) {
            self.conn = None;
        }
        r
    }

    /// Sends commands between `MULTI` and `EXEC`; returns `EXEC`'s replies.
    fn transaction(conn: &mut Conn, cmds: Vec<Cmd>) -> Result<Vec<Reply>, QueueError> {
        let n = cmds.len();
        let mut all = Vec::with_capacity(n + 2);
        all.push(Cmd::new("MULTI"));
        all.extend(cmds);
        all.push(Cmd::new("EXEC"));
        let mut replies = conn.pipeline(&all)?;
        let exec = replies.pop().unwrap_or(Reply::Array(None)).ok("EXEC")?;
        // A command refused while queued aborts the transaction: say which.
        if let Some(Reply::Error(e)) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
            return Err(QueueError::Command { command: "MULTI".into(), message: e.clone() });
        }
        match exec {
            Reply::Array(Some(v)) if v.len() == n => {
                if let Some(Reply::Error(e)) = v.iter().find(|r| matches!(r, Reply::Error(_))) {
                    return Err(QueueError::Command { command: "EXEC".into(), message: e.clone() });
                }
                Ok(v)
            }
            other => Err(QueueError::Protocol { target: conn.addr().to_owned(), why: format!("EXEC answered {other:?}") }),
        }
    }

    /// Requeues (or dead-letters) one entry and acknowledges it, atomically
    /// and only if it was still pending; `Fate::Gone` otherwise.
    fn requeue_one(conn: &mut Conn, stream: &str, group: &str, e: &Entry, reason: &str, max_attempts: u32) -> Result<Fate, QueueError> {
        let item = e.item();
        let attempts = item.attempts.saturating_add(1);
        let limit = item.max_attempts.unwrap_or(max_attempts).max(1);
        let dead = attempts >= limit;
        let target = if dead { Self::dead_key(stream) } else { stream.to_owned() };
        let mut cmd = Cmd::new("EVAL").arg(ACK_THEN_ADD).num(2).arg(stream).arg(target).arg(group).arg(&e.entry_id).arg("id").arg(&item.id);
        if let Some(p) = e.get("payload") {
            cmd = cmd.arg("payload").arg(p);
        }
        cmd = cmd.arg("attempts").num(attempts);
        if let Some(m) = item.max_attempts {
            cmd = cmd.arg("max_attempts").num(m);
        }
        cmd = cmd.arg("last_error").arg(reason);
        Ok(match conn.call(&cmd)?.ok("EVAL")?.int() {
            Some(1) if dead => Fate::DeadLettered,
            Some(1) => Fate::Requeued,
            _ => Fate::Gone,
        })
    }

    /// Requeues entries `steward-requeue` now holds: completed ones are
    /// only acknowledged, the others requeued or dead-lettered. Its consumer
    /// is kept: deleting it would drop any entry it still holds.
    fn requeue_entries(conn: &mut Conn, stream: &str, group: &str, entries: &[Entry], max_attempts: u32) -> Result<Recovery, QueueError> {
        let mut rec = Recovery::default();
        if entries.is_empty() {
            return Ok(rec);
        }
        let ids: Vec<String> = entries.iter().map(|e| e.item().id).collect();
        let done = Self::completed_flags(conn, stream, &ids)?;
        for (e, done) in entries.iter().zip(done) {
            let fate = if done {
                conn.call(&Cmd::new("XACK").arg(stream).arg(group).arg(&e.entry_id))?.ok("XACK")?;
                Fate::AlreadyCompleted
            } else {
                Self::requeue_one(conn, stream, group, e, "its claim went stale: requeued by steward", max_attempts)?
            };
            rec.count(fate);
        }
        Ok(rec)
    }

    /// Takes the named entries for `steward-requeue` if idle for at least
    /// `min_idle` ms, then requeues them (deleted ones are acknowledged).
    fn claim_and_requeue(
        conn: &mut Conn,
        stream: &str,
        group: &str,
        ids: &[String],
        min_idle: u64,
        max_attempts: u32,
    ) -> Result<Recovery, QueueError> {
        let mut cmd = Cmd::new("XCLAIM").arg(stream).arg(group).arg(REQUEUE_CONSUMER).num(min_idle);
        for id in ids {
            cmd = cmd.arg(id);
        }
        let taken: Vec<Entry> = conn.call(&cmd)?.ok("XCLAIM")?.items().iter().filter_map(Entry::parse).collect();
        // Claims not taken were finished, or touched since: not stale.
        let mut rec = Recovery { gone: (ids.len() - taken.len().min(ids.len())) as u64, ..Recovery::default() };
        for e in taken.iter().filter(|e| e.fields.is_empty()) {
            conn.call(&Cmd::new("XACK").arg(stream).arg(group).arg(&e.entry_id))?.ok("XACK")?;
            rec.gone += 1;
        }
        let live: Vec<Entry> = taken.into_iter().filter(|e| !e.fields.is_empty()).collect();
        rec.add(Self::requeue_entries(conn, stream, group, &live, max_attempts)?);
        Ok(rec)
    }

    fn completed_flags(conn: &mut Conn, stream: &str, ids: &[String]) -> Result<Vec<bool>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = Cmd::new("HMGET").arg(Self::completed_key(stream));
        for id in ids {
            cmd = cmd.arg(id);
        }
        let r = conn.call(&cmd)?.ok("HMGET")?;
        Ok(r.items().iter().map(|v| !v.is_nil()).collect())
    }

    fn list_census(conn: &mut Conn, list: &str) -> Result<Census, QueueError> {
        let depth = conn.call(&Cmd::new("LLEN").arg(list))?.ok("LLEN")?.int().unwrap_or(0);
        Ok(Census { depth: u64::try_from(depth).unwrap_or(0), ..Census::default() })
    }
}

impl WorkQueue for RedisQueue {
    fn target(&self) -> String {
        self.url.to_string()
    }

    fn census(&mut self, max_claims: usize) -> Result<Census, QueueError> {
        let kind = self.url.kind.clone();
        let (stream, group) = match &kind {
            RedisKind::List { list } => return self.with(|c| Self::list_census(c, list)),
            RedisKind::Stream { stream, group } => (stream.as_str(), group.as_str()),
        };
        self.with(|conn| {
            let replies = conn.pipeline(&[
                Cmd::new("XLEN").arg(stream),
                Cmd::new("XINFO").arg("GROUPS").arg(stream),
                Cmd::new("XINFO").arg("CONSUMERS").arg(stream).arg(group),
                Cmd::new("XPENDING").arg(stream).arg(group).arg("-").arg("+").num(max_claims.max(1)),
                Cmd::new("HLEN").arg(Self::completed_key(stream)),
                Cmd::new("XLEN").arg(Self::dead_key(stream)),
            ])?;
            let [xlen, groups, consumers, pending, completed, dead] = <[Reply; 6]>::try_from(replies)
                .map_err(|_| QueueError::Protocol { target: conn.addr().to_owned(), why: "fewer replies than commands".into() })?;
            let mut census = Census {
                completed: completed.ok("HLEN")?.int().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                failed: dead.ok("XLEN")?.int().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                ..Census::default()
            };
            let xlen = u64::try_from(xlen.ok("XLEN")?.int().unwrap_or(0)).unwrap_or(0);
            let group_info = match groups {
                Reply::Error(e) if e.contains("no such key") => {
                    census.warnings.push(format!("the stream {stream} does not exist yet: nothing was ever queued"));
                    return Ok(census);
                }
                g => g.ok("XINFO GROUPS")?,
            };
            let Some(g) = group_info.items().iter().find(|g| g.field("name").and_then(Reply::text).as_deref() == Some(group)) else {
                census.depth = xlen;
                census.warnings.push(format!("the consumer group {group} does not exist yet: every entry counts as waiting"));
                return Ok(census);
            };
            census.in_flight = g.field("pending").and_then(Reply::int).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            census.depth = match g.field("lag").and_then(Reply::int) {
                Some(lag) => u64::try_from(lag).unwrap_or(0),
                None => {
                    // Redis cannot tell the lag after deletions or trims past
                    // the group's position: the entries after it are counted.
                    let last = g.field("last-delivered-id").and_then(Reply::text).unwrap_or_else(|| "0-0".into());
                    let r = conn
                        .call(&Cmd::new("XRANGE").arg(stream).arg(format!("({last}")).arg("+").arg("COUNT").num(1_000_000))?
                        .ok("XRANGE")?;
                    census.warnings.push(format!(
                        "Redis cannot tell the group {group}'s lag (entries were deleted): counted the entries after its position"
                    ));
                    r.items().len() as u64
                }
            };
            for c in consumers.ok("XINFO CONSUMERS")?.items() {
                let name = c.field("name").and_then(Reply::text).unwrap_or_default();
                if name == REQUEUE_CONSUMER {
                    continue;
                }
                census.consumers.push(Consumer {
                    name,
                    pending: c.field("pending").and_then(Reply::int).and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    idle_ms: c.field("idle").and_then(Reply::int).unwrap_or(0),
                });
            }
            for p in pending.ok("XPENDING")?.items() {
                let f = p.items();
                let (Some(claim), Some(consumer)) = (f.first().and_then(Reply::text), f.get(1).and_then(Reply::text)) else { continue };
                census.claims.push(PendingClaim {
                    claim,
                    consumer: Some(consumer),
                    idle_ms: f.get(2).and_then(Reply::int).unwrap_or(0),
                    // Deliveries within this entry's life; requeues count in the item's own field.
                    attempts: f.get(3).and_then(Reply::int).map_or(0, |d| u32::try_from(d.saturating_sub(1)).unwrap_or(u32::MAX)),
                });
            }
            // Oldest first by how long they have been idle.
            census.claims.sort_by_key(|c| std::cmp::Reverse(c.idle_ms));
            if census.in_flight > census.claims.len() as u64 {
                census.warnings.push(format!(
                    "{} items are claimed; only the first {} by id were examined",
                    census.in_flight,
                    census.claims.len()
                ));
            }
            Ok(census)
        })
    }

    fn requeue(&mut self, claims: &[String], min_idle: Duration, max_attempts: u32) -> Result<Recovery, QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        let min_idle = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        self.with(|conn| {
            let mut rec = Recovery::default();
            for chunk in claims.chunks(100) {
                rec.add(Self::claim_and_requeue(conn, &stream, &group, chunk, min_idle, max_attempts)?);
            }
            Ok(rec)
        })
    }

    fn requeue_idle(&mut self, min_idle: Duration, max_attempts: u32) -> Result<Recovery, QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        let min_idle = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        self.with(|conn| {
            let mut rec = Recovery::default();
            let mut cursor = "0-0".to_owned();
            loop {
                let r = conn
                    .call(
                        &Cmd::new("XAUTOCLAIM")
                            .arg(&stream)
                            .arg(&group)
                            .arg(REQUEUE_CONSUMER)
                            .num(min_idle)
                            .arg(&cursor)
                            .arg("COUNT")
                            .num(100),
                    )?
                    .ok("XAUTOCLAIM")?;
                let parts = r.items();
                let next = parts.first().and_then(Reply::text).unwrap_or_else(|| "0-0".into());
                let entries: Vec<Entry> = parts.get(1).map(|e| e.items().iter().filter_map(Entry::parse).collect()).unwrap_or_default();
                // Entries deleted from the stream were dropped from the pending list by XAUTOCLAIM.
                rec.gone += parts.get(2).map_or(0, |d| d.items().len() as u64);
                rec.add(Self::requeue_entries(conn, &stream, &group, &entries, max_attempts)?);
                if next == "0-0" {
                    break;
                }
                cursor = next;
            }
            Ok(rec)
        })
    }

    fn prepare(&mut self) -> Result<(), QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        self.with(|conn| match conn.call(&Cmd::new("XGROUP").arg("CREATE").arg(&stream).arg(&group).arg("0").arg("MKSTREAM"))? {
            Reply::Error(e) if e.starts_with("BUSYGROUP") => Ok(()),
            r => r.ok("XGROUP CREATE").map(|_| ()),
        })
    }

    fn claim(&mut self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Item>, QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        let block = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let timeout = self.timeout;
        self.with(|conn| {
            let cmd = Cmd::new("XREADGROUP").arg("GROUP").arg(&group).arg(consumer).arg("COUNT").num(max.max(1));
            let cmd = if block > 0 { cmd.arg("BLOCK").num(block) } else { cmd };
            let cmd = cmd.arg("STREAMS").arg(&stream).arg(">");
            conn.set_read_timeout(timeout + wait)?;
            let r = conn.call(&cmd);
            conn.reset_read_timeout()?;
            let r = match r? {
                // The group was removed (or never made): make it and try next time.
                Reply::Error(e) if e.starts_with("NOGROUP") => {
                    conn.call(&Cmd::new("XGROUP").arg("CREATE").arg(&stream).arg(&group).arg("0").arg("MKSTREAM"))?;
                    return Ok(Vec::new());
                }
                r => r.ok("XREADGROUP")?,
            };
            let entries: Vec<Entry> = r
                .items()
                .iter()
                .flat_map(|s| s.items().get(1).map(|e| e.items().iter().filter_map(Entry::parse).collect::<Vec<_>>()).unwrap_or_default())
                .collect();
            let mut items: Vec<Item> = entries.iter().map(Entry::item).collect();
            let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
            for (item, done) in items.iter_mut().zip(Self::completed_flags(conn, &stream, &ids)?) {
                item.completed = done;
            }
            Ok(items)
        })
    }

    fn complete(&mut self, _consumer: &str, items: &[&Item], results: &[Option<Value>]) -> Result<Vec<bool>, QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let key = Self::completed_key(&stream);
        let now = now_ms();
        let mut cmds = Vec::with_capacity(items.len() + 1);
        for (i, item) in items.iter().enumerate() {
            // The completion record: when, and the handler's result if it gave one.
            let record = match results.get(i).and_then(Option::as_ref) {
                Some(v) => serde_json::json!({"completed_at": now, "result": v}).to_string(),
                None => now.to_string(),
            };
            cmds.push(Cmd::new("HSETNX").arg(&key).arg(&item.id).arg(record));
        }
        let mut ack = Cmd::new("XACK").arg(&stream).arg(&group);
        for item in items {
            ack = ack.arg(&item.claim);
        }
        cmds.push(ack);
        self.with(|conn| {
            let r = Self::transaction(conn, cmds)?;
            Ok(r.iter().take(items.len()).map(|v| v.int() == Some(1)).collect())
        })
    }

    fn fail(&mut self, _consumer: &str, item: &Item, reason: &str, max_attempts: u32) -> Result<Fate, QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        self.with(|conn| {
            // The entry as stored (the worker's copy may have been changed by its handler).
            let r = conn.call(&Cmd::new("XRANGE").arg(&stream).arg(&item.claim).arg(&item.claim))?.ok("XRANGE")?;
            let Some(e) = r.items().first().and_then(Entry::parse) else {
                conn.call(&Cmd::new("XACK").arg(&stream).arg(&group).arg(&item.claim))?;
                return Ok(Fate::Gone);
            };
            Self::requeue_one(conn, &stream, &group, &e, reason, max_attempts)
        })
    }

    fn release(&mut self, _consumer: &str, item: &Item) -> Result<(), QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        self.with(|conn| {
            let r = conn.call(&Cmd::new("XRANGE").arg(&stream).arg(&item.claim).arg(&item.claim))?.ok("XRANGE")?;
            let Some(e) = r.items().first().and_then(Entry::parse) else { return Ok(()) };
            // A copy with the same attempts, once, if still pending.
            let mut cmd = Cmd::new("EVAL").arg(ACK_THEN_ADD).num(2).arg(&stream).arg(&stream).arg(&group).arg(&e.entry_id);
            for (k, v) in &e.fields {
                cmd = cmd.arg(k).arg(v);
            }
            if e.get("id").is_none() {
                cmd = cmd.arg("id").arg(&e.entry_id);
            }
            conn.call(&cmd)?.ok("EVAL")?;
            Ok(())
        })
    }

    fn heartbeat(&mut self, consumer: &str, claims: &[String]) -> Result<(), QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        self.with(|conn| {
            if claims.is_empty() {
                // The worker's own reads (`XREADGROUP … >`, at least once a
                // second while idle) mark it seen; reading its history
                // would refresh an orphaned claim and count a delivery.
                return Ok(());
            }
            // Claiming its own entries again resets their idle time (and the
            // consumer's): the claims stay fresh while the work goes on.
            let mut cmd = Cmd::new("XCLAIM").arg(&stream).arg(&group).arg(consumer).num(0);
            for c in claims {
                cmd = cmd.arg(c);
            }
            conn.call(&cmd.arg("JUSTID"))?.ok("XCLAIM")?;
            Ok(())
        })
    }

    fn requeue_consumer(&mut self, consumer: &str, max_attempts: u32) -> Result<Recovery, QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        let rec = self.with(|conn| {
            let mut rec = Recovery::default();
            loop {
                let r =
                    conn.call(&Cmd::new("XPENDING").arg(&stream).arg(&group).arg("-").arg("+").num(100).arg(consumer))?.ok("XPENDING")?;
                let ids: Vec<String> = r.items().iter().filter_map(|p| p.items().first().and_then(Reply::text)).collect();
                if ids.is_empty() {
                    break;
                }
                rec.add(Self::claim_and_requeue(conn, &stream, &group, &ids, 0, max_attempts)?);
                if ids.len() < 100 {
                    break;
                }
            }
            Ok(rec)
        })?;
        self.leave(consumer)?;
        Ok(rec)
    }

    fn leave(&mut self, consumer: &str) -> Result<(), QueueError> {
        let (stream, group) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        self.with(|conn| {
            // Only a consumer that holds nothing is removed: DELCONSUMER
            // would drop its pending entries with it.
            let r = conn.call(&Cmd::new("XINFO").arg("CONSUMERS").arg(&stream).arg(&group))?;
            let pending = r
                .items()
                .iter()
                .find(|c| c.field("name").and_then(Reply::text).as_deref() == Some(consumer))
                .and_then(|c| c.field("pending").and_then(Reply::int));
            if pending == Some(0) {
                conn.call(&Cmd::new("XGROUP").arg("DELCONSUMER").arg(&stream).arg(&group).arg(consumer))?;
            }
            Ok(())
        })
    }

    fn push(&mut self, items: &[Map<String, Value>]) -> Result<(), QueueError> {
        let (stream, _) = self.names().map(|(s, g)| (s.to_owned(), g.to_owned()))?;
        self.with(|conn| {
            for chunk in items.chunks(1000) {
                let cmds: Vec<Cmd> = chunk
                    .iter()
                    .map(|item| {
                        let mut add = Cmd::new("XADD").arg(&stream).arg("*");
                        if let Some(id) = item.get("id") {
                            add = add.arg("id").arg(id.as_str().map_or_else(|| id.to_string(), str::to_owned));
                        }
                        add.arg("payload").arg(Value::Object(item.clone()).to_string())
                    })
                    .collect();
                for r in conn.pipeline(&cmds)? {
                    r.ok("XADD")?;
                }
            }
            Ok(())
        })
    }
}
