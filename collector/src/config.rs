//! `collector --config FILE.toml`: what to scrape, where to push. Every
//! key is in `docs/configuration.md` ("The collector"), which
//! `reference_matches_the_structs` checks against these structs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Default scrape interval, as the Gateway API Inference Extension and
/// llm-d use.
pub const DEFAULT_INTERVAL_MS: u64 = 50;
/// Default time a scrape may take before the node counts as down.
pub const DEFAULT_TIMEOUT_MS: u64 = 200;
/// Default period of CAPABILITY announcements (and `/v1/models` reads).
pub const DEFAULT_CAPABILITY_INTERVAL_MS: u64 = 1000;

fn default_interval_ms() -> u64 {
    DEFAULT_INTERVAL_MS
}
fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_capability_interval_ms() -> u64 {
    DEFAULT_CAPABILITY_INTERVAL_MS
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Scrape period, milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Longest a scrape (connect and read) may take, milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// CAPABILITY period, milliseconds.
    #[serde(default = "default_capability_interval_ms")]
    pub capability_interval_ms: u64,
    /// This peer's control key file.
    pub key_file: PathBuf,
    /// This peer's key id.
    pub key_id: u32,
    /// The appliances' control addresses.
    pub appliances: Vec<SocketAddr>,
    /// The inference servers.
    pub instances: Vec<InstanceConfig>,
}

/// One inference server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// The node id the appliance knows it by.
    pub node: u16,
    /// Its Prometheus endpoint, `http://HOST:PORT/metrics`.
    pub metrics_url: String,
    /// Its model list; default: `/v1/models` on the metrics URL's origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_url: Option<String>,
    /// Batch slots (max running requests), for GPU utilisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// What to announce in CAPABILITY; none: no CAPABILITY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<CapabilityConfig>,
}

/// A model's size class, as `intellinode ctl capability --class` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelClass {
    /// A small edge model.
    Edge,
    /// A large central model.
    Centre,
}

/// The configured part of a CAPABILITY.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityConfig {
    /// Model class.
    pub class: ModelClass,
    /// Accelerator, e.g. `A100`.
    pub accelerator: String,
    /// Task types served.
    pub tasks: Vec<String>,
    /// Prefill rate, tokens per second.
    pub prefill_tps: f64,
    /// Decode rate of one stream, tokens per second.
    pub decode_tps: f64,
    /// Model name; default: the first model `/v1/models` lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Longest context, tokens; default: `max_model_len` from `/v1/models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context: Option<u32>,
}

impl InstanceConfig {
    /// The model-list URL: `models_url`, or `/v1/models` on the metrics
    /// URL's scheme, host and port.
    pub fn models_url(&self) -> String {
        if let Some(u) = &self.models_url {
            return u.clone();
        }
        let (scheme, rest) = self
            .metrics_url
            .split_once("://")
            .unwrap_or(("http", self.metrics_url.as_str()));
        let authority = rest.split('/').next().unwrap_or(rest);
        format!("{scheme}://{authority}/v1/models")
    }
}

impl CollectorConfig {
    /// Reads and checks `path`; the error is one line naming the problem.
    pub fn from_file(path: &Path) -> Result<CollectorConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        CollectorConfig::from_str(&text)
            .map(|c| c.relative_to(dir))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms == 0 {
            return Err("interval_ms must be at least 1".into());
        }
        if self.timeout_ms == 0 {
            return Err("timeout_ms must be at least 1".into());
        }
        if self.capability_interval_ms == 0 {
            return Err("capability_interval_ms must be at least 1".into());
        }
        if self.appliances.is_empty() {
            return Err("appliances must name at least one control address".into());
        }
        if self.instances.is_empty() {
            return Err("at least one [[instances]] is needed".into());
        }
        let mut nodes = std::collections::BTreeSet::new();
        for (n, i) in self.instances.iter().enumerate() {
            let at = format!("instances[{n}]");
            if !nodes.insert(i.node) {
                return Err(format!("node {} is listed twice in [[instances]]", i.node));
            }
            if !i.metrics_url.starts_with("http://") {
                return Err(format!(
                    "{at}.metrics_url {:?} must be an http:// URL",
                    i.metrics_url
                ));
            }
            if let Some(u) = i.models_url.as_ref().filter(|u| !u.starts_with("http://")) {
                return Err(format!("{at}.models_url {u:?} must be an http:// URL"));
            }
            if i.concurrency == Some(0) {
                return Err(format!("{at}.concurrency must be at least 1"));
            }
            if let Some(c) = &i.capability {
                c.validate(&format!("{at}.capability"))?;
            }
        }
        Ok(())
    }

    /// The file with its relative paths (`key_file`) taken from the
    /// directory of the file that names them, as the appliance's are.
    fn relative_to(mut self, dir: &Path) -> CollectorConfig {
        if self.key_file.is_relative() {
            self.key_file = dir.join(&self.key_file);
        }
        self
    }
}

impl CapabilityConfig {
    /// What the appliance would refuse in a CAPABILITY, refused here
    /// first, so that a bad value is a config error rather than a push
    /// that fails at every interval. `at` is the table's key path.
    fn validate(&self, at: &str) -> Result<(), String> {
        if self.tasks.is_empty() {
            return Err(format!("{at}.tasks must name at least one task type"));
        }
        control::TaskTypes::from_str(&self.tasks.join(","))
            .map_err(|e| format!("{at}.tasks: {e}"))?;
        control::capability::check_accelerator(&self.accelerator)
            .map_err(|e| format!("{at}.accelerator {:?}: {e}", self.accelerator))?;
        if let Some(m) = &self.model {
            control::capability::check_model(m).map_err(|e| format!("{at}.model {m:?}: {e}"))?;
        }
        for (key, rate) in [
            ("prefill_tps", self.prefill_tps),
            ("decode_tps", self.decode_tps),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("{at}.{key} = {rate} must be a positive number"));
            }
        }
        if self.max_context == Some(0) {
            return Err(format!("{at}.max_context must be at least 1"));
        }
        Ok(())
    }
}

/// One line naming the key (its path, as `instances[1].url`) and what is
/// wrong with it, with the line and column where the file says it.
fn describe(text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let what = e.inner().message().trim().replace('\n', " ");
    let at = e
        .inner()
        .span()
        .map(|span| {
            let before = text.get(..span.start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" (line {line}, column {column})")
        })
        .unwrap_or_default();
    match e.path().to_string() {
        path if path == "." || path.is_empty() => format!("{what}{at}"),
        path => format!("`{path}`: {what}{at}"),
    }
}

impl FromStr for CollectorConfig {
    type Err = String;
    fn from_str(text: &str) -> Result<CollectorConfig, String> {
        let cfg: CollectorConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| describe(text, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The collector part of `docs/configuration.md`: from its heading to
    /// the next `## ` heading.
    fn reference() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text
            .find("## The collector")
            .expect("configuration.md has a `## The collector` part");
        let rest = &text[start..];
        let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
        rest[..end].to_string()
    }

    /// (section, key) of every row of the reference's tables; sections
    /// are named by the backquoted table in their heading (`""` for the
    /// top level).
    fn documented(reference: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut section = None;
        for line in reference.lines() {
            if let Some(title) = line.strip_prefix("### ") {
                section = Some(
                    title
                        .split('`')
                        .nth(1)
                        .map_or(String::new(), |t| t.trim_matches(['[', ']']).to_string()),
                );
                continue;
            }
            let Some(s) = &section else { continue };
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if !line.starts_with('|') || cells[0] == "Key" || cells[0].starts_with("---") {
                continue;
            }
            out.insert((s.clone(), cells[0].trim_matches('`').to_string()));
        }
        out
    }

    /// (section, key) of every key `cfg` serializes to.
    fn serialized(cfg: &CollectorConfig) -> BTreeSet<(String, String)> {
        fn walk(section: &str, v: &toml::Value, out: &mut BTreeSet<(String, String)>) {
            let table = match v {
                toml::Value::Table(t) => t,
                toml::Value::Array(a) => {
                    for item in a {
                        walk(section, item, out);
                    }
                    return;
                }
                _ => return,
            };
            for (k, v) in table {
                let nested = match v {
                    toml::Value::Table(_) => true,
                    toml::Value::Array(a) => a.first().is_some_and(|x| x.is_table()),
                    _ => false,
                };
                if nested {
                    let s = if section.is_empty() {
                        k.clone()
                    } else {
                        format!("{section}.{k}")
                    };
                    walk(&s, v, out);
                } else {
                    out.insert((section.to_string(), k.clone()));
                }
            }
        }
        let mut out = BTreeSet::new();
        walk("", &toml::Value::try_from(cfg).unwrap(), &mut out);
        out
    }

    #[test]
    fn reference_matches_the_structs() {
        let reference = reference();
        let example = reference
            .split("```text\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("the collector reference has a complete example");
        let cfg: CollectorConfig = example.parse().unwrap_or_else(|e| panic!("example: {e}"));
        // The complete example sets every key, so what it serializes to is
        // every key of the structs.
        assert_eq!(documented(&reference), serialized(&cfg));
    }

    #[test]
    fn defaults_and_one_line_errors() {
        let cfg: CollectorConfig =
            "key_file = \"k\"\nkey_id = 3\nappliances = [\"127.0.0.1:7470\"]\n\
            [[instances]]\nnode = 1\nmetrics_url = \"http://10.0.2.1:8000/metrics\"\n"
                .parse()
                .unwrap();
        assert_eq!((cfg.interval_ms, cfg.timeout_ms), (50, 200));
        assert_eq!(
            cfg.instances[0].models_url(),
            "http://10.0.2.1:8000/v1/models"
        );
        let e = "key_file = \"k\"\nkey_id = 3\nappliances = []\ninterval = 5\n"
            .parse::<CollectorConfig>()
            .unwrap_err();
        assert!(e.contains("unknown field `interval`"), "{e}");
        let e = "key_file = \"k\"\nkey_id = 3\nappliances = [\"127.0.0.1:1\"]\n\
            [[instances]]\nnode = 1\nmetrics_url = \"http://a/metrics\"\n\
            [[instances]]\nnode = 1\nmetrics_url = \"http://b/metrics\"\n"
            .parse::<CollectorConfig>()
            .unwrap_err();
        assert!(e.contains("node 1 is listed twice"), "{e}");
    }

    /// Every range `docs/configuration.md` gives an instance and its
    /// capability is refused with the key's path, not at the first push.
    #[test]
    fn out_of_range_instances_are_refused_by_key() {
        const BASE: &str = "key_file = \"k\"\nkey_id = 3\nappliances = [\"127.0.0.1:7470\"]\n\
            [[instances]]\nnode = 1\nmetrics_url = \"http://10.0.2.1:8000/metrics\"\n";
        const CAPABILITY: &str = "[instances.capability]\nclass = \"edge\"\n";
        let good =
            "accelerator = \"L4\"\ntasks = [\"chat\"]\nprefill_tps = 5000.0\ndecode_tps = 50.0\n";
        let refused = |instance: &str, capability: Option<String>| {
            let text = match capability {
                Some(c) => format!("{BASE}{instance}{CAPABILITY}{c}"),
                None => format!("{BASE}{instance}"),
            };
            text.parse::<CollectorConfig>()
                .map(|_| ())
                .expect_err("refused")
        };
        let with = |from: &str, to: &str| Some(good.replacen(from, to, 1));
        format!("{BASE}{CAPABILITY}{good}")
            .parse::<CollectorConfig>()
            .expect("the base is good");
        for (e, says) in [
            (
                refused("models_url = \"https://a/v1/models\"\n", None),
                "instances[0].models_url \"https://a/v1/models\" must be an http:// URL",
            ),
            (
                refused("concurrency = 0\n", None),
                "instances[0].concurrency must be at least 1",
            ),
            (
                refused("", with("\"L4\"", "\"\"")),
                "instances[0].capability.accelerator \"\": ACCELERATOR is empty",
            ),
            (
                refused("", with("\"L4\"", &format!("\"{}\"", "A".repeat(33)))),
                "is 33 bytes, more than 32",
            ),
            (
                refused("", Some(format!("{good}model = \"{}\"\n", "m".repeat(65)))),
                "instances[0].capability.model",
            ),
            (
                refused("", with("tasks = [\"chat\"]", "tasks = []")),
                "instances[0].capability.tasks must name at least one task type",
            ),
            (
                refused("", with("5000.0", "0.0")),
                "instances[0].capability.prefill_tps = 0 must be a positive number",
            ),
            (
                refused("", with("50.0", "-1.0")),
                "instances[0].capability.decode_tps = -1 must be a positive number",
            ),
            (
                refused("", Some(format!("{good}max_context = 0\n"))),
                "instances[0].capability.max_context must be at least 1",
            ),
        ] {
            assert!(e.contains(says), "{e:?} lacks {says:?}");
        }
    }

    /// `key_file` is read relative to the config file's directory, as the
    /// appliance's key files are; an absolute path is kept.
    #[test]
    fn key_file_is_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |key: &str| {
            let path = dir.path().join("collector.toml");
            std::fs::write(
                &path,
                format!(
                    "key_file = \"{key}\"\nkey_id = 3\nappliances = [\"127.0.0.1:7470\"]\n\
                     [[instances]]\nnode = 1\nmetrics_url = \"http://a/metrics\"\n"
                ),
            )
            .unwrap();
            CollectorConfig::from_file(&path).unwrap().key_file
        };
        assert_eq!(write("keys/c.key"), dir.path().join("keys/c.key"));
        assert_eq!(write("/etc/c.key"), PathBuf::from("/etc/c.key"));
    }
}
