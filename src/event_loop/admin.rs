//! `/admin/rebuild`: start (`POST`), show (`GET`) and cancel (`DELETE`) the rebuild of a
//! backend. The work runs on its own thread (see `rebuild`); the loop only checks the
//! request against the configuration and answers at once.

use super::*;
use crate::rebuild::{self, Params, Refusal};

impl EventLoop {
    /// The answer's status and JSON body.
    pub(super) fn admin_rebuild(&mut self, method: Method, query: &str) -> (u16, String) {
        let outcome = match method {
            Method::Post => self.start_rebuild(query),
            Method::Delete => self.cancel_rebuild(query),
            _ => self.show_rebuild(query),
        };
        outcome.unwrap_or_else(|refusal| {
            let mut body = String::from("{\"error\":");
            crate::observe::json_str(&mut body, &refusal.message);
            if let Some(job) = &refusal.running {
                body.push_str(",\"rebuild\":");
                rebuild::render(&mut body, job);
            }
            body.push('}');
            (refusal.status, body)
        })
    }

    fn start_rebuild(&mut self, query: &str) -> Result<(u16, String), Refusal> {
        let asked = Asked::parse(query)?;
        let output = asked.output()?;
        let at = rebuild::find(&self.shared, asked.listener.as_deref(), output)?;
        let mut params = rebuild::default_params(&self.shared, at);
        asked.apply(&mut params)?;
        let job = self.shared.rebuilds.start(&self.shared, params)?;
        let mut body = String::new();
        rebuild::render(&mut body, &job);
        Ok((202, body))
    }

    fn cancel_rebuild(&mut self, query: &str) -> Result<(u16, String), Refusal> {
        let asked = Asked::parse(query)?;
        let output = asked.output()?;
        let at = rebuild::find(&self.shared, asked.listener.as_deref(), output)?;
        let listener = &self.shared.http[at.listener].config.name;
        let job = self
            .shared
            .rebuilds
            .cancel(listener, output)
            .ok_or_else(|| {
                Refusal::new(404, format!("no rebuild of output {output:?} is running"))
            })?;
        let mut body = String::new();
        rebuild::render(&mut body, &job);
        Ok((200, body))
    }

    fn show_rebuild(&mut self, query: &str) -> Result<(u16, String), Refusal> {
        let asked = Asked::parse(query)?;
        let Some(output) = &asked.output else {
            return Ok((200, rebuild::render_all(&self.shared.rebuilds.all())));
        };
        let at = rebuild::find(&self.shared, asked.listener.as_deref(), output)?;
        let listener = &self.shared.http[at.listener].config.name;
        let job =
            self.shared.rebuilds.find(listener, output).ok_or_else(|| {
                Refusal::new(404, format!("output {output:?} has not been rebuilt"))
            })?;
        let mut body = String::new();
        rebuild::render(&mut body, &job);
        Ok((200, body))
    }
}

/// The query string of an `/admin/rebuild` request.
#[derive(Default)]
struct Asked {
    output: Option<String>,
    listener: Option<String>,
    source: Option<String>,
    databases: Vec<String>,
    since: Option<String>,
    until: Option<String>,
    window: Option<String>,
    rate: Option<String>,
    chunk_size: Option<String>,
    give_up_after: Option<String>,
    dropped: Option<String>,
}

impl Asked {
    fn parse(query: &str) -> Result<Asked, Refusal> {
        let mut a = Asked::default();
        for (key, value) in write::query_pairs(query) {
            let slot = match key.as_str() {
                "output" => &mut a.output,
                "listener" => &mut a.listener,
                "source" => &mut a.source,
                "db" => {
                    a.databases.push(value);
                    continue;
                }
                "since" => &mut a.since,
                "until" => &mut a.until,
                "window" => &mut a.window,
                "rate" => &mut a.rate,
                "chunk-size" => &mut a.chunk_size,
                "give-up-after" => &mut a.give_up_after,
                "dropped" => &mut a.dropped,
                // Credentials may come in the query string.
                "u" | "p" => continue,
                other => {
                    return Err(Refusal::new(
                        400,
                        format!(
                            "unknown parameter {other:?}; known: output, listener, source, db, since, until, window, rate, chunk-size, give-up-after, dropped"
                        ),
                    ))
                }
            };
            *slot = Some(value);
        }
        Ok(a)
    }

    fn output(&self) -> Result<&str, Refusal> {
        self.output
            .as_deref()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| Refusal::new(400, "missing output=NAME: the output to rebuild"))
    }

    /// Override the defaults in `params` with what was asked.
    fn apply(&self, params: &mut Params) -> Result<(), Refusal> {
        let bad = |key: &str, e: String| Refusal::new(400, format!("{key}: {e}"));
        if let Some(source) = &self.source {
            params.source = source.clone();
        }
        params.databases = self.databases.clone();
        params.databases.sort();
        params.databases.dedup();
        if let Some(until) = &self.until {
            params.until = crate::verify::time::parse_time(until).map_err(|e| bad("until", e))?;
        }
        match self.since.as_deref() {
            None | Some("all") => params.since = None,
            Some(d) => {
                let d = crate::config::parse_duration(d)
                    .map_err(|e| bad("since", format!("{e}, or all")))?;
                params.since = Some(
                    params
                        .until
                        .saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
                );
            }
        }
        if let Some(w) = &self.window {
            let w = crate::config::parse_duration(w).map_err(|e| bad("window", e))?;
            params.window = i64::try_from(w.as_nanos()).unwrap_or(i64::MAX);
        }
        if let Some(r) = &self.rate {
            params.rate = r
                .parse()
                .map_err(|_| bad("rate", "not a number of queries per second".into()))?;
        }
        if let Some(c) = &self.chunk_size {
            params.chunk_size = c
                .parse()
                .map_err(|_| bad("chunk-size", "not a number of rows".into()))?;
        }
        if let Some(g) = &self.give_up_after {
            params.give_up_after =
                crate::config::parse_duration(g).map_err(|e| bad("give-up-after", e))?;
        }
        if let Some(d) = &self.dropped {
            params.dropped = match d.as_str() {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                _ => return Err(bad("dropped", "true or false".into())),
            };
        }
        Ok(())
    }
}
