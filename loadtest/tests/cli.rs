//! The `loadtest` binary's command line as scripts and people call it.

use std::process::Command;

fn loadtest(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .output()
        .expect("run the loadtest binary")
}

/// `loadtest --version` failed with "unknown command" and the usage text.
#[test]
fn version_prints_name_and_version_and_exits_zero() {
    let out = loadtest(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("loadtest {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_exits_zero_and_an_unknown_command_exits_two() {
    let out = loadtest(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("loadtest sink"));
    let out = loadtest(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A sink on a free port, killed when dropped.
struct Sink(std::process::Child, String);

impl Sink {
    fn start() -> Sink {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(["sink", "--http", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start a sink");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("sink stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .expect("the sink's first line");
        let addr = first
            .trim()
            .strip_prefix("listening http=")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        Sink(child, addr)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Progress on a pipe (as in a CI log) is plain text, and on request it is one line
/// rewritten in place that ends before the report.
#[test]
fn progress_is_plain_in_a_pipe_and_live_on_request() {
    let sink = Sink::start();
    let target = format!("http://{}", sink.1);
    let base = ["run", "--target", &target, "--connections", "2"];

    let out = loadtest(&[&base[..], &["--duration", "1500ms"]].concat());
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\u{1b}') && !err.contains('\r'),
        "control characters in {err:?}"
    );

    let out = loadtest(&[&base[..], &["--duration", "2500ms", "--progress", "live"]].concat());
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("\r[   1s] "), "{err:?}");
    assert!(
        err.contains(" lines/s ") && err.contains("p99 so far"),
        "{err:?}"
    );
    assert!(
        err.contains("\r[   2s] ") && err.contains("s left\u{1b}[K"),
        "{err:?}"
    );
    assert!(err.ends_with("\u{1b}[K\n"), "{err:?}");
}
