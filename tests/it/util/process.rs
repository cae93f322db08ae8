//! Child processes tied to the test binary's life, temp dirs, and small waits.

use super::*;

pub(crate) type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawn `cmd` so that it gets SIGKILL when the test binary dies.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, and libtest
/// runs every test on its own short-lived thread: a backend shared between tests would
/// be killed as soon as the test that started it returned. So every child is forked by
/// one spawner thread that lives as long as the process.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnJob>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // The requester may have given up; nothing to do then.
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the child-spawner thread");
        tx
    });
    let parent = libc::pid_t::try_from(std::process::id()).expect("pid fits pid_t");
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // calls (prctl, getppid) and builds io::Error values without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: the signal then never
            // comes, so refuse to become an orphan.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    spawner
        .send((cmd, reply))
        .map_err(|_| io::Error::other("child-spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("child-spawner thread is gone"))?
}

/// Whether a process with this pid exists and is not a zombie (`/proc/PID/stat`).
pub fn process_exists(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name in parentheses may contain spaces; the state follows the last ')'.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
    {
        Some(state) => state != "Z" && state != "X",
        None => false,
    }
}

/// The state letter of every thread of `pid` (`/proc/PID/task/*/stat`); empty if gone.
pub(crate) fn thread_states(pid: u32) -> Vec<char> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let states = tasks.flatten().filter_map(|task| {
        let stat = fs::read_to_string(task.path().join("stat")).ok()?;
        // The command name in parentheses may contain spaces; the state follows it.
        stat[stat.rfind(')')? + 1..].trim_start().chars().next()
    });
    states.collect()
}

pub(crate) fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: plain kill(2) on a child we have not reaped yet, so the pid is still ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Wait up to `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) => return None,
            Err(e) => panic!("cannot wait for child {}: {e}", child.id()),
        }
    }
}

/// SIGTERM (and SIGCONT, in case it is paused), wait up to [`STOP_TIMEOUT`], then
/// SIGKILL. Returns the exit status and whether SIGTERM was enough.
pub(crate) fn terminate(child: &mut Child) -> (ExitStatus, bool) {
    signal(child, libc::SIGTERM);
    signal(child, libc::SIGCONT);
    if let Some(status) = wait_timeout(child, STOP_TIMEOUT) {
        return (status, true);
    }
    (kill_and_reap(child), false)
}

pub fn kill_and_reap(child: &mut Child) -> ExitStatus {
    // Fails only when the child has already exited; wait() then reaps it.
    let _ = child.kill();
    child
        .wait()
        .unwrap_or_else(|e| panic!("cannot reap child {}: {e}", child.id()))
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// A temp dir named `KIND-PID-…`, so that dirs left by a test binary that was killed
/// (its children die with it, its dirs do not) can be told apart and swept.
pub fn harness_tempdir(kind: &str) -> io::Result<TempDir> {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(sweep_stale_tempdirs);
    tempfile::Builder::new()
        .prefix(&format!("{kind}-{}-", std::process::id()))
        .tempdir()
}

/// Remove `influxd-PID-…`, `relay-PID-…` and `chromium-PID-…` temp dirs whose test
/// binary is gone.
pub(crate) fn sweep_stale_tempdirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix("influxd-")
            .or_else(|| name.strip_prefix("relay-"))
            .or_else(|| name.strip_prefix("chromium-"))
        else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !process_exists(pid)) {
            // Another sweeper may race us to it; either way it goes.
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The last `n` lines of `text`, for failure messages.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// influxd
