//! Test harness: real `influxd` backends, the relay process, a tiny blocking HTTP/1.1
//! client, a minimal JSON parser and query helpers.
//!
//! Every child process is tied to the life of the test binary (`PR_SET_PDEATHSIG`) and
//! killed and reaped on drop, so a failing or aborted run leaves nothing behind. Every
//! socket is on 127.0.0.1.
//!
//! Tests that do not stop or pause a backend share two `influxd` processes
//! ([`shared_backends`]) and isolate themselves by database ([`unique_db`]); tests that
//! need to kill, pause or restart a backend start their own ([`Influxd::start`]).

// Each test module uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long `influxd` may take to answer `/ping`, over all port retries (30 s).
const INFLUXD_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh port sets tried after the first when `influxd` finds a port taken (3).
const INFLUXD_BIND_RETRIES: usize = 3;
/// How long the relay may take to answer `/ping` after spawning (15 s).
const RELAY_START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a process may take to exit after SIGTERM before it gets SIGKILL (15 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Connect, read and write timeout of [`http_request`] (30 s): longer than any output
/// `timeout` a test is expected to configure, so a slow relay answer is not a client error.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Sleep between two polls of a condition (20 ms).
const POLL_INTERVAL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------

/// Ports handed out by this test binary. The kernel may return a port again once its
/// probe socket is closed; remembering them keeps two parallel tests of this binary from
/// being given the same port before either has bound it.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

fn pick_port(probe: impl Fn() -> io::Result<u16>) -> u16 {
    for _ in 0..1000 {
        let port = probe().unwrap_or_else(|e| panic!("cannot bind a probe socket: {e}"));
        let mut taken = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if taken.insert(port) {
            return port;
        }
    }
    panic!("the kernel kept returning ports this test binary already handed out");
}

/// A TCP port on 127.0.0.1 that was free a moment ago and has not been handed out before
/// by this test binary.
///
/// Racy by nature: the probe socket is closed before the caller's process binds the port,
/// and in between another program (another test binary, an outgoing connection's
/// ephemeral port) may take it. [`Influxd::start`] detects that and retries with fresh
/// ports; a relay started on a stolen port fails to start and the test fails loudly.
pub fn free_port() -> u16 {
    pick_port(|| {
        Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port())
    })
}

/// A UDP port on 127.0.0.1 that was free a moment ago; the same race as [`free_port`].
pub fn free_udp_port() -> u16 {
    pick_port(|| {
        Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port())
    })
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

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
fn thread_states(pid: u32) -> Vec<char> {
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

fn signal(child: &Child, sig: libc::c_int) {
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
fn terminate(child: &mut Child) -> (ExitStatus, bool) {
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
fn sweep_stale_tempdirs() {
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
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// influxd
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct InfluxdPorts {
    http: u16,
    /// The backup/RPC service (top-level `bind-address`).
    rpc: u16,
    udp: u16,
}

impl InfluxdPorts {
    fn pick() -> Self {
        InfluxdPorts {
            http: free_port(),
            rpc: free_port(),
            udp: free_udp_port(),
        }
    }
}

/// Why one attempt to start `influxd` failed.
enum StartError {
    /// Another program holds one of the ports: worth retrying with fresh ones.
    PortTaken(String),
    Fatal(String),
}

/// A throwaway `influxd` 1.6: its own temp dir (meta, data, wal, config, log) and its own
/// ports on 127.0.0.1 (HTTP, RPC, and a UDP listener writing into database `udp`).
/// Dropping it kills the process and removes the directory.
pub struct Influxd {
    ports: InfluxdPorts,
    /// `[http] auth-enabled`: every request but `/ping` needs a user's credentials.
    auth: bool,
    /// `None` once the process has been reaped (after `kill9` or `stop`).
    child: Option<Child>,
    /// Last so that it is removed after the process is dead.
    dir: TempDir,
}

impl Influxd {
    /// Start a fresh `influxd` and wait until it answers `/ping`; panics with its log if
    /// it does not within 30 s.
    pub fn start() -> Influxd {
        Influxd::try_start(false).unwrap_or_else(|e| panic!("influxd did not start: {e}"))
    }

    /// Start a fresh `influxd` with authentication on and one admin user, `user` with
    /// `password` (created the way InfluxDB allows while it has no admin yet).
    pub fn start_with_auth(user: &str, password: &str) -> Influxd {
        let influxd =
            Influxd::try_start(true).unwrap_or_else(|e| panic!("influxd did not start: {e}"));
        let q = format!(
            "CREATE USER {} WITH PASSWORD '{}' WITH ALL PRIVILEGES",
            quote_ident(user),
            password.replace('\\', "\\\\").replace('\'', "\\'")
        );
        let resp = http_request(
            influxd.http_addr(),
            "POST",
            &format!("/query?q={}", url_encode(&q)),
            &[],
            b"",
        );
        assert_eq!(resp.status, 200, "{}", resp.body_str());
        assert!(!resp.body_str().contains("error"), "{}", resp.body_str());
        influxd
    }

    /// Start `n` fresh instances in parallel.
    pub fn start_n(n: usize) -> Vec<Influxd> {
        let starting: Vec<_> = (0..n).map(|_| thread::spawn(Influxd::start)).collect();
        starting
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    }

    fn try_start(auth: bool) -> Result<Influxd, String> {
        let deadline = Instant::now() + INFLUXD_START_TIMEOUT;
        let dir =
            harness_tempdir("influxd").map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let mut influxd = Influxd {
            ports: InfluxdPorts::pick(),
            auth,
            child: None,
            dir,
        };
        let mut attempt = 0;
        loop {
            match influxd.spawn_and_wait(deadline) {
                Ok(()) => return Ok(influxd),
                Err(StartError::PortTaken(_)) if attempt < INFLUXD_BIND_RETRIES => {
                    attempt += 1;
                    influxd.ports = InfluxdPorts::pick();
                }
                Err(StartError::PortTaken(log)) => {
                    return Err(format!(
                        "ports kept being taken; last log:\n{}",
                        tail(&log, 30)
                    ))
                }
                Err(StartError::Fatal(msg)) => return Err(msg),
            }
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("influxd.toml")
    }

    /// Where its stdout and stderr go (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("influxd.log")
    }

    /// Its log so far, for a failing test to print.
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn config_text(&self) -> String {
        let d = self.dir.path().display();
        let p = self.ports;
        // Debian's 1.6 build spells the phone-home switch `reporting-enabled`, upstream
        // `reporting-disabled`; influxd ignores keys it does not know, so set both.
        format!(
            r#"reporting-enabled = false
reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"

[meta]
  dir = "{d}/meta"
  logging-enabled = false

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[retention]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  bind-address = "127.0.0.1:{http}"
  log-enabled = false
  auth-enabled = {auth}

[logging]
  level = "warn"
  suppress-logo = true

[[udp]]
  enabled = true
  bind-address = "127.0.0.1:{udp}"
  database = "udp"
  batch-size = 100
  batch-timeout = "50ms"
"#,
            rpc = p.rpc,
            auth = self.auth,
            http = p.http,
            udp = p.udp,
        )
    }

    /// One start attempt with the current ports: write the config, spawn, wait for ready.
    fn spawn_and_wait(&mut self, deadline: Instant) -> Result<(), StartError> {
        let fatal = StartError::Fatal;
        let config = self.config_path();
        fs::write(&config, self.config_text())
            .map_err(|e| fatal(format!("cannot write {}: {e}", config.display())))?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| fatal(format!("cannot open the log file: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| fatal(format!("cannot dup the log file: {e}")))?;
        let mut cmd = Command::new("influxd");
        cmd.arg("run")
            .arg("-config")
            .arg(&config)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = spawn_tied(cmd).map_err(|e| {
            fatal(format!(
                "cannot run influxd ({e}); is the `influxdb` package installed?"
            ))
        })?;
        self.child = Some(child);
        self.wait_ready(deadline)
    }

    fn wait_ready(&mut self, deadline: Instant) -> Result<(), StartError> {
        let config = self.config_path().display().to_string();
        let mut child = self.child.take().expect("wait_ready needs a child");
        loop {
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    let log = self.log_text();
                    return Err(if log.contains("address already in use") {
                        StartError::PortTaken(log)
                    } else {
                        StartError::Fatal(format!(
                            "influxd exited ({status}) before it was ready; log:\n{}",
                            tail(&log, 30)
                        ))
                    });
                }
                Err(e) => return Err(StartError::Fatal(format!("cannot poll influxd: {e}"))),
            }
            // Another influxd (of another test binary) may answer on a port we guessed
            // while ours is about to fail to bind it: only ours serves our config path.
            if ping_ok(self.http_addr(), None) && serves_config(self.http_addr(), &config) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                kill_and_reap(&mut child);
                return Err(StartError::Fatal(format!(
                    "influxd did not answer /ping within {INFLUXD_START_TIMEOUT:?}; log:\n{}",
                    tail(&self.log_text(), 30)
                )));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    pub fn http_addr(&self) -> SocketAddr {
        localhost(self.ports.http)
    }

    /// Its UDP listener, which writes into database `udp`.
    pub fn udp_addr(&self) -> SocketAddr {
        localhost(self.ports.udp)
    }

    /// `http://ADDR/write`, the `location` of a relay output pointing here.
    pub fn write_url(&self) -> String {
        format!("http://{}/write", self.http_addr())
    }

    /// Pid of the current process, if one is running or unreaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(process_exists)
    }

    /// `POST /write?db=DB` straight to this backend.
    pub fn write(&self, db: &str, body: &str) -> Response {
        let path = format!("/write?db={}", url_encode(db));
        http_request(self.http_addr(), "POST", &path, &[], body.as_bytes())
    }

    /// SIGKILL and reap: the process is gone when this returns.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// SIGTERM and wait for it to exit (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// SIGSTOP: it keeps its sockets but answers nothing, like a hung server. Returns once
    /// every thread is stopped: the signal can stay pending for tens of milliseconds on a
    /// busy machine, long enough to answer a request the test expects to hang.
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            signal(child, libc::SIGSTOP);
            let pid = child.id();
            let stopped = wait_until(STOP_TIMEOUT, || {
                thread_states(pid).iter().all(|s| *s == 'T')
            });
            assert!(stopped, "influxd {pid} did not stop after SIGSTOP");
        }
    }

    /// SIGCONT after [`Influxd::pause`]; returns once no thread is stopped.
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            signal(child, libc::SIGCONT);
            let pid = child.id();
            let running = wait_until(STOP_TIMEOUT, || {
                thread_states(pid).iter().all(|s| *s != 'T')
            });
            assert!(running, "influxd {pid} did not continue after SIGCONT");
        }
    }

    /// Stop it if it runs, then start it again on the same directory and ports and wait
    /// until it answers. Panics if a port was taken meanwhile: the addresses must stay.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + INFLUXD_START_TIMEOUT;
        match self.spawn_and_wait(deadline) {
            Ok(()) => {}
            Err(StartError::PortTaken(log)) => {
                panic!(
                    "influxd restart: a port was taken meanwhile; log:\n{}",
                    tail(&log, 30)
                )
            }
            Err(StartError::Fatal(msg)) => panic!("influxd restart: {msg}"),
        }
    }

    /// Kill and reap by raw pid and remove the directory, for the process-exit hook that
    /// only has shared references.
    fn kill_at_exit(&self) {
        if let Some(pid) = self.pid().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: the child has not been reaped (it is still owned here), so the pid
            // is still ours; a null status pointer is allowed.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        let _ = fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- influxd {} log (last lines) ---\n{}",
                self.http_addr(),
                tail(&self.log_text(), 40)
            );
        }
        self.kill9();
    }
}

/// What the relay's `X-Influxdb-Version` contains, and no `influxd`'s does.
pub const RELAY_VERSION_MARK: &str = "+influx-relay.";

/// `GET /ping` answers 204 with `X-Influxdb-Version` (containing `version` if given).
fn ping_ok(addr: SocketAddr, version: Option<&str>) -> bool {
    match try_http_request(addr, "GET", "/ping", &[], b"", Duration::from_millis(500)) {
        Ok(resp) => {
            resp.status == 204
                && match (resp.header("X-Influxdb-Version"), version) {
                    (Some(got), Some(want)) => got.contains(want),
                    (Some(_), None) => true,
                    (None, _) => false,
                }
        }
        Err(_) => false,
    }
}

/// Whether the influxd at `addr` runs with this config file (`/debug/vars` shows its
/// command line).
fn serves_config(addr: SocketAddr, config_path: &str) -> bool {
    match try_http_request(addr, "GET", "/debug/vars", &[], b"", Duration::from_secs(2)) {
        Ok(resp) => resp.status == 200 && resp.body_str().contains(config_path),
        Err(_) => false,
    }
}

static SHARED: OnceLock<[Influxd; 2]> = OnceLock::new();

/// Two `influxd` started once per test binary and shared by every test that leaves them
/// running. Isolate by database ([`unique_db`]) or, for UDP (database `udp`), by
/// measurement name. Never stop, pause or restart them: start your own instead.
pub fn shared_backends() -> &'static [Influxd; 2] {
    SHARED.get_or_init(|| {
        let mut pair = Influxd::start_n(2).into_iter();
        let (Some(a), Some(b)) = (pair.next(), pair.next()) else {
            unreachable!("start_n(2) returns two")
        };
        // Statics are never dropped: kill them and remove their dirs when the test
        // binary exits (libtest returns from main or calls exit, both run atexit).
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe {
            libc::atexit(kill_shared_at_exit);
        }
        [a, b]
    })
}

extern "C" fn kill_shared_at_exit() {
    if let Some(pair) = SHARED.get() {
        for influxd in pair {
            influxd.kill_at_exit();
        }
    }
}

/// A database (or measurement) name no other test of any run has: `PREFIX_PID_N`.
pub fn unique_db(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}

/// `CREATE DATABASE` (idempotent); panics if influxd refuses.
pub fn create_db(influxd: &Influxd, db: &str) {
    let q = format!("CREATE DATABASE {}", quote_ident(db));
    let path = format!("/query?q={}", url_encode(&q));
    let resp = http_request(influxd.http_addr(), "POST", &path, &[], b"");
    assert!(
        resp.status == 200 && !resp.body_str().contains("\"error\""),
        "CREATE DATABASE {db} on {}: {} {}",
        influxd.http_addr(),
        resp.status,
        resp.body_str()
    );
}

/// A [`unique_db`] created on both shared backends.
pub fn shared_db(prefix: &str) -> String {
    let db = unique_db(prefix);
    for influxd in shared_backends() {
        create_db(influxd, &db);
    }
    db
}

/// An InfluxQL identifier in double quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

// ---------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------

/// One HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded (chunked framing removed), not decompressed.
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Panics unless `resp` carries the headers InfluxDB 1.x puts on every answer, with the
/// relay's values: `X-Influxdb-Build: OSS` and an `X-Influxdb-Version` that reads as a
/// 1.x version (`1.` first) and names the relay.
pub fn assert_identity(resp: &Response) {
    assert_eq!(
        resp.header("X-Influxdb-Build"),
        Some("OSS"),
        "{} {:?}",
        resp.status,
        resp.headers
    );
    let version = resp.header("X-Influxdb-Version").unwrap_or_default();
    assert!(
        version.starts_with("1.") && version.contains(RELAY_VERSION_MARK),
        "{} {:?}",
        resp.status,
        resp.headers
    );
}

/// Percent-encode everything but RFC 3986 unreserved characters, for query values.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /write?db=<db>` with `body` to the relay at `addr`, which must answer 204;
/// usable from threads that hold only the address.
pub fn write_ok(addr: SocketAddr, db: &str, body: &[u8]) {
    let r = http_request(addr, "POST", &format!("/write?db={db}"), &[], body);
    assert_eq!(r.status, 204, "{}", r.body_str());
}

/// One request on a fresh connection; panics on connection or protocol errors (use
/// [`try_http_request`] to observe them).
///
/// Adds `Host`, `Content-Length` (unless `headers` has `Content-Length` or
/// `Transfer-Encoding`: then `body` goes as given) and `Connection: close` unless given.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http_request(addr, method, path_and_query, headers, body, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path_and_query}: {e}"))
}

/// [`http_request`] with an explicit timeout (connect, and each read and write), returning
/// errors. Interim 1xx answers are skipped.
pub fn try_http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut request = format!("{method} {path_and_query} HTTP/1.1\r\n").into_bytes();
    if !has("host") {
        request.extend_from_slice(format!("Host: {addr}\r\n").as_bytes());
    }
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let framed = has("content-length") || has("transfer-encoding");
    if !framed && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if !has("connection") {
        request.extend_from_slice(b"Connection: close\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);

    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    // A server may answer (413, 400) and close before reading the whole body; what it
    // said is still worth reading, so a write error only counts if no answer follows.
    let write_result = stream.write_all(&request);
    let head_only = method.eq_ignore_ascii_case("HEAD");
    match read_response(&mut stream, head_only) {
        Ok(resp) => Ok(resp),
        Err(read_err) => Err(write_result.err().unwrap_or(read_err)),
    }
}

fn read_response(stream: &mut TcpStream, head_only: bool) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        let eof = n == 0;
        loop {
            match parse_response(&buf, eof, head_only) {
                Ok(Some((resp, used))) if (100..200).contains(&resp.status) => {
                    buf.drain(..used);
                }
                Ok(Some((resp, _))) => return Ok(resp),
                Ok(None) if eof => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before a complete response",
                    ))
                }
                Ok(None) => break,
                Err(msg) => return Err(io::Error::new(io::ErrorKind::InvalidData, msg)),
            }
        }
    }
}

/// Parse one response at the start of `buf`: `Ok(None)` if more bytes are needed,
/// else the response and how many bytes it used. `eof` says no more bytes will come
/// (ends a body framed by connection close); `head_only` that it answers a HEAD.
pub fn parse_response(
    buf: &[u8],
    eof: bool,
    head_only: bool,
) -> Result<Option<(Response, usize)>, String> {
    let mut header_buf = [httparse::EMPTY_HEADER; 128];
    let mut head = httparse::Response::new(&mut header_buf);
    let head_len = match head.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof && !buf.is_empty() => {
            return Err("connection closed inside a response head".into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = head.code.ok_or("response head without a status")?;
    let headers: Vec<(String, String)> = head
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[head_len..];

    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some((resp, head_len)));
    }
    let chunked = resp
        .header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return match decode_chunked(rest)? {
            Some((body, used)) => {
                resp.body = body;
                Ok(Some((resp, head_len + used)))
            }
            None if eof => Err("connection closed inside a chunked body".into()),
            None => Ok(None),
        };
    }
    if let Some(len) = resp.header("Content-Length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        if rest.len() < len {
            return if eof {
                Err("connection closed inside the body".into())
            } else {
                Ok(None)
            };
        }
        resp.body = rest[..len].to_vec();
        return Ok(Some((resp, head_len + len)));
    }
    // No framing: the body runs to the end of the connection.
    if !eof {
        return Ok(None);
    }
    resp.body = rest.to_vec();
    Ok(Some((resp, buf.len())))
}

/// Decode a chunked body at the start of `buf`: the body and the bytes used, through the
/// trailer section, or `None` if incomplete.
fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(format!("bad chunk size at byte {pos}")),
        };
        pos += size_len;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(end) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += end + 2;
                if end == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| "chunk size overflows usize")?;
        let Some(end) = pos.checked_add(size).filter(|e| e.checked_add(2).is_some()) else {
            return Err("chunk size overflows usize".into());
        };
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(format!("chunk data not followed by CRLF at byte {end}"));
        }
        body.extend_from_slice(&buf[pos..end]);
        pos = end + 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Every response in a byte stream read from one connection (pipelining tests). Panics
/// if anything is left that is not a complete response. A response framed by connection
/// close must be last; answers to HEAD are not told apart (use `head_only` answers with
/// [`parse_response`] directly).
pub fn parse_responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match parse_response(bytes, true, false) {
            Ok(Some((resp, used))) => {
                out.push(resp);
                bytes = &bytes[used..];
            }
            Ok(None) => unreachable!("parse_response with eof is never incomplete"),
            Err(e) => panic!(
                "after {} responses: {e}; rest: {:?}",
                out.len(),
                String::from_utf8_lossy(bytes)
            ),
        }
    }
    out
}

/// Send `bytes` as they are on a fresh connection, then read until the server closes or
/// `read_until` has passed since the write. Write errors are ignored: the server may
/// answer and close before reading everything, and its answer is what the test checks.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], read_until: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(HTTP_TIMEOUT));
    let _ = stream.write_all(bytes);
    let deadline = Instant::now() + read_until;
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Timeout or reset: the test judges what arrived.
            Err(_) => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

/// A parsed JSON value. Numbers keep their text, so integers beyond 2^53 (nanosecond
/// timestamps) stay exact; objects keep their key order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The value as f64 and the number exactly as written.
    Num(f64, String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

static JSON_NULL: Json = Json::Null;

/// Deeper nesting is refused rather than overflowing the stack.
const JSON_MAX_DEPTH: usize = 128;

impl Json {
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            pos: 0,
        };
        p.skip_ws();
        let value = p.value(0)?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(p.error("trailing characters"));
        }
        Ok(value)
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Element `i` of an array.
    pub fn at(&self, i: usize) -> Option<&Json> {
        self.as_arr().and_then(|a| a.get(i))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(f, _) => Some(*f),
            _ => None,
        }
    }

    /// Only for numbers written as integers, exactly.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Num(_, raw) => raw.parse().ok(),
            _ => None,
        }
    }

    /// Only for numbers written as non-negative integers, exactly.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Num(_, raw) => raw.parse().ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_arr(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_obj(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Obj(o) => Some(o),
            _ => None,
        }
    }
}

/// `json["key"]`: the member, or `Null` when absent or not an object, so lookups chain.
impl std::ops::Index<&str> for Json {
    type Output = Json;
    fn index(&self, key: &str) -> &Json {
        self.get(key).unwrap_or(&JSON_NULL)
    }
}

/// `json[i]`: the element, or `Null` when absent or not an array.
impl std::ops::Index<usize> for Json {
    type Output = Json;
    fn index(&self, i: usize) -> &Json {
        self.at(i).unwrap_or(&JSON_NULL)
    }
}

/// Compact JSON text; numbers as they were written.
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Num(_, raw) => f.write_str(raw),
            Json::Str(s) => write_json_str(f, s),
            Json::Arr(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Obj(members) => {
                f.write_str("{")?;
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_json_str(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

fn write_json_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

struct JsonParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl JsonParser<'_> {
    fn error(&self, what: &str) -> String {
        format!("json: {what} at byte {}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > JSON_MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        match self.peek() {
            Some(b'n') if self.eat(b"null") => Ok(Json::Null),
            Some(b't') if self.eat(b"true") => Ok(Json::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(b"]") {
                    return Ok(Json::Arr(items));
                }
                loop {
                    self.skip_ws();
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"]") {
                        return Ok(Json::Arr(items));
                    }
                    return Err(self.error("expected ',' or ']'"));
                }
            }
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.eat(b"}") {
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.skip_ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.error("expected a string key"));
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if !self.eat(b":") {
                        return Err(self.error("expected ':'"));
                    }
                    self.skip_ws();
                    members.push((key, self.value(depth + 1)?));
                    self.skip_ws();
                    if self.eat(b",") {
                        continue;
                    }
                    if self.eat(b"}") {
                        return Ok(Json::Obj(members));
                    }
                    return Err(self.error("expected ',' or '}'"));
                }
            }
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        self.eat(b"-");
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("bad number")),
        }
        if self.eat(b".") && self.digits() == 0 {
            return Err(self.error("bad fraction"));
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("bad exponent"));
            }
        }
        // Only ASCII digits and signs were consumed.
        let raw = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        let value = raw.parse().map_err(|_| self.error("bad number"))?;
        Ok(Json::Num(value, raw))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("short \\u"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("bad \\u"))?;
        let code = u32::from_str_radix(text, 16).map_err(|_| self.error("bad \\u"))?;
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|_| self.error("invalid UTF-8")),
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.error("bad escape"));
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.eat(b"\\u") {
                                    return Err(self.error("lone surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.error("bad low surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or_else(|| self.error("bad \\u code"))?
                        }
                        _ => return Err(self.error("bad escape")),
                    };
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                0..=0x1f => return Err(self.error("control character in string")),
                _ => out.push(b),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------

/// `GET /query?db=DB&q=Q&epoch=ns`, or the error: HTTP status, or the `error` of the
/// answer or of any statement.
pub fn try_query(addr: SocketAddr, db: &str, q: &str) -> Result<Json, String> {
    let path = format!("/query?db={}&q={}&epoch=ns", url_encode(db), url_encode(q));
    let resp = try_http_request(addr, "GET", &path, &[], b"", HTTP_TIMEOUT)
        .map_err(|e| format!("{addr}: {e}"))?;
    let text = resp.body_str();
    if resp.status != 200 {
        return Err(format!("{addr}: {q}: HTTP {}: {text}", resp.status));
    }
    let json = Json::parse(&text).map_err(|e| format!("{addr}: {q}: {e}: {text}"))?;
    let statement_error = json["results"]
        .as_arr()
        .unwrap_or_default()
        .iter()
        .find_map(|r| r["error"].as_str());
    if let Some(err) = json["error"].as_str().or(statement_error) {
        return Err(format!("{addr}: {q}: {err}"));
    }
    Ok(json)
}

/// [`try_query`], panicking on any error.
pub fn query(addr: SocketAddr, db: &str, q: &str) -> Json {
    try_query(addr, db, q).unwrap_or_else(|e| panic!("query failed: {e}"))
}

/// The rows of the first statement's series, each value as its JSON text (strings keep
/// their quotes; time first, in nanoseconds), series after series.
pub fn rows(addr: SocketAddr, db: &str, q: &str) -> Vec<Vec<String>> {
    let json = query(addr, db, q);
    let mut out = Vec::new();
    for series in json["results"][0]["series"].as_arr().unwrap_or_default() {
        for row in series["values"].as_arr().unwrap_or_default() {
            out.push(
                row.as_arr()
                    .unwrap_or_default()
                    .iter()
                    .map(Json::to_string)
                    .collect(),
            );
        }
    }
    out
}

/// Points in `measurement`: `SELECT count(*)`, taking per row the largest field count
/// (adding them would count a point once per field), summed over rows and series. 0 when
/// the measurement or the database does not exist yet.
pub fn count(addr: SocketAddr, db: &str, measurement: &str) -> u64 {
    let q = format!("SELECT count(*) FROM {}", quote_ident(measurement));
    let json = match try_query(addr, db, &q) {
        Ok(json) => json,
        Err(e) if e.contains("database not found") => return 0,
        Err(e) => panic!("count failed: {e}"),
    };
    let mut total = 0;
    for series in json["results"][0]["series"].as_arr().unwrap_or_default() {
        for row in series["values"].as_arr().unwrap_or_default() {
            let counts = row.as_arr().unwrap_or_default().iter().skip(1);
            total += counts.filter_map(Json::as_u64).max().unwrap_or(0);
        }
    }
    total
}

// ---------------------------------------------------------------------------------------
// Relay
// ---------------------------------------------------------------------------------------

enum ListenerKind {
    Http,
    Udp,
}

struct ListenerSpec {
    kind: ListenerKind,
    name: String,
    addr: SocketAddr,
    options: Vec<(String, toml::Value)>,
    outputs: Vec<OutputSpec>,
}

struct OutputSpec {
    options: Vec<(String, toml::Value)>,
}

/// Builds a relay config on fresh ports, so tests stay short:
///
/// ```ignore
/// let cfg = RelayConfig::new()
///     .http_listener("in", "any")
///     .outputs_to(shared_backends(), "2s")
///     .output_opt("spool-size-mb", 16);
/// let relay = Relay::start(&cfg.to_toml());
/// ```
///
/// Option values are anything `toml::Value` converts from (`&str`, `i64`, `bool`, ...).
/// `listener_opt` applies to the last listener, `output_opt` to its last output.
#[derive(Default)]
pub struct RelayConfig {
    globals: Vec<(String, toml::Value)>,
    listeners: Vec<ListenerSpec>,
}

impl RelayConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// A top-level key (`threads`, `spool-dir`, `log-level`, `shutdown-timeout`, ...).
    pub fn global(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.globals.push((key.to_string(), value.into()));
        self
    }

    /// An `[[http]]` listener on a fresh port with `ack` = `"any"`, `"quorum"` or `"all"`.
    pub fn http_listener(mut self, name: &str, ack: &str) -> Self {
        self.listeners.push(ListenerSpec {
            kind: ListenerKind::Http,
            name: name.to_string(),
            addr: localhost(free_port()),
            options: vec![("ack".to_string(), ack.into())],
            outputs: Vec::new(),
        });
        self
    }

    /// A `[[udp]]` listener on a fresh port.
    pub fn udp_listener(mut self, name: &str) -> Self {
        self.listeners.push(ListenerSpec {
            kind: ListenerKind::Udp,
            name: name.to_string(),
            addr: localhost(free_udp_port()),
            options: Vec::new(),
            outputs: Vec::new(),
        });
        self
    }

    /// A key of the last listener (`max-body-size-mb`, `read-timeout`, ...).
    pub fn listener_opt(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.last_listener("listener_opt")
            .options
            .push((key.to_string(), value.into()));
        self
    }

    /// An HTTP output of the last listener, which must be HTTP.
    pub fn output(mut self, name: &str, url: &str, timeout: &str) -> Self {
        let listener = self.last_listener("output");
        assert!(
            matches!(listener.kind, ListenerKind::Http),
            "output() needs an HTTP listener"
        );
        listener.outputs.push(OutputSpec {
            options: vec![
                ("name".to_string(), name.into()),
                ("location".to_string(), url.into()),
                ("timeout".to_string(), timeout.into()),
            ],
        });
        self
    }

    /// A UDP output (`host:port`) of the last listener, which must be UDP.
    pub fn udp_output(mut self, name: &str, location: SocketAddr) -> Self {
        let listener = self.last_listener("udp_output");
        assert!(
            matches!(listener.kind, ListenerKind::Udp),
            "udp_output() needs a UDP listener"
        );
        listener.outputs.push(OutputSpec {
            options: vec![
                ("name".to_string(), name.into()),
                ("location".to_string(), location.to_string().into()),
            ],
        });
        self
    }

    /// One output per backend (`b0`, `b1`, ...) on the last listener: HTTP outputs to
    /// their `/write` with this timeout for an HTTP listener, their UDP port for a UDP one
    /// (the timeout is then unused).
    pub fn outputs_to<'a>(
        mut self,
        backends: impl IntoIterator<Item = &'a Influxd>,
        timeout: &str,
    ) -> Self {
        let udp = matches!(self.last_listener("outputs_to").kind, ListenerKind::Udp);
        for (i, backend) in backends.into_iter().enumerate() {
            let name = format!("b{i}");
            self = if udp {
                self.udp_output(&name, backend.udp_addr())
            } else {
                self.output(&name, &backend.write_url(), timeout)
            };
        }
        self
    }

    /// A key of the last output of the last listener (`spool-size-mb`, `gzip`, ...).
    pub fn output_opt(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        let output = self
            .last_listener("output_opt")
            .outputs
            .last_mut()
            .expect("output_opt() needs an output first");
        output.options.push((key.to_string(), value.into()));
        self
    }

    fn last_listener(&mut self, what: &str) -> &mut ListenerSpec {
        self.listeners
            .last_mut()
            .unwrap_or_else(|| panic!("{what}() needs a listener first"))
    }

    /// The first HTTP listener's address.
    pub fn addr(&self) -> SocketAddr {
        let first = self
            .listeners
            .iter()
            .find(|l| matches!(l.kind, ListenerKind::Http));
        first.expect("the config has no HTTP listener").addr
    }

    /// The address of the listener called `name`.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        let found = self.listeners.iter().find(|l| l.name == name);
        found
            .unwrap_or_else(|| panic!("no listener called {name}"))
            .addr
    }

    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.globals {
            out.push_str(&format!("{key} = {value}\n"));
        }
        for listener in &self.listeners {
            let table = match listener.kind {
                ListenerKind::Http => "http",
                ListenerKind::Udp => "udp",
            };
            out.push_str(&format!("\n[[{table}]]\n"));
            out.push_str(&format!(
                "name = {}\n",
                toml::Value::from(listener.name.as_str())
            ));
            out.push_str(&format!("bind-addr = \"{}\"\n", listener.addr));
            for (key, value) in &listener.options {
                out.push_str(&format!("{key} = {value}\n"));
            }
            for output in &listener.outputs {
                out.push_str(&format!("\n[[{table}.output]]\n"));
                for (key, value) in &output.options {
                    out.push_str(&format!("{key} = {value}\n"));
                }
            }
        }
        out
    }
}

/// Whether some UDP socket on this machine is bound to `port` (`/proc/net/udp{,6}`).
///
/// Used to see that the relay has opened its UDP listeners without binding the port to
/// probe it, which could make the relay's own bind fail. The port is one this binary
/// handed out, so whoever holds it is almost surely the process under test.
pub fn udp_port_bound(port: u16) -> bool {
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        let text = fs::read_to_string(table).unwrap_or_default();
        // Each row after the header: `sl local_address rem_address ...`, the local
        // address as `HEXIP:HEXPORT`.
        text.lines().skip(1).any(|row| {
            let local = row.split_whitespace().nth(1).unwrap_or_default();
            let hex_port = local.rsplit(':').next().unwrap_or_default();
            u16::from_str_radix(hex_port, 16) == Ok(port)
        })
    })
}

/// What [`Relay`] waits for before a test may use it, read from the config text.
#[derive(Debug, PartialEq, Eq)]
pub struct RelayEndpoints {
    /// The first `[[http]]` listener (an unspecified host means 127.0.0.1).
    pub http: Option<SocketAddr>,
    /// Every `[[udp]]` listener, in order.
    pub udp_addrs: Vec<SocketAddr>,
}

impl RelayEndpoints {
    pub fn from_config(text: &str) -> Result<Self, String> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("config is not TOML: {e}"))?;
        let http = match table
            .get("http")
            .and_then(|h| h.as_array())
            .and_then(|a| a.first())
        {
            Some(first) => {
                let bind = first
                    .get("bind-addr")
                    .and_then(toml::Value::as_str)
                    .ok_or("the first [[http]] has no bind-addr")?;
                Some(connect_addr(bind)?)
            }
            None => None,
        };
        let udp = table
            .get("udp")
            .and_then(|u| u.as_array())
            .map(Vec::as_slice);
        let mut udp_addrs = Vec::new();
        for listener in udp.unwrap_or_default() {
            let bind = listener
                .get("bind-addr")
                .and_then(toml::Value::as_str)
                .ok_or("a [[udp]] has no bind-addr")?;
            udp_addrs.push(connect_addr(bind)?);
        }
        Ok(RelayEndpoints { http, udp_addrs })
    }
}

/// Where to connect for a bind address: `:8086` and `0.0.0.0:8086` mean loopback here.
fn connect_addr(bind: &str) -> Result<SocketAddr, String> {
    let full = if bind.starts_with(':') {
        format!("127.0.0.1{bind}")
    } else {
        bind.to_string()
    };
    let mut addr: SocketAddr = full
        .parse()
        .map_err(|e| format!("bind-addr {bind:?}: {e}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    Ok(addr)
}

/// The relay binary running on a config in its own temp dir (its working directory, so a
/// relative `spool-dir` lands there). Stderr lines are collected as they come; stdout goes
/// to `relay.stdout` in the dir. Dropping it kills the process; the dir goes with it
/// unless taken back with [`Relay::into_dir`].
pub struct Relay {
    config: String,
    endpoints: RelayEndpoints,
    child: Option<Child>,
    last_status: Option<ExitStatus>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// A capability the process must run without (see [`Relay::start_without_capability`]).
    dropped_capability: Option<libc::c_int>,
    /// `Some` until `into_dir`; last so that it goes after the process.
    dir: Option<TempDir>,
}

impl Relay {
    /// Start the relay on `config` in a fresh temp dir and wait until it is ready.
    pub fn start(config: &str) -> Relay {
        let dir =
            harness_tempdir("relay").unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        Relay::start_in(dir, config)
    }

    /// Start the relay in `dir` (from [`Relay::into_dir`]: the spool is kept), with
    /// `config` written to `relay.toml` there. Ready means: `/ping` on the first HTTP
    /// listener answers 204 with the relay's `X-Influxdb-Version`, every UDP listener's port is
    /// bound, and the process is still alive; panics with its stderr otherwise after 15 s.
    pub fn start_in(dir: TempDir, config: &str) -> Relay {
        Relay::start_in_without(dir, config, None)
    }

    /// Like [`Relay::start`], but the relay runs without capability `cap` (e.g.
    /// `CAP_NET_ADMIN` = 12) even when the tests run as root: it leaves the bounding set
    /// before exec, and root's exec grants only what that set holds. Check
    /// [`Relay::has_capability`]: a process that may not drop it keeps it.
    pub fn start_without_capability(config: &str, cap: libc::c_int) -> Relay {
        let dir =
            harness_tempdir("relay").unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        Relay::start_in_without(dir, config, Some(cap))
    }

    fn start_in_without(dir: TempDir, config: &str, cap: Option<libc::c_int>) -> Relay {
        let endpoints = RelayEndpoints::from_config(config)
            .unwrap_or_else(|e| panic!("relay config: {e}\n{config}"));
        let mut relay = Relay {
            config: config.to_string(),
            endpoints,
            child: None,
            last_status: None,
            stderr: Arc::new(Mutex::new(Vec::new())),
            dropped_capability: cap,
            dir: Some(dir),
        };
        relay.spawn_and_wait();
        relay
    }

    /// Whether the running relay has capability `cap` in its effective set
    /// (`CapEff` in `/proc/PID/status`).
    pub fn has_capability(&self, cap: libc::c_int) -> bool {
        let pid = self.pid().expect("the relay is not running");
        let status = fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("cannot read the relay's status: {e}"));
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .expect("no CapEff in /proc/PID/status");
        eff & (1 << cap) != 0
    }

    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the dir is only taken by into_dir")
            .path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("relay.toml")
    }

    fn spawn_and_wait(&mut self) {
        let config_path = self.config_path();
        fs::write(&config_path, &self.config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let stdout = File::options()
            .create(true)
            .append(true)
            .open(self.dir().join("relay.stdout"))
            .unwrap_or_else(|e| panic!("cannot open relay.stdout: {e}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_influx-relay"));
        cmd.arg("--config")
            .arg(&config_path)
            .current_dir(self.dir())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        if let Some(cap) = self.dropped_capability {
            // SAFETY: runs between fork and exec and only calls prctl, which is
            // async-signal-safe. Its failure (no CAP_SETPCAP) is left for the test to
            // see through `has_capability`.
            unsafe {
                cmd.pre_exec(move || {
                    libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
                    Ok(())
                });
            }
        }
        let mut child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot run the relay: {e}"));
        if let Some(pipe) = child.stderr.take() {
            let lines = Arc::clone(&self.stderr);
            thread::spawn(move || {
                for line in BufReader::new(pipe).split(b'\n') {
                    let Ok(line) = line else { break };
                    let line = String::from_utf8_lossy(&line).into_owned();
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        self.child = Some(child);

        let ready = wait_until(RELAY_START_TIMEOUT, || self.is_running() && self.answers());
        // It may have answered and then died (a port it also needed was taken).
        if !ready || !self.is_running() {
            let status = match self.child.as_mut() {
                Some(child) => format!("{:?}", kill_and_reap(child)),
                None => "gone".to_string(),
            };
            self.child = None;
            panic!(
                "relay not ready within {RELAY_START_TIMEOUT:?} (exit: {status}); stderr:\n{}\nconfig:\n{}",
                tail(&self.stderr_text(), 40),
                self.config
            );
        }
    }

    fn answers(&self) -> bool {
        let http_ok = self
            .endpoints
            .http
            .is_none_or(|addr| ping_ok(addr, Some(RELAY_VERSION_MARK)));
        http_ok
            && self
                .endpoints
                .udp_addrs
                .iter()
                .all(|addr| udp_port_bound(addr.port()))
    }

    /// The first HTTP listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoints
            .http
            .expect("the relay config has no HTTP listener")
    }

    /// `POST /write?db=DB` with `body`.
    pub fn write(&self, db: &str, body: &str) -> Response {
        let path = format!("/write?db={}", url_encode(db));
        http_request(self.addr(), "POST", &path, &[], body.as_bytes())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(process_exists)
    }

    /// SIGTERM and wait up to 15 s for the exit status; panics (after SIGKILL) if it does
    /// not exit in time, since the relay must. Returns the last status if already stopped.
    pub fn stop(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            return self.last_status.expect("the relay was never started");
        };
        let (status, in_time) = terminate(&mut child);
        self.last_status = Some(status);
        assert!(
            in_time,
            "relay did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
            tail(&self.stderr_text(), 40)
        );
        status
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.last_status = Some(kill_and_reap(&mut child));
        }
    }

    /// Stop it (SIGTERM) if it runs, then start it again in the same dir on the same
    /// config and wait until ready. Stderr lines keep accumulating.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn_and_wait();
    }

    /// Kill it if it runs and hand back its dir, e.g. for [`Relay::start_in`] with
    /// another config.
    pub fn into_dir(mut self) -> TempDir {
        self.kill9();
        self.dir.take().expect("the dir is only taken by into_dir")
    }

    /// Stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stderr so far, one line per line.
    pub fn stderr_text(&self) -> String {
        self.stderr_lines().join("\n")
    }

    /// Wait until a stderr line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.stderr_lines().iter().any(|l| l.contains(needle))
        })
    }
}

/// Run the relay on `config` in a fresh temp dir when it is expected not to start:
/// its exit status and stderr once it exits, or `None` (it was killed) if it still runs
/// after `within`.
pub fn run_relay_until_exit(config: &str, within: Duration) -> (Option<ExitStatus>, String) {
    let dir = harness_tempdir("relay").unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let path = dir.path().join("relay.toml");
    fs::write(&path, config).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_influx-relay"));
    cmd.arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot run the relay: {e}"));
    let status = wait_timeout(&mut child, within);
    if status.is_none() {
        kill_and_reap(&mut child);
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status, stderr)
}

impl Drop for Relay {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- relay stderr (last lines) ---\n{}",
                tail(&self.stderr_text(), 60)
            );
        }
        self.kill9();
    }
}
