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
