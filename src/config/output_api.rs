//! Which write API an HTTP output speaks, and what goes with it (`org`, `token`,
//! `reads`; README: InfluxDB 2.x and 3.x).
//!
//! The API is read off the `location` path, so a URL copied from a server's own docs
//! says it all: `…/api/v2/write` is InfluxDB 2.x's (also InfluxDB 1.8+'s and
//! VictoriaMetrics'), `…/api/v3/write_lp` InfluxDB 3's, anything else (normally
//! `…/write`) the 1.x API. A prefix before those paths (a proxy's) is kept.

use std::fmt;

/// An output's write API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputApi {
    /// `POST …/write?db=&rp=&precision=`, and InfluxQL on `…/query`.
    V1,
    /// `POST …/api/v2/write?org=&bucket=db/rp&precision=`; `org` from the output.
    V2 { org: String },
    /// `POST …/api/v3/write_lp?db=&precision=`.
    V3,
}

/// Path suffix that makes an output a 2.x one.
pub const V2_WRITE_PATH: &str = "/api/v2/write";
/// Path suffix that makes an output a 3.x one.
pub const V3_WRITE_PATH: &str = "/api/v3/write_lp";

/// Default `reads` of a 1.x output: true, it answers InfluxQL reads on `/query`.
pub const DEFAULT_READS_V1: bool = true;
/// Default `reads` of a 2.x output: false. Its `/query` (where there is one) answers
/// only databases mapped to buckets by hand, and VictoriaMetrics has none at all.
pub const DEFAULT_READS_V2: bool = false;
/// Default `reads` of a 3.x output: true, InfluxDB 3 answers InfluxQL reads on
/// `/query` for every database.
pub const DEFAULT_READS_V3: bool = true;

/// The API a location path names, before `org` is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PathApi {
    V1,
    V2,
    V3,
}

pub(super) fn api_of_path(path: &str) -> PathApi {
    if path.ends_with(V2_WRITE_PATH) {
        PathApi::V2
    } else if path.ends_with(V3_WRITE_PATH) {
        PathApi::V3
    } else {
        PathApi::V1
    }
}

impl OutputApi {
    /// As `--check-config` and the logs print it.
    pub fn name(&self) -> &'static str {
        match self {
            OutputApi::V1 => "v1",
            OutputApi::V2 { .. } => "v2",
            OutputApi::V3 => "v3",
        }
    }
}

/// A credential the relay sends but must never print (`token`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
