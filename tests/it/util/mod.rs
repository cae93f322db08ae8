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

mod http;
mod influxd;
mod json;
mod ports;
mod process;
mod queries;
mod relay;

pub use http::*;
pub use influxd::*;
pub use json::*;
pub use ports::*;
pub use process::*;
pub use queries::*;
pub use relay::*;
