//! The config file as text: reading it, layering `CHIRPD_<SECTION>__<KEY>` environment overrides over
//! it, deserializing the result into `RawConfig`, and finding the line of any key for error messages.
//!
//! Positions come from the `toml` parser's own spans, never from the wording of an error message. An
//! error never quotes the offending line, because that line may hold a secret.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};

use super::raw::RawConfig;
use super::{ConfigError, ConfigErrors, Env};
use crate::render::Origin;

/// The file's text and name, and the line of every key path in it, found by the parser once.
pub(super) struct Locator {
    pub file: String,
    text: String,
    /// `server.listen`, `sources.acme.secret`, `routes[2].template`, … → 1-based line.
    lines: BTreeMap<String, usize>,
}

impl Locator {
    pub fn new(file: String, text: String) -> Locator {
        let mut lines = BTreeMap::new();
        if let Ok(doc) = DeTable::parse(&text) {
            index_table(&text, doc.get_ref(), "", &mut lines);
        }
        Locator { file, text, lines }
    }

    /// `file:line` of a key path such as `routes[2].template` or `sources.acme.secret`; the line of the
    /// nearest enclosing table when the key itself is absent, and the file alone when nothing is found.
    pub fn at(&self, key: &str) -> String {
        at(&self.file, self.line_of(key))
    }

    /// Where a template written at `key` starts, for its errors' `file:line`.
    pub fn origin(&self, key: &str) -> Origin {
        Origin {
            file: self.file.clone(),
            first_line: self.line_of(key).unwrap_or(1),
        }
    }

    /// The 1-based line of a key path, or of its nearest enclosing key the file has.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(line) = self.lines.get(key) {
                return Some(*line);
            }
            key = &key[..key.rfind(['.', '['])?];
        }
    }
}

/// Records the line of every key under `table`, whose path is `prefix`.
fn index_table(text: &str, table: &DeTable<'_>, prefix: &str, lines: &mut BTreeMap<String, usize>) {
    for (k, v) in table.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        lines.insert(path.clone(), line_at(text, k.span().start));
        match v.get_ref() {
            DeValue::Table(t) => index_table(text, t, &path, lines),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    lines.insert(item_path.clone(), line_at(text, item.span().start));
                    if let DeValue::Table(t) = item.get_ref() {
                        index_table(text, t, &item_path, lines);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The 1-based line that holds byte `offset` of `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

pub(super) fn at(file: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{file}:{l}"),
        None => file.to_string(),
    }
}

pub(super) fn one(location: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        location: location.to_string(),
        message,
    }])
}

/// The environment's config overrides: `CHIRPD_SERVER__LISTEN=…` sets `server.listen`. Only names with
/// `__` are keys; `CHIRPD_CONFIG` and the like are not.
fn overrides(env: &dyn Env) -> Vec<(String, Vec<String>, String)> {
    let mut found: Vec<_> = env
        .vars()
        .into_iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix("CHIRPD_")?;
            if !key.contains("__") {
                return None;
            }
            let path = key
                .to_ascii_lowercase()
                .split("__")
                .map(str::to_string)
                .collect();
            Some((name, path, value))
        })
        .collect();
    found.sort();
    found
}

/// An override's value as TOML: a number, boolean or array when it reads as one, else a string
/// (`0.0.0.0:8787` stays a string, `2048` becomes an integer).
fn override_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

/// Parses the file and its environment overrides into a `RawConfig`.
pub(super) fn parse(loc: &Locator, env: &dyn Env) -> Result<RawConfig, ConfigErrors> {
    // The file alone first, so that its errors point at its lines.
    let from_file: RawConfig = toml::from_str(&loc.text).map_err(|e| {
        let line = e.span().map(|s| line_at(&loc.text, s.start));
        one(&at(&loc.file, line), e.message().replace('\n', " "))
    })?;
    let overrides = overrides(env);
    if overrides.is_empty() {
        return Ok(from_file);
    }
    let mut table: toml::Table =
        toml::from_str(&loc.text).map_err(|e| one(&loc.file, e.message().to_string()))?;
    for (name, path, value) in &overrides {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let mut t = &mut table;
        for p in parents {
            let entry = t
                .entry(p.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(next) = entry.as_table_mut() else {
                return Err(one(name, format!("{} is not a table", p)));
            };
            t = next;
        }
        t.insert(last.clone(), override_value(value));
    }
    table.try_into::<RawConfig>().map_err(|e| {
        let names: Vec<&str> = overrides.iter().map(|(n, _, _)| n.as_str()).collect();
        one(
            &format!("environment ({})", names.join(", ")),
            e.message().replace('\n', " "),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[server]\nlisten = \"x\"\n\n[sources.\"acme\"]\nprovider = \"github\"\n\n[[routes]]\nsource = \"a\"\n\n[[routes]]\ntemplate = \"\"\"\nhi\n\"\"\"\n";

    #[test]
    fn keys_are_located_by_the_parser_not_by_scanning_text() {
        let loc = Locator::new("c.toml".into(), TEXT.into());
        assert_eq!(loc.at("server.listen"), "c.toml:2");
        assert_eq!(loc.at("sources.acme.provider"), "c.toml:5");
        // Absent keys point at their table.
        assert_eq!(loc.at("sources.acme.secret"), "c.toml:4");
        assert_eq!(loc.at("routes[1].template"), "c.toml:11");
        assert_eq!(loc.at("routes[0].source"), "c.toml:8");
        assert_eq!(loc.at("nothing.here"), "c.toml");
    }

    #[test]
    fn override_values_keep_their_toml_types() {
        assert_eq!(override_value("2048"), toml::Value::Integer(2048));
        assert_eq!(override_value("true"), toml::Value::Boolean(true));
        assert_eq!(
            override_value("0.0.0.0:8787"),
            toml::Value::String("0.0.0.0:8787".into())
        );
    }
}
