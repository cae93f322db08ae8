//! Values as the file spells them: durations (Go syntax), sizes, addresses, URLs,
//! precisions.

use super::*;

/// `n ns u us µ ms s m h`, empty = nanoseconds: the spellings InfluxDB accepts for
/// `precision=`.
pub(super) fn parse_precision(s: &str) -> Option<Precision> {
    if s.is_empty() {
        return Some(Precision::Nanoseconds);
    }
    Precision::parse(s)
}

pub(super) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

pub(super) fn integer_in(
    path: &str,
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let n = value.unwrap_or(default);
    if n < min {
        return Err(error(path, format!("must be at least {min}, got {n}")));
    }
    if n > max {
        return Err(error(path, format!("must be at most {max}, got {n}")));
    }
    Ok(n)
}

pub(super) fn bytes(path: &str, count: i64, unit: u64) -> Result<usize, ConfigError> {
    u64::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(unit))
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| error(path, format!("{count} is too large")))
}

/// An empty string means "default", as it did in the original (its fields were strings
/// checked with `!= ""`).
pub(super) fn duration(
    path: &str,
    value: Option<String>,
    default: Duration,
    allow_zero: bool,
) -> Result<Duration, ConfigError> {
    let text = match value {
        Some(s) if !s.is_empty() => s,
        _ => return Ok(default),
    };
    let d = parse_duration(&text).map_err(|m| error(path, m))?;
    if d.is_zero() && !allow_zero {
        return Err(error(
            path,
            format!("must be greater than 0, got \"{text}\""),
        ));
    }
    Ok(d)
}

/// `ip:port`, `[v6]:port`, `:port` (all IPv4 interfaces) or `name:port` (resolved now).
pub(super) fn bind_address(path: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix(':') {
        let port = port
            .parse::<u16>()
            .map_err(|_| error(path, format!("invalid port in \"{text}\"")))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    resolve(text).map_err(|m| error(path, m))
}

pub(super) fn udp_target(text: &str) -> Result<SocketAddr, String> {
    let addr = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => resolve(text)?,
    };
    if addr.port() == 0 {
        return Err(format!("port 0 in \"{text}\" is not a destination"));
    }
    if addr.ip().is_unspecified() {
        return Err(format!("\"{text}\" is not a destination address"));
    }
    Ok(addr)
}

/// Names resolve once, at load time, to their first address by [`lookup`].
pub(super) fn resolve(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = text
        .rsplit_once(':')
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| format!("expected host:port, got \"{text}\""))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port in \"{text}\""))?;
    lookup(host, port)
        .map_err(|e| format!("cannot resolve \"{text}\": {e}"))?
        .first()
        .copied()
        .ok_or_else(|| format!("cannot resolve \"{text}\": no addresses"))
}

/// `http[s]://host[:port][/path][?query]`. A query is accepted and ignored, as in the
/// original, where the client's query string replaced it.
pub fn parse_location(url: &str) -> Result<Location, String> {
    let bad = |why: &str| format!("invalid URL \"{url}\": {why}");
    let (https, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        Some((scheme, _)) => return Err(bad(&format!("scheme \"{scheme}\" is not http or https"))),
        None => return Err(bad("expected http://host[:port]/write or https://…")),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (rest, _query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(bad(
            "credentials in the URL are not supported; use http-user and http-pass",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("invalid IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("unexpected text after ']'"))?,
            ),
        };
        (ip, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let host_ok = authority.starts_with('[')
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !host_ok {
        return Err(bad("invalid character in host"));
    }
    let default_port = if https { 443 } else { 80 };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad(&format!("invalid port \"{p}\""))),
            Ok(n) => n,
        },
    };
    // The path goes verbatim into the request line, so nothing that would split it.
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "the path must not contain spaces or control characters",
        ));
    }
    let path = if path.is_empty() || path == "/" {
        DEFAULT_WRITE_PATH
    } else {
        path
    };
    Ok(Location {
        https,
        host: host.to_string(),
        port,
        path: path.to_string(),
        url: url.to_string(),
    })
}

/// Go duration syntax (`time.ParseDuration`): `500ms`, `10s`, `1m30s`, `1.5h`, `250us`,
/// `250µs`, `-0`, or a bare `0`. Negative durations are refused: nothing here waits a
/// negative time. The range is Go's, about 292 years.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration \"{s}\": {why}");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
        None => return Err(invalid("empty")),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("no number"));
    }
    const LIMIT: u128 = i64::MAX as u128;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(invalid("missing unit (use ns, us, ms, s, m or h)")),
            other => return Err(invalid(&format!("unknown unit \"{other}\""))),
        };
        let out_of_range = || invalid("out of range");
        let mut whole: u128 = 0;
        for d in int_digits.bytes() {
            whole = whole * 10 + u128::from(d - b'0');
            if whole > LIMIT {
                return Err(out_of_range());
            }
        }
        let mut part = whole
            .checked_mul(scale)
            .filter(|&v| v <= LIMIT)
            .ok_or_else(out_of_range)?;
        // Digits beyond nanosecond resolution cannot change the result; 20 keeps the
        // arithmetic inside u128 whatever the unit.
        let mut frac: u128 = 0;
        let mut denom: u128 = 1;
        for d in frac_digits.bytes().take(20) {
            frac = frac * 10 + u128::from(d - b'0');
            denom *= 10;
        }
        part += frac * scale / denom;
        total += part;
        if total > LIMIT {
            return Err(out_of_range());
        }
        rest = after;
    }
    if negative && total != 0 {
        return Err(invalid("negative durations are not allowed"));
    }
    Ok(Duration::from_nanos(total as u64))
}
