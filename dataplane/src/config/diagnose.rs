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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const FORWARD: &str = "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n";
    const TENSOR: &str =
        "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n";

    fn error(text: &str) -> String {
        let e = Config::parse(text).expect_err(text).0;
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn each_shape_of_serde_error_becomes_one_line_naming_the_key() {
        for (text, want) in [
            (
                "pipeline = \"forward\n".to_owned(),
                "invalid TOML at line 1, column 20: invalid basic string",
            ),
            (
                "pipeline = \"forward\"\n".to_owned(),
                "missing key `pairs` at the top level",
            ),
            (
                format!("{FORWARD}pipeline = \"steer\"\n"),
                "unknown key `pipeline` in [[pairs]] (`pairs[0]`): `pipeline` is a top-level key, and keys below a [section] header belong to that section; move it above the first header (line 4, column 1)",
            ),
            (
                format!("{FORWARD}[control]\nlisten = \"127.0.0.1\"\npeers = []\n"),
                "`control.listen` must be an address and port (a string such as \"127.0.0.1:7470\"), found \"127.0.0.1\" (line 5, column 10)",
            ),
            (
                format!("{FORWARD}[metrics]\nlisten = 9470\n"),
                "`metrics.listen` must be an address and port (a string such as \"127.0.0.1:7470\"), found an integer 9470 (line 5, column 10)",
            ),
            (
                format!("{TENSOR}[tensor.qp]\nexit_ratio = \"half\"\n"),
                "`tensor.qp.exit_ratio` must be a number, found a string \"half\" (line 7, column 14)",
            ),
            (
                format!("{TENSOR}key_id = 300\n"),
                "`tensor.key_id` must be an integer from 0 to 255, found 300 (line 6, column 10)",
            ),
            (
                format!("{TENSOR}[[tensor.nodes]]\nname = \"a\"\nip = \"10.0.0.x\"\nweight = 1\n"),
                "`tensor.nodes[0].ip` must be an IPv4 address (a string such as \"192.0.2.1\"), found \"10.0.0.x\" (line 8, column 6)",
            ),
            (
                format!("{TENSOR}[[tensor.nodes]]\nname = \"a\"\nip = \"10.0.0.1\"\n"),
                "missing key `weight` in [[tensor.nodes]] (`tensor.nodes[0]`) (line 6, column 1)",
            ),
            (
                format!("{TENSOR}validate_icrc = \"yes\"\n"),
                "`tensor.validate_icrc` must be true or false, found a string \"yes\" (line 6, column 17)",
            ),
        ] {
            assert_eq!(error(&text), want, "{text}");
        }
    }

    #[test]
    fn range_errors_name_the_key_after_parsing() {
        for (extra, want) in [
            (
                "qp_table_size = 0\n",
                "`tensor.qp_table_size` must be from 1 to 4194304, found 0",
            ),
            (
                "vni = 16777216\n",
                "`tensor.vni` must be from 0 to 16777215, found 16777216",
            ),
            (
                "min_slice_bytes = 10\n",
                "`tensor.min_slice_bytes` must be at least 4096, found 10",
            ),
            (
                "[tensor.qp]\nexit_ratio = 1.5\n",
                "`tensor.qp.exit_ratio` must be a number > 0 and <= 1, found 1.5",
            ),
            (
                "[[tensor.egress]]\nport = 1\nrate_mbps = 0\n",
                "`tensor.egress[0].rate_mbps` must be a number > 0, found 0",
            ),
        ] {
            assert_eq!(error(&format!("{TENSOR}{extra}")), want, "{extra}");
        }
    }
}
