//! Serving connections from clients steward does not trust, before any of
//! them has authenticated: a cap on connections that leaves file
//! descriptors for the loop, a deadline for every request's headers (which
//! also closes idle keep-alive connections), and a deadline for every
//! request as a whole.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

/// File descriptors kept for the loop, the journal, workers' pipes and logs,
/// whatever the clients do.
pub const FD_RESERVE: u64 = 256;

/// The fewest connections served, however low the descriptor limit.
const MIN_CONNECTIONS: usize = 16;

/// How a server treats its clients' connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's headers (and an idle keep-alive connection's next
    /// request) must arrive within this, or the connection is closed.
    pub header_timeout: Duration,
    /// Connections served at once; more are closed as they are accepted.
    /// Lowered further so that [`FD_RESERVE`] descriptors stay free.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), max_connections: 4096 }
    }
}

/// How [`serve_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in flight finished.
    Drained,
    /// Requests were still open at the drain deadline and were cut off.
    CutOff,
}

/// The soft limit on open file descriptors, raised to the hard limit
/// (at most 65536) where it is lower: a server's clients should not share
/// the default 1024 with everything else. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return 1024;
    }
    let want = lim.rlim_max.min(65_536);
    if lim.rlim_cur < want {
        let raised = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads one rlimit we own; raising the soft limit up to the hard one is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            lim.rlim_cur = want;
        }
    }
    lim.rlim_cur
}

/// The connections that fit under the descriptor limit with
/// [`FD_RESERVE`] to spare, and under `wanted`.
pub fn connection_budget(wanted: usize) -> usize {
    let mut lim = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) };
    let room = usize::try_from(lim.rlim_cur.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    wanted.min(room).max(MIN_CONNECTIONS)
}

/// Counts the connections open, and gives memory back to the system when
/// a crowd (a burst of clients, a slowloris) has left: the allocator keeps
/// what it freed otherwise, and the daemon would stay at its peak.
#[derive(Default)]
struct Crowd {
    open: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// Connections at once that make a crowd worth trimming memory after.
const CROWD: usize = 64;

impl Crowd {
    fn arrive(&self) {
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(open, Ordering::SeqCst);
    }

    fn leave(&self) {
        if self.open.fetch_sub(1, Ordering::SeqCst) == 1 && self.peak.swap(0, Ordering::SeqCst) >= CROWD {
            trim_memory();
        }
    }
}

/// Returns freed heap memory to the system (glibc keeps it otherwise).
fn trim_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of the heaps and in free pages; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Serves `router` until `stop` is set; then stops accepting, and gives the
/// requests in flight `drain` to finish before cutting them off, so a slow
/// or stuck client never holds a stop past systemd's timeout.
///
/// Before authentication every client is a stranger: connections over the
/// cap are closed at once, a request whose headers are not in within
/// `limits.header_timeout` is closed (slowloris), and so is an idle
/// keep-alive connection after that long.
///
/// # Errors
/// Never today: failed accepts (out of descriptors, a client gone) are
/// waited out, not fatal.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: Arc<AtomicBool>,
    drain: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<Stopped> {
    let budget = connection_budget(limits.max_connections);
    let slots = Arc::new(Semaphore::new(budget));
    let crowd = Arc::new(Crowd::default());
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_headers(100);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Over the cap: closed as soon as accepted, so the
                    // backlog never holds a stranger's descriptors either.
                    let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                    let _ = stream.set_nodelay(true);
                    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
                    let conn = graceful.watch(conn);
                    crowd.arrive();
                    let crowd = crowd.clone();
                    tokio::spawn(async move {
                        let _ = conn.await;
                        drop(slot);
                        crowd.leave();
                    });
                }
                // Out of descriptors, or a client that reset before the
                // accept: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = poll.tick() => {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Ok(Stopped::Drained),
        () = tokio::time::sleep(drain) => Ok(Stopped::CutOff),
    }
}

/// Serves until `shutdown` completes, with the default limits; for tests
/// and embedders that stop on a future of their own.
///
/// # Errors
/// As [`serve_until`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        flag.store(true, Ordering::SeqCst);
    });
    serve_until(listener, router, stop, Duration::from_secs(5), ConnectionLimits::default()).await.map(|_| ())
}
