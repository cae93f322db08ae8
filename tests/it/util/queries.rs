//! InfluxQL queries against a backend or the relay, with results as rows and counts.

use super::*;

/// `GET /query?db=DB&q=Q&epoch=ns`, or the error: HTTP status, or the `error` of the
/// answer or of any statement.
pub fn try_query(addr: SocketAddr, db: &str, q: &str) -> Result<Json, String> {
    let path = format!("/query?db={}&q={}&epoch=ns", url_encode(db), url_encode(q));
    let resp = try_http_request(addr, "GET", &path, &[], b"", HTTP_TIMEOUT)
        .map_err(|e| format!("{addr}: {e}"))?;
    let text = resp.body_str();
    if resp.status != 200 {
        return Err(format!("{addr}: {q}: HTTP {}: {text}", resp.status));
    }
    let json = Json::parse(&text).map_err(|e| format!("{addr}: {q}: {e}: {text}"))?;
    let statement_error = json["results"]
        .as_arr()
        .unwrap_or_default()
        .iter()
        .find_map(|r| r["error"].as_str());
    if let Some(err) = json["error"].as_str().or(statement_error) {
        return Err(format!("{addr}: {q}: {err}"));
    }
    Ok(json)
}

/// [`try_query`], panicking on any error.
pub fn query(addr: SocketAddr, db: &str, q: &str) -> Json {
    try_query(addr, db, q).unwrap_or_else(|e| panic!("query failed: {e}"))
}

/// The rows of the first statement's series, each value as its JSON text (strings keep
/// their quotes; time first, in nanoseconds), series after series.
pub fn rows(addr: SocketAddr, db: &str, q: &str) -> Vec<Vec<String>> {
    let json = query(addr, db, q);
    let mut out = Vec::new();
    for series in json["results"][0]["series"].as_arr().unwrap_or_default() {
        for row in series["values"].as_arr().unwrap_or_default() {
            out.push(
                row.as_arr()
                    .unwrap_or_default()
                    .iter()
                    .map(Json::to_string)
                    .collect(),
            );
        }
    }
    out
}

/// Points in `measurement`: `SELECT count(*)`, taking per row the largest field count
/// (adding them would count a point once per field), summed over rows and series. 0 when
/// the measurement or the database does not exist yet.
pub fn count(addr: SocketAddr, db: &str, measurement: &str) -> u64 {
    let q = format!("SELECT count(*) FROM {}", quote_ident(measurement));
    let json = match try_query(addr, db, &q) {
        Ok(json) => json,
        Err(e) if e.contains("database not found") => return 0,
        Err(e) => panic!("count failed: {e}"),
    };
    let mut total = 0;
    for series in json["results"][0]["series"].as_arr().unwrap_or_default() {
        for row in series["values"].as_arr().unwrap_or_default() {
            let counts = row.as_arr().unwrap_or_default().iter().skip(1);
            total += counts.filter_map(Json::as_u64).max().unwrap_or(0);
        }
    }
    total
}
