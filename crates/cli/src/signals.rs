//! Signals: how a long run learns it should stop.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};

/// SIGINT/SIGTERM: the first sets the flag (finish the cycle, stop the
/// fleet in order); a second exits at once, with the shell's code for it
/// (130, 143).
pub fn install_stop_handlers() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&stop)).context("installing signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    Ok(stop)
}

/// SIGINT/SIGTERM for a worker: finish the current item, then exit. A
/// second signal does not cut the item short (the supervisor escalates
/// with SIGKILL after its drain timeout).
pub fn install_finish_handlers() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    Ok(stop)
}
