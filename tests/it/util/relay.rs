//! The relay under test: its configuration built in code, and the process.

use super::*;

pub(crate) enum ListenerKind {
    Http,
    Udp,
}

pub(crate) struct ListenerSpec {
    pub(crate) kind: ListenerKind,
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) options: Vec<(String, toml::Value)>,
    pub(crate) outputs: Vec<OutputSpec>,
}

pub(crate) struct OutputSpec {
    pub(crate) options: Vec<(String, toml::Value)>,
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
    pub(crate) globals: Vec<(String, toml::Value)>,
    pub(crate) listeners: Vec<ListenerSpec>,
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

    pub(crate) fn last_listener(&mut self, what: &str) -> &mut ListenerSpec {
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
pub(crate) fn connect_addr(bind: &str) -> Result<SocketAddr, String> {
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
    pub(crate) config: String,
    pub(crate) endpoints: RelayEndpoints,
    pub(crate) child: Option<Child>,
    pub(crate) last_status: Option<ExitStatus>,
    pub(crate) stderr: Arc<Mutex<Vec<String>>>,
    /// A capability the process must run without (see [`Relay::start_without_capability`]).
    pub(crate) dropped_capability: Option<libc::c_int>,
    /// `Some` until `into_dir`; last so that it goes after the process.
    pub(crate) dir: Option<TempDir>,
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

    pub(crate) fn start_in_without(dir: TempDir, config: &str, cap: Option<libc::c_int>) -> Relay {
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

    pub(crate) fn spawn_and_wait(&mut self) {
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

    pub(crate) fn answers(&self) -> bool {
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
