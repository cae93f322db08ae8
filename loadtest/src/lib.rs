//! Load generator and InfluxDB stand-in for testing influx-relay.
//!
//! ```text
//! run:  args → gen (lines with run id + per-stream seq) → client (HTTP framing)
//!       → run (mio loops, pacing, UDP sender) → report (hdrhistogram, text / JSON)
//! sink: args → sink (accept, one thread per connection, UDP thread)
//!       → scan (quote-aware lines, markers) → seq (per-run, per-stream bitmaps) → /stats
//! ```
//!
//! The generator tags every line with `gen=<run id>` and the fields `stream` and `seq`;
//! the sink counts what arrived per stream, so a script can compute lost lines as
//! `lines_sent − unique` and read duplicates and reorders directly.

pub mod args;
pub mod client;
pub mod gen;
pub mod json;
pub mod mmsg;
pub mod report;
pub mod run;
pub mod scan;
pub mod seq;
pub mod sink;

#[cfg(test)]
mod e2e;
