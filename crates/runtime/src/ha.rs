//! High availability: one leader among replicas, by a lease on PostgreSQL,
//! and a fencing token on everything the leader does.
//!
//! The lease is one row per target in `steward_lease` (created when
//! missing): its holder, its expiry, and a token that grows by one at
//! every change of holder. A replica that holds the lease renews it every
//! `renew`; the others try to take it every `renew` once it has expired.
//!
//! A leader counts itself leader only until the time it sent its last
//! successful renewal plus the lease, by its own monotonic clock: a leader
//! paused (SIGSTOP, a stalled VM) past its lease wakes up no longer
//! leader, before it could ask anyone. On top of that, every action is
//! fenced: just before it runs, the token is checked against the row
//! (`holder`, `token`, `expires_at > now()`), and an action whose token is
//! no longer current is refused and journaled as such. A stop releases the
//! lease at once, so a standby takes over without waiting for the expiry.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;
use serde::{Deserialize, Serialize};
use steward_core::config::InvalidValue;

/// The `ha:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// The PostgreSQL database that holds the lease (`postgres://USER@HOST/DB`;
    /// password in the URL or `PGPASSWORD`). Unset: no HA, one replica.
    #[serde(default)]
    pub url: Option<String>,
    /// How long a lease holds without renewal. Default 10s.
    #[serde(default = "default_lease", with = "steward_core::config::duration")]
    pub lease: Duration,
    /// Time between renewals (and between a standby's attempts). Default 2s.
    #[serde(default = "default_renew", with = "steward_core::config::duration")]
    pub renew: Duration,
    /// The lease's name: every replica of one target gives the same one.
    /// Required with `url` (a target's path or URL can be spelled two ways).
    #[serde(default)]
    pub name: Option<String>,
}

fn default_lease() -> Duration {
    Duration::from_secs(10)
}

fn default_renew() -> Duration {
    Duration::from_secs(2)
}

impl Default for HaConfig {
    fn default() -> Self {
        Self { url: None, lease: default_lease(), renew: default_renew(), name: None }
    }
}

impl HaConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// The first bad key.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let bad = |key: &str, message: String| Err(InvalidValue { key: key.into(), message });
        if let Some(url) = &self.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return bad(
                    "ha.url",
                    format!("the lease lives in PostgreSQL: give a postgres:// URL, not {}", steward_queue::url::redact(url)),
                );
            }
            if let Err(e) = steward_queue::QueueUrl::parse(url) {
                return bad("ha.url", e.to_string());
            }
            // Replicas must name one lease the same way; a path or a URL can be
            // spelled two ways (a bind mount, db vs db.internal) and split them.
            match self.name.as_deref().map(str::trim) {
                None => {
                    return bad(
                        "ha.name",
                        "is required with ha.url: the one name every replica of this target gives its lease (e.g. steward:scrapers)".into(),
                    )
                }
                Some("") => return bad("ha.name", "is empty: give the name every replica of this target shares".into()),
                Some(_) => {}
            }
        }
        if self.renew < Duration::from_millis(100) {
            return bad("ha.renew", "must be at least 100ms".into());
        }
        if self.lease < self.renew * 2 {
            return bad("ha.lease", "must be at least twice ha.renew, or one late renewal loses the lease".into());
        }
        Ok(())
    }
}

/// What fences actions: the engine asks it before each one.
pub trait Fence: Send + Sync {
    /// The current token if this process may act now.
    ///
    /// # Errors
    /// Why it may not: not the leader, or its token is no longer current.
    fn check(&self) -> Result<u64, String>;
    /// Whether this process leads now (by its own clock; no round trip).
    fn is_leader(&self) -> bool;
    /// The token it holds, if it leads.
    fn token(&self) -> Option<u64>;
}

struct State {
    token: u64,
    valid_until: Option<Instant>,
    last_error: Option<String>,
    /// When the last round (renewal or attempt) finished.
    last_round: Option<Instant>,
}

/// This replica's side of the lease. Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

struct Inner {
    url: steward_queue::url::PostgresUrl,
    name: String,
    holder: String,
    lease: Duration,
    renew: Duration,
    state: Mutex<State>,
    client: Mutex<Option<Client>>,
    /// Times the lease changed hands to this replica.
    acquired: AtomicU64,
    stopped: AtomicBool,
}

fn pg_error(e: &postgres::Error) -> String {
    steward_queue::postgres::pg_message(e)
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS steward_lease (
    name       text PRIMARY KEY,
    holder     text,
    token      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz
)";

impl Leadership {
    /// A replica named `holder` competing for the lease `name`. Nothing is
    /// connected until [`Leadership::step`] (or the thread of [`Leadership::spawn`]).
    ///
    /// # Errors
    /// A URL that is not PostgreSQL.
    pub fn new(cfg: &HaConfig, default_name: &str, holder: String) -> Result<Self, String> {
        let url = cfg.url.as_deref().ok_or("ha.url is not set")?;
        let steward_queue::QueueUrl::Postgres(p) = steward_queue::QueueUrl::parse(url).map_err(|e| e.to_string())? else {
            return Err("ha.url must be a postgres:// URL".into());
        };
        Ok(Self {
            inner: Arc::new(Inner {
                url: p,
                name: cfg.name.clone().unwrap_or_else(|| default_name.to_owned()),
                holder,
                lease: cfg.lease,
                renew: cfg.renew,
                state: Mutex::new(State { token: 0, valid_until: None, last_error: None, last_round: None }),
                client: Mutex::new(None),
                acquired: AtomicU64::new(0),
                stopped: AtomicBool::new(false),
            }),
        })
    }

    /// A holder id for this process: host, pid and a random suffix.
    pub fn holder_id() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "host".into());
        format!("{host}:{}:{:08x}", std::process::id(), steward_protocol::unpredictable() as u32)
    }

    /// This replica's holder id.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `leader` or `standby`.
    pub fn role(&self) -> &'static str {
        if self.is_leader() {
            "leader"
        } else {
            "standby"
        }
    }

    /// The last error talking to PostgreSQL, if the last attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.inner.state.lock().ok().and_then(|s| s.last_error.clone())
    }

    /// Seconds since the lease thread last finished a round, when it is
    /// overdue (more than two leases): it is stuck on PostgreSQL.
    pub fn stuck_for(&self) -> Option<u64> {
        let last = self.inner.state.lock().ok()?.last_round?;
        let age = last.elapsed();
        (age > self.inner.lease * 2).then_some(age.as_secs())
    }

    /// Who holds the lease now, as PostgreSQL says: the holder (`None`:
    /// free or expired), its token, and the milliseconds left.
    ///
    /// # Errors
    /// PostgreSQL cannot be reached.
    pub fn holder_now(&self) -> Result<(Option<String>, u64, i64), String> {
        let name = self.inner.name.clone();
        self.with_client(|c| {
            let row = c.query_opt(
                "SELECT CASE WHEN expires_at > now() THEN holder END, token, \
                 greatest(0, (extract(epoch FROM expires_at - now()) * 1000)::bigint) FROM steward_lease WHERE name = $1",
                &[&name],
            )?;
            Ok(row.map_or((None, 0, 0), |r| (r.get::<_, Option<String>>(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0), r.get(2))))
        })
    }

    /// Times this replica became leader.
    pub fn terms(&self) -> u64 {
        self.inner.acquired.load(Ordering::SeqCst)
    }

    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, String> {
        // Never wait on the connection longer than a renewal: a call stuck on
        // a silent server must not hold up the others (the cycle's fence check).
        let deadline = Instant::now() + self.inner.renew.max(Duration::from_millis(500));
        let mut guard = loop {
            match self.inner.client.try_lock() {
                Ok(g) => break g,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err("the lease's connection is busy (a call to PostgreSQL is stuck)".into())
                }
            }
        };
        if guard.as_ref().is_none_or(Client::is_closed) {
            let t = self.inner.renew.max(Duration::from_millis(500));
            let mut client =
                steward_queue::postgres::connect(&self.inner.url, t, "steward-ha").map_err(|e| crate::error::error_chain(&e))?;
            // Replicas starting together: CREATE … IF NOT EXISTS races in PostgreSQL, so one at a time.
            client.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock(7253001); {SCHEMA}; COMMIT")).map_err(|e| pg_error(&e))?;
            *guard = Some(client);
        }
        let Some(client) = guard.as_mut() else { return Err("no connection".into()) };
        let r = f(client).map_err(|e| pg_error(&e));
        if r.is_err() && client.is_closed() {
            *guard = None;
        }
        r
    }

    /// One round: renew the lease if held, else try to take it if it has
    /// expired. Returns whether this replica leads afterwards.
    pub fn step(&self) -> bool {
        if self.inner.stopped.load(Ordering::SeqCst) {
            return false;
        }
        let sent = Instant::now();
        let held = self.inner.state.lock().map(|s| s.token).unwrap_or(0);
        let lease_ms = i64::try_from(self.inner.lease.as_millis()).unwrap_or(i64::MAX);
        let (name, holder) = (self.inner.name.clone(), self.inner.holder.clone());
        let result = self.with_client(|c| {
            if held != 0 {
                let row = c.query_opt(
                    "UPDATE steward_lease SET expires_at = now() + make_interval(secs => $4::bigint / 1000.0), renewed_at = now() \
                     WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > now() RETURNING token",
                    &[&name, &holder, &i64::try_from(held).unwrap_or(i64::MAX), &lease_ms],
                )?;
                return Ok(row.map(|r| r.get::<_, i64>(0)));
            }
            c.execute("INSERT INTO steward_lease (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[&name])?;
            let row = c.query_opt(
                "UPDATE steward_lease SET holder = $2, token = token + 1, expires_at = now() + make_interval(secs => $3::bigint / 1000.0), \
                 renewed_at = now() WHERE name = $1 AND (holder IS NULL OR expires_at <= now()) RETURNING token",
                &[&name, &holder, &lease_ms],
            )?;
            Ok(row.map(|r| r.get::<_, i64>(0)))
        });
        let Ok(mut st) = self.inner.state.lock() else { return false };
        st.last_round = Some(Instant::now());
        match result {
            Ok(Some(token)) => {
                let token = u64::try_from(token).unwrap_or(0);
                if st.token != token {
                    self.inner.acquired.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(lease = %name, holder = %holder, token, "Leader: the lease is ours.");
                }
                st.token = token;
                // Counted from when the renewal was sent: never later than the server's expiry.
                st.valid_until = sent.checked_add(self.inner.lease);
                st.last_error = None;
            }
            Ok(None) => {
                if st.token != 0 {
                    tracing::warn!(lease = %name, token = st.token, "The lease was lost: standing by.");
                }
                st.token = 0;
                st.valid_until = None;
                st.last_error = None;
            }
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "The lease could not be renewed or taken.");
                st.last_error = Some(e);
                // Still leader until the lease runs out by our own clock.
                if st.valid_until.is_some_and(|v| Instant::now() >= v) {
                    st.token = 0;
                    st.valid_until = None;
                }
            }
        }
        st.token != 0 && st.valid_until.is_some_and(|v| Instant::now() < v)
    }

    /// Runs [`Leadership::step`] every `renew` on a thread of its own until
    /// `stop` is set, then releases the lease.
    pub fn spawn(&self, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        std::thread::Builder::new().name("steward-lease".into()).spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                if !me.step() && me.wait_for_release(me.inner.renew, &stop) {
                    // Released: try for it at once.
                    continue;
                }
                while started.elapsed() < me.inner.renew && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            me.release();
        })
    }

    /// Waits up to `max` for a release of the lease (`NOTIFY steward_lease`),
    /// in short slices so `stop` is seen.
    fn wait_for_release(&self, max: Duration, stop: &AtomicBool) -> bool {
        let name = self.inner.name.clone();
        let until = Instant::now() + max;
        let mut released = false;
        let _ = self.with_client(|c| {
            c.batch_execute("LISTEN steward_lease")?;
            while !released && Instant::now() < until && !stop.load(Ordering::SeqCst) {
                let slice = until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
                let mut it = c.notifications();
                let mut waiting = it.timeout_iter(slice);
                while let Some(n) = postgres::fallible_iterator::FallibleIterator::next(&mut waiting)? {
                    released |= n.payload() == name;
                }
            }
            // A leader must not queue every release of every lease.
            c.batch_execute("UNLISTEN steward_lease")
        });
        released
    }

    /// Gives the lease up at once (a graceful stop), so a standby need not
    /// wait for it to expire. This replica acts no more.
    pub fn release(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        let token = match self.inner.state.lock() {
            Ok(mut st) => {
                let t = st.token;
                st.token = 0;
                st.valid_until = None;
                t
            }
            Err(_) => 0,
        };
        if token == 0 {
            return;
        }
        let (name, holder) = (self.inner.name.clone(), self.inner.holder.clone());
        let released = self.with_client(|c| {
            let n = c.execute(
                "UPDATE steward_lease SET holder = NULL, expires_at = now() WHERE name = $1 AND holder = $2 AND token = $3",
                &[&name, &holder, &i64::try_from(token).unwrap_or(i64::MAX)],
            )?;
            c.execute("SELECT pg_notify('steward_lease', $1)", &[&name])?;
            Ok(n)
        });
        match released {
            Ok(_) => tracing::info!(lease = %name, token, "Lease released: a standby may take over now."),
            Err(e) => tracing::warn!(lease = %name, error = %e, "Could not release the lease; it expires on its own."),
        }
    }
}

/// Waits up to `max` for the lease thread to end (it releases the lease on
/// its way out); a thread stuck on a silent PostgreSQL is left behind, and
/// the lease expires on its own.
pub fn join_for(handle: std::thread::JoinHandle<()>, max: Duration) {
    let until = Instant::now() + max;
    while !handle.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    if handle.is_finished() {
        let _ = handle.join();
    } else {
        tracing::warn!("The lease thread is stuck on PostgreSQL; leaving without releasing: the lease expires on its own.");
    }
}

/// The lease held for one command run by hand (`execute`, `rollback`):
/// renewed while the command runs, released when dropped.
pub struct HeldLease {
    stop: Arc<AtomicBool>,
    renewing: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldLease")
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.renewing.take() {
            join_for(h, Duration::from_secs(3));
        }
    }
}

impl Leadership {
    /// Takes the lease for one command, if it is free; a replica that leads
    /// keeps it, and the command must not act.
    ///
    /// # Errors
    /// The lease is held by another replica, or PostgreSQL cannot be reached.
    pub fn hold_for_command(&self) -> Result<HeldLease, String> {
        if !self.step() {
            let why = self
                .last_error()
                .unwrap_or_else(|| "another replica leads: ask its daemon (POST /execute, POST /rollback/ID), or stop it".into());
            return Err(format!("cannot take the HA lease {}: {why}; nothing was done", self.name()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        // Renewed on its own thread for as long as the command runs; released at the end.
        let renewing = self.spawn(stop.clone()).map_err(|e| format!("cannot start the lease thread: {e}"))?;
        Ok(HeldLease { stop, renewing: Some(renewing) })
    }
}

impl Fence for Leadership {
    fn check(&self) -> Result<u64, String> {
        let token = self.token().ok_or_else(|| "this replica is not the leader (its lease ran out or was never held)".to_owned())?;
        let (name, holder) = (self.inner.name.clone(), self.inner.holder.clone());
        let current = self.with_client(|c| {
            c.query_opt("SELECT holder, token FROM steward_lease WHERE name = $1 AND expires_at > now()", &[&name])
                .map(|r| r.map(|r| (r.get::<_, Option<String>>(0), r.get::<_, i64>(1))))
        })?;
        // The answer counts only if it came while this replica still leads by
        // its own clock: a reply that arrived after a pause says nothing of now.
        if !self.is_leader() {
            return Err(format!("fencing token {token} ran out while the lease was being checked (a pause or a slow answer)"));
        }
        match current {
            Some((Some(h), t)) if h == holder && u64::try_from(t).ok() == Some(token) => Ok(token),
            Some((h, t)) => Err(format!(
                "fencing token {token} is no longer current: the lease is token {t}, held by {}",
                h.unwrap_or_else(|| "nobody".into())
            )),
            None => Err(format!("fencing token {token} is no longer current: the lease has expired")),
        }
    }

    fn is_leader(&self) -> bool {
        self.inner.state.lock().is_ok_and(|s| s.token != 0 && s.valid_until.is_some_and(|v| Instant::now() < v))
    }

    fn token(&self) -> Option<u64> {
        self.is_leader().then(|| self.inner.state.lock().map(|s| s.token).unwrap_or(0)).filter(|t| *t != 0)
    }
}
