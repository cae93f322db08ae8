//! `loadtest sink …` and `loadtest run …`: parse, start, print. See README.md.

use std::io::Write;
use std::process::ExitCode;

use loadtest::args::{self, Command};
use loadtest::{run, sink};

fn main() -> ExitCode {
    let cmd = match args::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match cmd {
        Command::Help => {
            print!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("loadtest {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Sink(cfg) => {
            let handle = match sink::start(&cfg) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("error: sink cannot start on {}: {e}", cfg.http);
                    return ExitCode::FAILURE;
                }
            };
            // Scripts read the ports from this first line, so it must go out at once.
            let mut line = format!("listening http={}", handle.http_addr());
            if let Some(u) = handle.udp_addr() {
                line.push_str(&format!(" udp={u}"));
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            drop(out);
            handle.wait();
            ExitCode::SUCCESS
        }
        Command::Run(cfg) => match run::run(&cfg, run::progress_for(cfg.progress)) {
            Ok(report) => {
                if cfg.json {
                    println!("{}", report.to_json());
                } else {
                    print!("{}", report.to_text());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: run failed: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
