//! `influx-relay rebuild`: start, follow, show or cancel a rebuild on a running relay
//! through its `/admin/rebuild` endpoint.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::backend::client::Client;
use crate::http::write::percent_encode_into;

pub const USAGE: &str = "\
usage: influx-relay rebuild --url http://RELAY:PORT --output NAME [options]

Fills the output (backend) NAME from another backend on the running relay at --url,
then follows the progress until it is done. Reads skip NAME until then. Exits 0 when
the rebuild is done, 1 when it failed or was cancelled, 2 on a bad argument or when the
relay cannot be reached or refuses.

  --url URL               the relay, http://host:port (one of its HTTP listeners)
  --output NAME           the output to fill
  --listener NAME         the listener of that output, when several have one so named
  --source NAME           the output to copy from (default: another 1.x output of the
                          listener that serves reads)
  --db DB                 only this database; repeat for more (default: all but _internal)
  --since DURATION|all    only points newer than this (default: all)
  --until TIME            only points older than this, RFC 3339 or nanoseconds
                          (default: the start plus one minute; later ones arrive live)
  --window DURATION       time window compared and copied at once (default: 24h)
  --rate N                queries per second to each backend, at most (default: no limit)
  --chunk-size N          rows per chunk of a source answer (default: 10000)
  --give-up-after DURATION  how long a failing step is retried (default: 5m)
  --dropped               only the time ranges the relay recorded as dropped for NAME
  --user U --password P   the relay's credentials (or INFLUX_USERNAME, INFLUX_PASSWORD)
  --detach                start it and exit at once
  --status                only show the output's rebuild
  --cancel                cancel the output's running rebuild
  --json                  print the final status as JSON
";

/// How often the progress is asked for.
const POLL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Args {
    url: Option<String>,
    output: Option<String>,
    /// `key=value` pairs for the query string, in order.
    pairs: Vec<(&'static str, String)>,
    user: Option<String>,
    password: Option<String>,
    detach: bool,
    status: bool,
    cancel: bool,
    json: bool,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let param = match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--url" => {
                a.url = Some(value()?);
                continue;
            }
            "--output" => {
                a.output = Some(value()?);
                continue;
            }
            "--user" => {
                a.user = Some(value()?);
                continue;
            }
            "--password" => {
                a.password = Some(value()?);
                continue;
            }
            "--detach" => {
                a.detach = true;
                continue;
            }
            "--status" => {
                a.status = true;
                continue;
            }
            "--cancel" => {
                a.cancel = true;
                continue;
            }
            "--json" => {
                a.json = true;
                continue;
            }
            "--dropped" => {
                a.pairs.push(("dropped", "true".into()));
                continue;
            }
            "--listener" => "listener",
            "--source" => "source",
            "--db" => "db",
            "--since" => "since",
            "--until" => "until",
            "--window" => "window",
            "--rate" => "rate",
            "--chunk-size" => "chunk-size",
            "--give-up-after" => "give-up-after",
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        };
        a.pairs.push((param, value()?));
    }
    if a.url.is_none() || a.output.is_none() {
        return Err("--url and --output are required (see --help)".into());
    }
    if a.status && a.cancel {
        return Err("--status and --cancel do not go together".into());
    }
    Ok(Some(a))
}

/// `influx-relay rebuild …`: `args` are those after `rebuild`.
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match parse(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let url = args.url.as_deref().unwrap_or_default();
    let location = crate::config::parse_location(url).map_err(|e| format!("--url: {e}"))?;
    if location.https {
        return Err("--url: only http:// relays can be driven from here; for an HTTPS listener use its /admin/rebuild endpoint (see README)".into());
    }
    let mut client = Client::new(location, Duration::from_secs(30), None);
    let user = args
        .user
        .clone()
        .or_else(|| std::env::var("INFLUX_USERNAME").ok());
    let password = args
        .password
        .clone()
        .or_else(|| std::env::var("INFLUX_PASSWORD").ok());
    let auth = match (user, password) {
        (Some(user), Some(pass)) if !user.is_empty() => {
            Some(crate::config::BasicAuth { user, pass }.header_value())
        }
        _ => None,
    };
    let auth = auth.as_deref().map(str::as_bytes);
    let output = args.output.as_deref().unwrap_or_default();
    let mut query = String::from("output=");
    percent_encode_into(&mut query, output);
    let mut exchange = |method: &str, query: &str| -> Result<(u16, String), String> {
        let path = format!("/admin/rebuild?{query}");
        let answer = if method == "POST" {
            client.post("/admin/rebuild", query, auth, &[], false)
        } else {
            client.bodyless(method, &path, auth)
        }
        .map_err(|e| format!("{url}: {e}"))?;
        Ok((
            answer.status,
            String::from_utf8_lossy(&answer.body).into_owned(),
        ))
    };
    let refused = |status: u16, body: &str| -> String {
        let message = json_field(body, "error").unwrap_or_else(|| body.trim().to_string());
        format!("the relay answered {status}: {message}")
    };
    let mut status = if args.cancel {
        let (code, body) = exchange("DELETE", &query)?;
        if code != 200 {
            return Err(refused(code, &body));
        }
        body
    } else if args.status {
        let (code, body) = exchange("GET", &query)?;
        if code != 200 {
            return Err(refused(code, &body));
        }
        body
    } else {
        let mut start = query.clone();
        for (key, value) in &args.pairs {
            start.push('&');
            start.push_str(key);
            start.push('=');
            percent_encode_into(&mut start, value);
        }
        let (code, body) = exchange("POST", &start)?;
        if code != 202 {
            return Err(refused(code, &body));
        }
        body
    };
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(2) } == 1;
    let follow = !(args.detach || args.status || args.cancel);
    let mut shown = false;
    let started = Instant::now();
    while follow && state(&status) == "running" {
        if tty {
            let line = progress_line(&status);
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2K{}",
                line.chars().take(120).collect::<String>()
            );
            let _ = err.flush();
            shown = true;
        }
        std::thread::sleep(POLL);
        let (code, body) = exchange("GET", &query)?;
        if code != 200 {
            return Err(refused(code, &body));
        }
        status = body;
        let _ = started;
    }
    if shown {
        let _ = std::io::stderr().write_all(b"\r\x1b[2K");
    }
    if args.json {
        println!("{}", status.trim());
    } else {
        println!("{}", summary(&status));
    }
    Ok(match state(&status).as_str() {
        "done" | "running" => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

fn state(status: &str) -> String {
    json_field(status, "state").unwrap_or_default()
}

fn field(status: &str, key: &str) -> String {
    json_field(status, key).unwrap_or_else(|| "?".into())
}

fn progress_line(status: &str) -> String {
    format!(
        "rebuild {}: {} · windows {}/{} · {} points · {}/s · eta {}s · {}",
        field(status, "output"),
        field(status, "phase"),
        field(status, "windows_done"),
        field(status, "windows_total"),
        field(status, "points_copied"),
        field(status, "rate_points_per_s"),
        field(status, "eta_seconds"),
        field(status, "current"),
    )
}

fn summary(status: &str) -> String {
    let mut out = format!(
        "rebuild of {} from {}: {}\n  windows: {} of {} ({} copied, {} already equal, {} copied again after a live write)\n  copied: {} points, {} bytes · {} queries, {} retries",
        field(status, "output"),
        field(status, "source"),
        field(status, "state"),
        field(status, "windows_done"),
        field(status, "windows_total"),
        field(status, "windows_copied"),
        field(status, "windows_equal"),
        field(status, "windows_redone"),
        field(status, "points_copied"),
        field(status, "bytes_copied"),
        field(status, "queries"),
        field(status, "retries"),
    );
    let error = field(status, "error");
    if error != "null" && error != "?" {
        out.push_str("\n  error: ");
        out.push_str(&error);
    }
    out
}

/// The value of `"key":` in one of the relay's JSON answers, strings decoded, other
/// values as written. The relay's status objects name each top-level key once, before
/// any nested object, so the first match is the one.
fn json_field(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &text[at..];
    if let Some(body) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        None
    } else {
        let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_query_parameters() {
        let args = |v: &[&str]| parse(v.iter().map(|s| s.to_string()));
        let a = args(&[
            "--url",
            "http://h:1",
            "--output=b",
            "--db",
            "x",
            "--dropped",
            "--since=72h",
        ])
        .expect("parses")
        .expect("runs");
        assert_eq!(a.output.as_deref(), Some("b"));
        assert_eq!(
            a.pairs,
            [
                ("db", "x".to_string()),
                ("dropped", "true".to_string()),
                ("since", "72h".to_string())
            ]
        );
        assert!(args(&["--output", "b"]).is_err());
        assert!(args(&["--url", "http://h:1", "--output", "b", "--nope"]).is_err());
        assert!(matches!(args(&["--help"]), Ok(None)));
    }

    #[test]
    fn fields_are_read_from_the_top_level() {
        let text = r#"{"state":"failed","n":12,"error":"a \"b\"\n","errors":[{"message":"x"}]}"#;
        assert_eq!(json_field(text, "state").as_deref(), Some("failed"));
        assert_eq!(json_field(text, "n").as_deref(), Some("12"));
        assert_eq!(json_field(text, "error").as_deref(), Some("a \"b\"\n"));
        assert_eq!(json_field(text, "missing"), None);
    }

    #[test]
    fn the_summary_reads_the_status() {
        let status = r#"{"output":"b","source":"a","state":"done","windows_done":3,"windows_total":3,"points_copied":10,"error":null}"#;
        let text = summary(status);
        assert!(text.starts_with("rebuild of b from a: done"), "{text}");
        assert!(text.contains("3 of 3"));
        assert!(!text.contains("error"));
    }
}
