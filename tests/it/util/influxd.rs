//! Throwaway `influxd` 1.x processes on free loopback ports, and the two shared ones.

use super::*;

#[derive(Clone, Copy, Debug)]
pub(crate) struct InfluxdPorts {
    pub(crate) http: u16,
    /// The backup/RPC service (top-level `bind-address`).
    pub(crate) rpc: u16,
    pub(crate) udp: u16,
}

impl InfluxdPorts {
    pub(crate) fn pick() -> Self {
        InfluxdPorts {
            http: free_port(),
            rpc: free_port(),
            udp: free_udp_port(),
        }
    }
}

/// Why one attempt to start `influxd` failed.
pub(crate) enum StartError {
    /// Another program holds one of the ports: worth retrying with fresh ones.
    PortTaken(String),
    Fatal(String),
}

/// A throwaway `influxd` 1.6: its own temp dir (meta, data, wal, config, log) and its own
/// ports on 127.0.0.1 (HTTP, RPC, and a UDP listener writing into database `udp`).
/// Dropping it kills the process and removes the directory.
pub struct Influxd {
    pub(crate) ports: InfluxdPorts,
    /// `[http] auth-enabled`: every request but `/ping` needs a user's credentials.
    pub(crate) auth: bool,
    /// `None` once the process has been reaped (after `kill9` or `stop`).
    pub(crate) child: Option<Child>,
    /// Last so that it is removed after the process is dead.
    pub(crate) dir: TempDir,
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

    pub(crate) fn try_start(auth: bool) -> Result<Influxd, String> {
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

    pub(crate) fn config_path(&self) -> PathBuf {
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

    pub(crate) fn config_text(&self) -> String {
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
    pub(crate) fn spawn_and_wait(&mut self, deadline: Instant) -> Result<(), StartError> {
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

    pub(crate) fn wait_ready(&mut self, deadline: Instant) -> Result<(), StartError> {
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
    pub(crate) fn kill_at_exit(&self) {
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
pub(crate) fn ping_ok(addr: SocketAddr, version: Option<&str>) -> bool {
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
pub(crate) fn serves_config(addr: SocketAddr, config_path: &str) -> bool {
    match try_http_request(addr, "GET", "/debug/vars", &[], b"", Duration::from_secs(2)) {
        Ok(resp) => resp.status == 200 && resp.body_str().contains(config_path),
        Err(_) => false,
    }
}

pub(crate) static SHARED: OnceLock<[Influxd; 2]> = OnceLock::new();

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
