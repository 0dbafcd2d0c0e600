//! Processes by pid: signals, liveness, and identity across restarts.
//!
//! A pid alone does not identify a process (pids are reused), so a
//! process is recorded as (pid, start time in clock ticks since boot, from
//! `/proc/<pid>/stat`): a live pid whose start time differs is another
//! process and is never signalled.

use std::io;

/// A signal steward sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Finish the current item, then exit.
    Term,
    /// Stop now.
    Kill,
}

/// Sends `signal` to `pid`.
///
/// # Errors
/// The process does not exist (`ESRCH`) or may not be signalled.
pub fn kill(pid: u32, signal: Signal) -> io::Result<()> {
    // 0 and negatives address process groups: never what is meant here.
    send(pid, 0, signal, |pid, sig| {
        // SAFETY: kill(2) takes plain integers and has no memory effects.
        unsafe { libc::kill(pid, sig) }
    })
}

/// Sends `signal` to every process of the group `pgid` (a program started
/// in its own group, with whatever it started).
///
/// # Errors
/// No such group, or it may not be signalled.
pub fn kill_group(pgid: u32, signal: Signal) -> io::Result<()> {
    // Group 1 would be init's: never what is meant here.
    send(pgid, 1, signal, |pgid, sig| {
        // SAFETY: killpg(2) takes plain integers and has no memory effects.
        unsafe { libc::killpg(pgid, sig) }
    })
}

/// Checks the target is above `floor` and maps the signal, then calls `raw`.
fn send(target: u32, floor: libc::pid_t, signal: Signal, raw: impl FnOnce(libc::pid_t, libc::c_int) -> libc::c_int) -> io::Result<()> {
    let sig = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    let target = libc::pid_t::try_from(target).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if target <= floor {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    if raw(target, sig) == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `program` can be run: a path to an executable file, or a name
/// found as one on `PATH`.
pub fn runnable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return executable(std::path::Path::new(program));
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// One-letter state (`R`, `S`, `D`, `Z` zombie, `X` dead, ...).
    pub state: char,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process.
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces
    // or parentheses: the fields after it start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 (index 0 here), starttime field 22 (index 19).
    let state = fields.first()?.chars().next()?;
    let start_ticks = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_ticks })
}

/// Whether the process recorded as (pid, start_ticks) still runs.
/// A zombie has finished: it only waits to be reaped.
pub fn is_running(pid: u32, start_ticks: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_ticks == start_ticks && !matches!(s.state, 'Z' | 'X' | 'x'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_running_and_identified() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert!(is_running(me, s.start_ticks));
        assert!(!is_running(me, s.start_ticks + 1), "another start time is another process");
        assert!(stat(u32::MAX - 1).is_none());
        assert!(kill(0, Signal::Term).is_err(), "never a process group");
    }

    #[test]
    fn a_timeout_kills_what_the_program_started_too() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("bg.pid");
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", &format!("sleep 30 & echo $! > {}; wait", pidfile.display())]);
        let r = run_with_timeout(cmd, None, false, std::time::Duration::from_millis(300), 1024).unwrap();
        assert!(r.is_none(), "timed out");
        let bg: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(stat(bg).is_none_or(|s| s.state == 'Z'), "the background sleep was killed with its group");
    }

    #[test]
    fn runnable_finds_programs_on_path_and_by_path() {
        assert!(runnable("sh"));
        assert!(runnable("/bin/sh"));
        assert!(!runnable("./no-such-handler.sh"));
        assert!(!runnable("no-such-program-anywhere"));
    }

    #[test]
    fn a_signalled_child_stops() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let s = stat(child.id()).unwrap();
        assert!(is_running(child.id(), s.start_ticks));
        kill(child.id(), Signal::Kill).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(!is_running(child.id(), s.start_ticks));
    }
}

/// What a program run to completion produced.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: std::process::ExitStatus,
    /// Its stdout, up to the limit.
    pub stdout: Vec<u8>,
    /// Its stderr, when captured: the last bytes up to the limit (the end
    /// of a failing program's complaint is where the reason is).
    pub stderr: Vec<u8>,
}

impl Finished {
    /// Stdout, then stderr, as one text.
    pub fn output(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&self.stderr));
        s
    }
}

/// Reads a pipe to its end, keeping at most `max` bytes: the first ones, or
/// the last ones when `tail`.
fn drain(mut pipe: impl std::io::Read, max: u64, tail: bool) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                let max = usize::try_from(max).unwrap_or(usize::MAX);
                if kept.len() > max {
                    if tail {
                        kept.drain(..kept.len() - max);
                    } else {
                        kept.truncate(max);
                    }
                }
            }
        }
    }
    kept
}

/// Runs `cmd` with `input` on stdin (or none), capturing stdout (its first
/// `max_output` bytes) and, if `with_stderr`, stderr (its last
/// `max_output` bytes), each drained on its own thread so neither can fill
/// up and block the program; kills it after `timeout`. `Ok(None)` means it
/// timed out (and was killed).
///
/// The program runs in its own process group: a Ctrl-C or SIGTERM sent to
/// the caller's group does not cut it short (the caller decides when it
/// stops), and on a timeout the whole group is killed, so nothing it
/// started in the background outlives it.
///
/// # Errors
/// The program cannot be started or waited for.
pub fn run_with_timeout(
    mut cmd: std::process::Command,
    input: Option<&[u8]>,
    with_stderr: bool,
    timeout: std::time::Duration,
    max_output: u64,
) -> io::Result<Option<Finished>> {
    use std::io::Write;
    use std::process::Stdio;
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped());
    cmd.stderr(if with_stderr { Stdio::piped() } else { Stdio::inherit() });
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn()?;
    let pgid = child.id();
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that does not read its input is fine: ignore EPIPE.
        let _ = stdin.write_all(bytes);
    }
    let (out, err) = (child.stdout.take(), child.stderr.take());
    // Read on other threads so a chatty program cannot block on a full pipe.
    let out_reader = std::thread::spawn(move || out.map(|o| drain(o, max_output, false)).unwrap_or_default());
    let err_reader = std::thread::spawn(move || err.map(|e| drain(e, max_output, true)).unwrap_or_default());
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait()? {
            Some(status) => break status,
            None if std::time::Instant::now() >= deadline => {
                let _ = kill_group(pgid, Signal::Kill);
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            None => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    };
    // Whatever it left running in its group goes with it; the reader then
    // sees the pipes close.
    let _ = kill_group(pgid, Signal::Kill);
    Ok(Some(Finished { status, stdout: out_reader.join().unwrap_or_default(), stderr: err_reader.join().unwrap_or_default() }))
}
