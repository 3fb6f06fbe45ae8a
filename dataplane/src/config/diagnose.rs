//! Turns what serde and toml say about a bad config into one line that
//! names the key, what it must be and what was found.
//!
//! serde's messages have a fixed shape ("invalid type: string \"32\",
//! expected u16"); `serde_path_to_error` adds the key path. The message is
//! rewritten in the operator's terms (TOML types, not Rust ones), and a
//! message of an unknown shape is kept as it is rather than lost.

use std::fmt;

use serde::de::{self, Unexpected, Visitor};
use serde_path_to_error::{Path, Segment};

use super::{ConfigError, TOP_LEVEL_KEYS};

/// A string that must be one of a few names: the visitor of `pipeline`,
/// `steer.policy` and other named choices. Its `expecting` is what an
/// error shows: `one of "forward", "steer", "tensor" (a string)`.
pub(crate) struct OneOf<T> {
    choices: Vec<(&'static str, T)>,
}

impl<T> OneOf<T> {
    pub(crate) fn new(choices: impl IntoIterator<Item = (&'static str, T)>) -> OneOf<T> {
        OneOf {
            choices: choices.into_iter().collect(),
        }
    }
}

impl<'de, T: Copy> Visitor<'de> for OneOf<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of ")?;
        for (i, (name, _)) in self.choices.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name:?}")?;
        }
        f.write_str(" (a string)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        match self.choices.iter().find(|(name, _)| *name == v) {
            Some((_, value)) => Ok(*value),
            None => Err(E::invalid_value(Unexpected::Str(v), &self)),
        }
    }
}

/// Deserializes through a [`OneOf`]; for `deserialize_with`.
pub(crate) fn one_of<'de, D, T>(
    d: D,
    choices: impl IntoIterator<Item = (&'static str, T)>,
) -> Result<T, D::Error>
where
    D: de::Deserializer<'de>,
    T: Copy,
{
    d.deserialize_str(OneOf::new(choices))
}

/// One line for a config that did not deserialize.
pub(super) fn describe(text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let inner = e.inner();
    let msg = inner.message().trim().replace('\n', " ");
    let span = inner.span();
    let position = span.as_ref().map(|s| line_col(text, s.start));
    let at = position.map_or(String::new(), |(line, col)| {
        format!(" (line {line}, column {col})")
    });
    let source = span
        .as_ref()
        .and_then(|s| text.get(s.clone()))
        .unwrap_or("")
        .trim();
    let path = KeyPath::of(e.path());

    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let section = path.parent();
        let mut line = format!("unknown key `{key}` {}", section.place());
        if !section.is_root() && TOP_LEVEL_KEYS.contains(&key) {
            line.push_str(&format!(
                ": `{key}` is a top-level key, and keys below a [section] header belong to that section; move it above the first header"
            ));
        } else {
            let names = backticked(expected);
            match nearest(key, &names) {
                Some(near) => line.push_str(&format!(": did you mean `{near}`?")),
                None if names.is_empty() => line.push_str(": this table takes no keys"),
                None => line.push_str(&format!(
                    ": expected one of {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        return ConfigError(format!("{line}{at}"));
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        let at = if path.is_root() { "" } else { at.as_str() };
        return ConfigError(format!("missing key `{key}` {}{at}", path.place()));
    }
    if let Some(rest) = msg.strip_prefix("duplicate field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        return ConfigError(format!("key `{key}` is given twice {}{at}", path.place()));
    }
    if path.is_root() {
        // Nothing deserialized yet: the text is not TOML.
        let at = position.map_or(String::new(), |(line, col)| {
            format!(" at line {line}, column {col}")
        });
        return ConfigError(format!("invalid TOML{at}: {msg}"));
    }
    let key = path.to_string();
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.rsplit_once(", expected ") {
            // serde's derive also takes a table's fields positionally from an
            // array, so `[[ports]]` for `[ports]` surfaces as its first
            // element having the wrong type.
            if found == "map" && source.starts_with("[[") && path.ends_in_index() {
                let table = path.parent();
                let header = table.header();
                return ConfigError(format!(
                    "`{table}` must be a table, found an array (a table is written [{header}], not [[{header}]]){at}"
                ));
            }
            let mut line = format!(
                "`{key}` must be {}, found {}",
                expected_in_toml(expected),
                found_type(found)
            );
            line.push_str(&shape_hint(&path, found, expected, source));
            return ConfigError(format!("{line}{at}"));
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.rsplit_once(", expected ") {
            return ConfigError(format!(
                "`{key}` must be {}, found {}{at}",
                expected_in_toml(expected),
                found_value(found)
            ));
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid length ") {
        if let Some((n, expected)) = rest.split_once(", expected ") {
            let plural = if n == "1" { "" } else { "s" };
            return ConfigError(format!(
                "`{key}` must be {}, found {n} element{plural}{at}",
                expected_in_toml(expected)
            ));
        }
    }
    // The standard library's address parsers say "invalid IP address
    // syntax" and the like, without the value.
    if let Some(what) = msg
        .strip_prefix("invalid ")
        .and_then(|m| m.strip_suffix(" syntax"))
    {
        return ConfigError(format!(
            "`{key}` must be {}, found {source}{at}",
            expected_in_toml(what)
        ));
    }
    ConfigError(format!("`{key}`: {msg}{at}"))
}

/// A key's place in the file, as serde walked to it.
struct KeyPath(Vec<Step>);

enum Step {
    Key(String),
    Index(usize),
}

impl KeyPath {
    fn of(path: &Path) -> KeyPath {
        KeyPath(
            path.iter()
                .filter_map(|s| match s {
                    Segment::Map { key } => Some(Step::Key(key.clone())),
                    Segment::Seq { index } => Some(Step::Index(*index)),
                    Segment::Enum { variant } => Some(Step::Key(variant.clone())),
                    Segment::Unknown => None,
                })
                .collect(),
        )
    }

    fn ends_in_index(&self) -> bool {
        matches!(self.0.last(), Some(Step::Index(_)))
    }

    fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    fn parent(&self) -> KeyPath {
        let mut steps: Vec<Step> = self
            .0
            .iter()
            .map(|s| match s {
                Step::Key(k) => Step::Key(k.clone()),
                Step::Index(i) => Step::Index(*i),
            })
            .collect();
        steps.pop();
        KeyPath(steps)
    }

    /// The dotted keys without indices: `steer.paths`.
    fn header(&self) -> String {
        self.0
            .iter()
            .filter_map(|s| match s {
                Step::Key(k) => Some(k.as_str()),
                Step::Index(_) => None,
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Where a key is: "at the top level", "in [ports]",
    /// "in [[steer.paths]] (`steer.paths[1]`)".
    fn place(&self) -> String {
        match self.0.last() {
            None => "at the top level".into(),
            Some(Step::Index(_)) => format!("in [[{}]] (`{self}`)", self.header()),
            Some(Step::Key(_)) => format!("in [{}]", self.header()),
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Step::Key(k) if i == 0 => f.write_str(k)?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// serde's description of a Rust type, in TOML's terms.
fn expected_in_toml(expected: &str) -> String {
    let int = |lo: u64, hi: u64| format!("an integer from {lo} to {hi}");
    match expected {
        "u8" => int(0, u8::MAX.into()),
        "u16" => int(0, u16::MAX.into()),
        "u32" => int(0, u32::MAX.into()),
        "u64" | "usize" => int(0, u64::MAX),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "IP address" => "an IP address (a string such as \"192.0.2.1\")".into(),
        "IPv4 address" => "an IPv4 address (a string such as \"192.0.2.1\")".into(),
        "IPv6 address" => "an IPv6 address (a string such as \"2001:db8::1\")".into(),
        "socket address" => "an address and port (a string such as \"127.0.0.1:7470\")".into(),
        "path string" => "a file path (a string)".into(),
        s if s.starts_with("struct ") => "a table".into(),
        s => s.into(),
    }
}

/// serde's `Unexpected` for a value of the wrong type: "a table",
/// "a string \"32\"".
fn found_type(found: &str) -> String {
    if let Some(v) = found.strip_prefix("integer ") {
        return format!("an integer {}", v.trim_matches('`'));
    }
    if let Some(v) = found.strip_prefix("floating point ") {
        return format!("a float {}", v.trim_matches('`'));
    }
    if let Some(v) = found.strip_prefix("boolean ") {
        return format!("a boolean {}", v.trim_matches('`'));
    }
    if found.starts_with("string ") {
        return format!("a {found}");
    }
    match found {
        "map" => "a table".into(),
        "sequence" => "an array".into(),
        other => other.into(),
    }
}

/// serde's `Unexpected` for a value of the right type: just the value.
fn found_value(found: &str) -> String {
    for prefix in ["integer ", "floating point ", "boolean "] {
        if let Some(v) = found.strip_prefix(prefix) {
            return v.trim_matches('`').into();
        }
    }
    if let Some(v) = found.strip_prefix("string ") {
        return v.into();
    }
    found_type(found)
}

/// `[pairs]` for `[[pairs]]` and the other way round: the header was
/// written with the wrong number of brackets.
fn shape_hint(path: &KeyPath, found: &str, expected: &str, source: &str) -> String {
    let header = path.header();
    let wants_table = expected == "a map" || expected.starts_with("struct ");
    if expected == "a sequence" && found == "map" && source.starts_with('[') {
        format!(" (an array of tables is written [[{header}]], not [{header}])")
    } else if wants_table && found == "sequence" && source.starts_with("[[") {
        format!(" (a table is written [{header}], not [[{header}]])")
    } else {
        String::new()
    }
}

/// The names in serde's "expected one of `a`, `b`".
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The known key an unknown one was most likely meant to be.
fn nearest<'a>(key: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(key, n), *n))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
