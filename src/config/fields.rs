//! Stage 1, part one: one TOML table taken apart key by key; what is left is an unknown
//! key, reported with the closest known name.

use super::*;

/// One TOML table being taken apart. Each accessor removes its key and remembers the
/// name, so that `finish` can report what is left as unknown, with a suggestion.
pub(super) struct Fields {
    pub(super) path: String,
    pub(super) table: toml::Table,
    pub(super) known: Vec<&'static str>,
}

impl Fields {
    pub(super) fn new(path: String, table: toml::Table) -> Fields {
        Fields {
            path,
            table,
            known: Vec::new(),
        }
    }

    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    pub(super) fn take(&mut self, key: &'static str) -> Option<toml::Value> {
        self.known.push(key);
        self.table.remove(key)
    }

    pub(super) fn wrong_type(&self, key: &str, expected: &str, found: &toml::Value) -> ConfigError {
        error(
            self.key_path(key),
            format!("expected {expected}, found {}", type_name(found)),
        )
    }

    pub(super) fn string(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", &other)),
        }
    }

    /// Durations are Go strings in the original; a bare number is ambiguous (seconds?
    /// nanoseconds, as Go would read it?), so it is refused with a hint.
    pub(super) fn duration(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a duration string such as \"10s\"", &other)),
        }
    }

    pub(super) fn integer(&mut self, key: &'static str) -> Result<Option<i64>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(i)),
            Some(other) => Err(self.wrong_type(key, "an integer", &other)),
        }
    }

    pub(super) fn boolean(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(b)),
            Some(other) => Err(self.wrong_type(key, "true or false", &other)),
        }
    }

    /// `[[key]]` sections or `key = [ { ... }, ... ]`; TOML makes both the same value.
    pub(super) fn tables(
        &mut self,
        key: &'static str,
    ) -> Result<Vec<(String, toml::Table)>, ConfigError> {
        let items = match self.take(key) {
            None => return Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items,
            Some(other) => {
                return Err(self.wrong_type(
                    key,
                    &format!("an array of tables ([[{key}]])"),
                    &other,
                ))
            }
        };
        let base = self.key_path(key);
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("{base}[{i}]");
                match item {
                    toml::Value::Table(t) => Ok((path, t)),
                    other => Err(error(
                        path,
                        format!("expected a table, found {}", type_name(&other)),
                    )),
                }
            })
            .collect()
    }

    pub(super) fn finish(self) -> Result<(), ConfigError> {
        // The table is sorted, so the first unknown key reported is deterministic.
        match self.table.keys().next() {
            None => Ok(()),
            Some(key) => {
                let mut message = format!("unknown key \"{key}\"");
                if let Some(near) = suggest(key, &self.known) {
                    message.push_str(&format!(" (did you mean \"{near}\"?)"));
                }
                Err(error(self.path, message))
            }
        }
    }
}

pub(super) fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// The known key an unknown one was probably meant to be: `bind_addr`, `Bind-Addr` and
/// one- or two-letter slips are the usual mistakes.
pub(super) fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    let normalised = unknown.to_ascii_lowercase().replace('_', "-");
    known
        .iter()
        .map(|&k| (k, edit_distance(&normalised, k)))
        .filter(|&(_, d)| d <= 2)
        .min_by_key(|&(_, d)| d)
        .map(|(k, _)| k)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}
