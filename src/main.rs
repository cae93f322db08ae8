//! `influx-relay`: parse the command line, load the config, run until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use influx_relay::config::{self, Config};
use influx_relay::relay::Relay;

const USAGE: &str = "\
usage: influx-relay [-config FILE | --config FILE] [--check-config]
       influx-relay verify --config FILE [...]   (compare the backends; verify --help)
       influx-relay rebuild --url URL --output NAME [...]   (fill a backend; rebuild --help)
       influx-relay --version | --help

Relays InfluxDB writes (HTTP /write, /api/v2/write, /api/v3/write_lp and UDP) to every
configured backend.

  -config, --config FILE  configuration file (default: ./relay.toml)
  --check-config          load and validate the configuration, print a summary, exit
  --version               print the version and exit
  --help                  print this help and exit

A commented sample configuration is in config/relay.toml.
";

/// Default configuration file, looked up in the working directory.
const DEFAULT_CONFIG: &str = "relay.toml";

struct Args {
    config: Option<PathBuf>,
    check: bool,
}

enum Parsed {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args() -> Result<Parsed, String> {
    let mut args = Args {
        config: None,
        check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-config" | "--config" => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("{arg} needs a file name"))?;
                args.config = Some(PathBuf::from(v));
            }
            "--check-config" | "-check-config" => args.check = true,
            "--version" | "-version" | "-V" => {
                println!("influx-relay {}", env!("CARGO_PKG_VERSION"));
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            "--help" | "-help" | "-h" => {
                print!("{USAGE}");
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            other => {
                if let Some(v) = other
                    .strip_prefix("--config=")
                    .or_else(|| other.strip_prefix("-config="))
                {
                    args.config = Some(PathBuf::from(v));
                } else {
                    return Err(format!("unknown argument {other:?} (see --help)"));
                }
            }
        }
    }
    Ok(Parsed::Run(args))
}

/// Bodies larger than glibc's default mmap threshold (128 KiB, raised dynamically up
/// to 32 MiB) are mapped fresh and unmapped when freed, and the freeing usually happens
/// on a backend's thread: every such body then costs page faults and zeroed pages on top
/// of the zeroing the loop does itself (6.6% of the relay's CPU with 1000-line bodies).
/// Serving all of them from the heap, and keeping freed memory up to the trim threshold
/// for the next body, avoids that.
const MALLOC_MMAP_THRESHOLD: libc::c_int = 32 << 20;
const MALLOC_TRIM_THRESHOLD: libc::c_int = 64 << 20;

fn main() -> ExitCode {
    // SAFETY: mallopt only sets allocator tunables; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
    }
    // A subcommand of its own: it reads the backends and exits, the relay never starts.
    let mut raw = std::env::args().skip(1);
    match raw.next().as_deref() {
        Some("verify") => return influx_relay::verify::main(raw),
        Some("rebuild") => return influx_relay::rebuild::cli::main(raw),
        _ => {}
    }
    let args = match parse_args() {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Exit(code)) => return code,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let path = match args.config {
        Some(p) => p,
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => {
            eprintln!(
                "error: no configuration: pass -config FILE (or --config FILE), or put {DEFAULT_CONFIG} in the \
                 working directory; config/relay.toml is a commented sample"
            );
            return ExitCode::from(2);
        }
    };
    // PEM files are read now too, so --check-config catches a bad one like a bad key.
    let config = match config::load(&path).and_then(|c| influx_relay::tls::check(&c).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if args.check {
        print!("{}", summary(&path, &config));
        return ExitCode::SUCCESS;
    }
    influx_relay::log::set_level(config.log_level);
    run(config)
}

fn run(config: Config) -> ExitCode {
    // Registered before anything starts, so an early SIGTERM still shuts down cleanly.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let relay = match Relay::start(&config) {
        Ok(r) => r,
        Err(e) => {
            influx_relay::error!("cannot start", error = e);
            return ExitCode::from(1);
        }
    };
    if let Some(signal) = signals.forever().next() {
        influx_relay::info!("shutting down", signal = signal);
    }
    relay.shutdown();
    influx_relay::info!("stopped");
    ExitCode::SUCCESS
}

/// The one-screen summary of `--check-config`.
fn summary(path: &std::path::Path, c: &Config) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{}: ok", path.display());
    let _ = writeln!(
        s,
        "threads={} pin-threads={} spool-dir={} log-level={} shutdown-timeout={:?}",
        c.threads,
        c.pin_threads,
        c.spool_dir.display(),
        format!("{:?}", c.log_level).to_lowercase(),
        c.shutdown_timeout
    );
    for l in &c.http {
        let tls = if l.ssl_combined_pem.is_some() {
            " tls"
        } else {
            ""
        };
        let auth = match &l.auth {
            Some(a) => format!(" auth={}users+{}tokens", a.users.len(), a.tokens.len()),
            None => String::new(),
        };
        let forward = if l.forward_credentials {
            ""
        } else {
            " credentials-not-forwarded"
        };
        let ack = format!("{:?}", l.ack).to_lowercase();
        let _ = writeln!(
            s,
            "http {:?} on {}{tls}{auth}{forward} ack={ack}",
            l.name, l.bind_addr
        );
        for o in &l.outputs {
            let _ = writeln!(
                s,
                "  -> {:?} {} api={}{}{} timeout={:?} concurrency={} buffer={}MB spool={}MB full-queue={}{}",
                o.name,
                o.location.url,
                o.api.name(),
                if o.reads { "" } else { " write-only" },
                if o.takes_statements() {
                    ""
                } else {
                    " no-statements"
                },
                o.timeout,
                o.concurrency,
                o.buffer_size >> 20,
                o.spool_size >> 20,
                o.full_queue_policy().as_str(),
                if o.gzip { " gzip" } else { "" }
            );
        }
    }
    for u in &c.udp {
        let _ = writeln!(
            s,
            "udp {:?} on {} precision={:?}",
            u.name, u.bind_addr, u.precision
        );
        for o in &u.outputs {
            let _ = writeln!(s, "  -> {:?} {} mtu={}", o.name, o.location, o.mtu);
        }
    }
    s
}
