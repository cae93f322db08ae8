//! A real browser for the tests: headless `chromium` driven over the DevTools protocol
//! on a pipe (`--remote-debugging-pipe`: JSON messages ending in a NUL byte, commands on
//! the browser's fd 3, answers and events on its fd 4). A pipe needs no WebSocket
//! client and no port, and it closes when either side dies.
//!
//! The browser runs with a fresh profile and everything that would reach the internet
//! turned off; like every child of the harness it dies with the test binary.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::*;

/// How long one DevTools command may take to answer (15 s): a page load on a busy
/// two-core machine stays well inside it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the browser may take to exit after `Browser.close` before it is killed (5 s).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Set (to anything) to fail instead of skip when no browser is installed; CI sets it.
pub const REQUIRE_ENV: &str = "INFLUX_RELAY_REQUIRE_BROWSER";

/// The browser binary: `$CHROMIUM`, else `chromium` on the `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// The browser, or `None` after saying why the test is skipped. Panics instead when
/// [`REQUIRE_ENV`] is set, so a machine that should have a browser never skips quietly.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_ENV).is_none(),
            "{test}: no chromium on the PATH and {REQUIRE_ENV} is set"
        );
        eprintln!(
            "SKIPPED {test}: no chromium on the PATH (apt-get install chromium; \
             scripts/test.sh installs it)"
        );
    }
    found
}

pub struct Browser {
    child: Option<Child>,
    commands: File,
    messages: mpsc::Receiver<Result<Json, String>>,
    next_id: u64,
    /// The DevTools session of the one page this browser shows.
    session: String,
    profile: TempDir,
}

/// A pipe end moved above the standard descriptors, close-on-exec.
fn high_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: `fd` is a descriptor this process just created and owns; the copy is new.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    // SAFETY: the original is ours and nothing else refers to it.
    unsafe { libc::close(fd) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// A pipe as (read end, write end), both close-on-exec and numbered 10 or above, so
/// that placing them on fds 3 and 4 in the child can never overwrite one with the other.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((high_fd(fds[0])?, high_fd(fds[1])?))
}

impl Browser {
    /// Start `chromium` headless with a `width`×`height` window on `about:blank` and
    /// attach to its page.
    pub fn start(chromium: &Path, width: u32, height: u32) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix(&format!("chromium-{}-", std::process::id()))
            .tempdir()
            .expect("a temp dir for the browser profile");
        let (to_browser, commands) = pipe().expect("a pipe to the browser");
        let (messages, from_browser) = pipe().expect("a pipe from the browser");
        let log = File::create(profile.path().join("chromium.log")).expect("browser log");
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let (child_in, child_out) = (
            std::os::fd::AsRawFd::as_raw_fd(&to_browser),
            std::os::fd::AsRawFd::as_raw_fd(&from_browser),
        );
        // SAFETY: dup2 is async-signal-safe; the sources are open in the child (they
        // are only closed on exec) and above 4, so dup2 makes fresh, inheritable copies.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(child_in, 3) < 0 || libc::dup2(child_out, 4) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot start {chromium:?}: {e}"));
        // The child's ends must close here, or its exit would never look like one.
        drop((to_browser, from_browser));

        let (tx, rx) = mpsc::channel();
        let reader = BufReader::new(File::from(messages));
        thread::Builder::new()
            .name("browser-reader".into())
            .spawn(move || read_messages(reader, &tx))
            .expect("start the browser reader");
        let mut browser = Browser {
            child: Some(child),
            commands: File::from(commands),
            messages: rx,
            next_id: 0,
            session: String::new(),
            profile,
        };
        let targets = browser.call("Target.getTargets", "{}");
        let page = targets["targetInfos"]
            .as_arr()
            .unwrap_or_default()
            .iter()
            .find(|t| t["type"].as_str() == Some("page"))
            .and_then(|t| t["targetId"].as_str())
            .unwrap_or_else(|| panic!("the browser shows no page: {targets}"))
            .to_string();
        let attached = browser.call(
            "Target.attachToTarget",
            &format!("{{\"targetId\":{},\"flatten\":true}}", quote(&page)),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {attached}"))
            .to_string();
        browser
    }

    /// Send one command (to the page once attached) and wait for its result.
    pub fn call(&mut self, method: &str, params: &str) -> Json {
        self.next_id += 1;
        let id = self.next_id;
        let session = if self.session.is_empty() {
            String::new()
        } else {
            format!(",\"sessionId\":{}", quote(&self.session))
        };
        let msg = format!("{{\"id\":{id},\"method\":\"{method}\",\"params\":{params}{session}}}\0");
        if let Err(e) = self.commands.write_all(msg.as_bytes()) {
            panic!(
                "{method}: the browser is gone ({e}); its log:\n{}",
                self.log()
            );
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(Ok(m)) if m["id"].as_u64() == Some(id) => {
                    if !m["error"].is_null() {
                        panic!("{method} failed: {}", m["error"]);
                    }
                    return m["result"].clone();
                }
                // An event, or the answer to a command given up on.
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("{method}: {e}; browser log:\n{}", self.log()),
                Err(_) => panic!(
                    "{method}: no answer within {COMMAND_TIMEOUT:?}; browser log:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Load `url` in the page (the answer comes once the navigation is committed).
    pub fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", &format!("{{\"url\":{}}}", quote(url)));
        if let Some(e) = result["errorText"].as_str() {
            panic!("cannot load {url}: {e}");
        }
    }

    /// The value of a JavaScript expression in the page, as JSON.
    pub fn eval(&mut self, expression: &str) -> Json {
        let result = self.call(
            "Runtime.evaluate",
            &format!(
                "{{\"expression\":{},\"returnByValue\":true}}",
                quote(expression)
            ),
        );
        if !result["exceptionDetails"].is_null() {
            panic!("{expression} threw: {}", result["exceptionDetails"]);
        }
        result["result"]["value"].clone()
    }

    /// Show the page as a device of this size would (`mobile` adds touch and the
    /// phone viewport rules).
    pub fn resize(&mut self, width: u32, height: u32, scale: f64, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            &format!(
                "{{\"width\":{width},\"height\":{height},\"deviceScaleFactor\":{scale},\"mobile\":{mobile}}}"
            ),
        );
    }

    /// Save what the page shows now as a PNG at `path` (directories created).
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call(
            "Page.captureScreenshot",
            "{\"format\":\"png\",\"captureBeyondViewport\":true}",
        );
        let data = shot["data"].as_str().expect("screenshot data");
        let png = base64_decode(data).expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
    }

    fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Politely first, so it removes its own temporary files; then by force.
        let _ = self
            .commands
            .write_all(b"{\"id\":0,\"method\":\"Browser.close\",\"params\":{}}\0");
        if wait_timeout(&mut child, CLOSE_TIMEOUT).is_none() {
            kill_and_reap(&mut child);
        }
    }
}

/// Messages from the browser, one per NUL-terminated chunk, until the pipe closes.
fn read_messages(mut reader: BufReader<File>, tx: &mpsc::Sender<Result<Json, String>>) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let item = match reader.read_until(0, &mut buf) {
            Ok(0) => Err("the browser closed its pipe".to_string()),
            Ok(_) if buf.last() == Some(&0) => {
                let text = String::from_utf8_lossy(&buf[..buf.len() - 1]);
                Json::parse(&text).map_err(|e| format!("bad message from the browser: {e}"))
            }
            Ok(_) => Err("the browser closed its pipe mid-message".to_string()),
            Err(e) => Err(format!("reading from the browser: {e}")),
        };
        let last = item.is_err();
        if tx.send(item).is_err() || last {
            return;
        }
    }
}

/// `s` as a JSON string literal.
fn quote(s: &str) -> String {
    Json::Str(s.to_string()).to_string()
}

/// Standard base64 (with padding) to bytes.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let got = chunk.len() * 6 / 8;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + got]);
    }
    Some(out)
}

#[test]
fn base64_decodes_known_vectors() {
    for (enc, plain) in [
        ("", ""),
        ("Zg==", "f"),
        ("Zm8=", "fo"),
        ("Zm9v", "foo"),
        ("Zm9vYmFy", "foobar"),
    ] {
        assert_eq!(base64_decode(enc).as_deref(), Some(plain.as_bytes()));
    }
    assert_eq!(base64_decode("Zm9v!"), None);
}
