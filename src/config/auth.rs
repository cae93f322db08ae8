//! Relay-side users: names, passwords or their SHA-256, the users file.

use super::*;

/// `users`, `users-file` and `auth-metrics` of the listener at `p`. Authentication is on
/// when either source is given; a source that yields nobody is an error rather than a
/// listener that silently refuses everyone.
pub(super) fn build_auth(
    p: &str,
    users: Vec<RawUser>,
    users_file: Option<String>,
    auth_metrics: Option<bool>,
) -> Result<Option<AuthConfig>, ConfigError> {
    let at = |key: &str| format!("{p}.{key}");
    let users_file = non_empty(users_file);
    if users.is_empty() && users_file.is_none() {
        if auth_metrics == Some(true) {
            return Err(error(
                at("auth-metrics"),
                "needs users or users-file: there is nobody to authenticate",
            ));
        }
        return Ok(None);
    }
    let mut auth = AuthConfig {
        users: Vec::new(),
        tokens: Vec::new(),
        metrics: auth_metrics.unwrap_or(DEFAULT_AUTH_METRICS),
    };
    // Where each user name and token came from, for duplicate messages.
    let mut names: HashMap<String, String> = HashMap::new();
    let mut tokens: HashMap<[u8; 32], String> = HashMap::new();

    for raw in users {
        let u = &raw.path;
        let key = |k: &str| format!("{u}.{k}");
        match (raw.name, raw.password_sha256, raw.token_sha256) {
            (None, None, Some(token)) => {
                let digest = sha256_hex(&token).map_err(|m| error(key("token-sha256"), m))?;
                if let Some(first) = tokens.insert(digest, u.clone()) {
                    return Err(error(
                        key("token-sha256"),
                        format!("duplicate token (also given by {first})"),
                    ));
                }
                auth.tokens.push(digest);
            }
            (_, _, Some(_)) => {
                return Err(error(
                    u.clone(),
                    "a token entry takes only token-sha256 (no name or password-sha256)",
                ))
            }
            (None, None, None) => {
                return Err(error(
                    u.clone(),
                    "expected name and password-sha256, or token-sha256",
                ))
            }
            (None, Some(_), None) => return Err(error(key("name"), "missing")),
            (Some(_), None, None) => return Err(error(key("password-sha256"), "missing")),
            (Some(name), Some(hex), None) => {
                check_user_name(&name).map_err(|m| error(key("name"), m))?;
                let digest = sha256_hex(&hex).map_err(|m| error(key("password-sha256"), m))?;
                if let Some(first) = names.insert(name.clone(), u.clone()) {
                    return Err(error(
                        key("name"),
                        format!("duplicate user \"{name}\" (also in {first})"),
                    ));
                }
                auth.users.push(User {
                    name,
                    password_sha256: digest,
                });
            }
        }
    }

    if let Some(file) = users_file {
        let path = at("users-file");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| error(&path, format!("cannot read \"{file}\": {e}")))?;
        let before = auth.users.len();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at_line = |m: String| error(&path, format!("\"{file}\" line {}: {m}", i + 1));
            let (name, hex) = line
                .split_once(':')
                .ok_or_else(|| at_line("expected name:sha256hex".to_string()))?;
            let name = name.trim();
            check_user_name(name).map_err(|m| at_line(m.to_string()))?;
            let digest = sha256_hex(hex.trim()).map_err(at_line)?;
            let here = format!("\"{file}\" line {}", i + 1);
            if let Some(first) = names.insert(name.to_string(), here) {
                return Err(at_line(format!(
                    "duplicate user \"{name}\" (also in {first})"
                )));
            }
            auth.users.push(User {
                name: name.to_string(),
                password_sha256: digest,
            });
        }
        // An empty file is more likely a deployment mistake than an intent.
        if auth.users.len() == before {
            return Err(error(
                &path,
                format!("\"{file}\" has no users (one name:sha256hex per line)"),
            ));
        }
    }
    Ok(Some(auth))
}

/// A name Basic credentials can carry: the first `:` ends the user name there.
pub(super) fn check_user_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.contains(':') {
        return Err("must not contain ':'");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

/// A SHA-256 digest written as 64 hex digits (what `sha256sum` prints).
pub(super) fn sha256_hex(text: &str) -> Result<[u8; 32], String> {
    let hint = "expected the SHA-256 digest as 64 hex digits \
                (e.g. printf %s 'secret' | sha256sum), not the secret itself";
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return Err(format!("{hint}; got {} characters", text.chars().count()));
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |b: u8| (b as char).to_digit(16).ok_or_else(|| hint.to_string());
        *o = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
    }
    Ok(out)
}

/// Standard base64 with padding, for one `Authorization` header per output at start-up.
pub(crate) fn base64_encode(input: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
}
