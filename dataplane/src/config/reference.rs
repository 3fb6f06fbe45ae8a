//! `docs/configuration.md` against the config structs: every key the
//! structs accept is documented with its TOML type, every documented key
//! exists, and every example parses.
//!
//! The keys are not listed by hand here: they are traced from the structs'
//! own `Deserialize` impls. serde's derive hands a deserializer every field
//! name of a struct (`deserialize_struct`'s `fields`), so a deserializer that
//! records those names and walks into each field's type finds every section
//! and key, whatever defaults, options or custom parsers they have.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::de::value::{Error, StrDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

use super::{Config, ConfigFile, TOP_LEVEL_KEYS};

/// The shape of the config, as its structs accept it.
#[derive(Debug, Default)]
struct Schema {
    /// Section (dotted path, "" for the top level) → written `[[...]]`.
    sections: BTreeMap<String, bool>,
    /// (section, key) → TOML type: "integer", "array of strings", ...
    keys: BTreeMap<(String, String), String>,
}

fn trace() -> Schema {
    let schema = RefCell::new(Schema::default());
    ConfigFile::deserialize(Tracer {
        schema: &schema,
        path: String::new(),
        in_array: false,
    })
    .unwrap_or_else(|e| panic!("tracing the config structs: {e}"));
    schema.into_inner()
}

/// Deserializes the value at `path`, recording what is asked of it.
struct Tracer<'a> {
    schema: &'a RefCell<Schema>,
    path: String,
    /// The value is an element of an array.
    in_array: bool,
}

impl Tracer<'_> {
    fn leaf(&self, toml_type: &str) {
        let (section, key) = match self.path.rsplit_once('.') {
            Some((s, k)) => (s.to_owned(), k.to_owned()),
            None => (String::new(), self.path.clone()),
        };
        let toml_type = if self.in_array {
            format!("array of {toml_type}s")
        } else {
            toml_type.to_owned()
        };
        self.schema
            .borrow_mut()
            .keys
            .insert((section, key), toml_type);
    }
}

/// A string the visitor will take: the first name it lists, or an address
/// where it wants one.
fn sample_string(expecting: &str) -> &str {
    if let Some(rest) = expecting.split_once('"').map(|(_, r)| r) {
        return rest.split('"').next().unwrap_or("");
    }
    match expecting {
        "IP address" | "IPv4 address" => "192.0.2.1",
        "IPv6 address" => "2001:db8::1",
        "socket address" => "127.0.0.1:1",
        _ => "x",
    }
}

macro_rules! integers {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            self.leaf("integer");
            v.visit_u64(1)
        }
    )*};
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Error;

    integers!(
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64
    );

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_f64(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf("float");
        v.visit_f64(1.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf("boolean");
        v.visit_bool(true)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf("string");
        let expecting = format!("{}", &v as &dyn de::Expected);
        v.visit_str(sample_string(&expecting))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(Elements {
            schema: self.schema,
            path: self.path,
            left: 2,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        // A table of free keys (e.g. `class_weights`): one key of the
        // section, whose own keys are values.
        self.leaf("table");
        v.visit_map(Fields {
            schema: self.schema,
            parent: self.path,
            fields: &[],
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.schema
            .borrow_mut()
            .sections
            .insert(self.path.clone(), self.in_array);
        v.visit_map(Fields {
            schema: self.schema,
            parent: self.path,
            fields,
            next: 0,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!(
            "`{}` deserializes by its content; give the tracer a concrete type",
            self.path
        )))
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct tuple tuple_struct enum identifier ignored_any
    }
}

/// Two elements: enough to reach the element type, and what a pair of
/// ports needs.
struct Elements<'a> {
    schema: &'a RefCell<Schema>,
    path: String,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(Tracer {
            schema: self.schema,
            path: self.path.clone(),
            in_array: true,
        })
        .map(Some)
    }
}

/// Every field of a struct, each with a value traced at its own path.
struct Fields<'a> {
    schema: &'a RefCell<Schema>,
    parent: String,
    fields: &'static [&'static str],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        let key: StrDeserializer<'_, Error> = field.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let field = self.fields[self.next];
        self.next += 1;
        let path = if self.parent.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.parent)
        };
        seed.deserialize(Tracer {
            schema: self.schema,
            path,
            in_array: false,
        })
    }
}

/// One key's row in a table of the reference.
#[derive(Debug)]
struct Row {
    toml_type: String,
    default: String,
    example: String,
}

/// What `docs/configuration.md` documents.
#[derive(Debug, Default)]
struct Reference {
    sections: BTreeMap<String, bool>,
    /// (section, key) → its row.
    keys: BTreeMap<(String, String), Row>,
    /// Every ```toml block.
    examples: Vec<String>,
}

/// Reads the reference: a heading naming a section (`[ports]`,
/// `[[pairs]]`, or "Top-level keys") is followed by a table whose header
/// starts with `| Key | Type |` and whose rows name one key each.
fn read_reference(text: &str) -> Reference {
    let mut r = Reference::default();
    let mut section: Option<String> = None;
    let mut columns: Vec<String> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("```toml") {
            let block: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            r.examples.push(block.join("\n") + "\n");
            continue;
        }
        if line.starts_with('#') {
            columns.clear();
            section = heading_section(line);
            if let Some(s) = &section {
                if !s.is_empty() {
                    let array = line.contains("[[");
                    assert!(
                        r.sections.insert(s.clone(), array).is_none(),
                        "configuration.md documents [{s}] twice"
                    );
                }
            }
            continue;
        }
        let Some(s) = &section else { continue };
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<String> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        if columns.is_empty() {
            if cells.first().map(String::as_str) == Some("Key") {
                columns = cells;
            }
            continue;
        }
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        let col = |name: &str| {
            let i = columns
                .iter()
                .position(|c| c == name)
                .unwrap_or_else(|| panic!("table of [{s}] has no {name} column"));
            cells.get(i).cloned().unwrap_or_default()
        };
        let key = col("Key").trim_matches('`').to_owned();
        let previous = r.keys.insert(
            (s.clone(), key.clone()),
            Row {
                toml_type: col("Type"),
                default: col("Default"),
                example: col("Example"),
            },
        );
        assert!(
            previous.is_none(),
            "configuration.md documents {s}.{key} twice"
        );
    }
    r
}

/// "### `[steer.paths]`" → "steer.paths"; "## Top-level keys" → "".
fn heading_section(line: &str) -> Option<String> {
    let title = line.trim_start_matches('#').trim();
    if title == "Top-level keys" {
        return Some(String::new());
    }
    let inner = title.strip_prefix("`[")?.split(']').next()?;
    Some(inner.trim_start_matches('[').to_owned())
}

fn reference_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_owned()
    } else {
        format!("{section}.{key}")
    }
}

#[test]
fn every_key_of_the_structs_is_documented_and_every_documented_key_exists() {
    let schema = trace();
    let reference = read_reference(&reference_text());

    let mut traced_sections = schema.sections.clone();
    traced_sections.remove("");
    let missing: Vec<String> = traced_sections
        .keys()
        .filter(|s| !reference.sections.contains_key(*s))
        .map(|s| format!("[{s}]"))
        .collect();
    let extra: Vec<String> = reference
        .sections
        .keys()
        .filter(|s| !traced_sections.contains_key(*s))
        .map(|s| format!("[{s}]"))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "sections in the structs but not in docs/configuration.md: {missing:?}; documented but not in the structs: {extra:?}"
    );
    for (s, array) in &traced_sections {
        let (want, got) = if *array { ("[[", "[") } else { ("[", "[[") };
        assert_eq!(
            reference.sections[s], *array,
            "[{s}] is written {want}{s}..., but documented as {got}{s}..."
        );
    }

    let traced: BTreeSet<String> = schema.keys.keys().map(|(s, k)| dotted(s, k)).collect();
    let documented: BTreeSet<String> = reference.keys.keys().map(|(s, k)| dotted(s, k)).collect();
    let missing: Vec<&String> = traced.difference(&documented).collect();
    let extra: Vec<&String> = documented.difference(&traced).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "keys in the structs but not in docs/configuration.md: {missing:?}; documented but not in the structs: {extra:?}"
    );

    for ((section, key), toml_type) in &schema.keys {
        let Row {
            toml_type: doc_type,
            example,
            ..
        } = &reference.keys[&(section.clone(), key.clone())];
        assert!(
            doc_type.starts_with(toml_type.as_str()),
            "{}: documented type {doc_type:?}, but the struct takes {toml_type}",
            dotted(section, key)
        );
        // The example is one line of TOML setting this key to a value of
        // this type.
        let example = example.trim_matches('`');
        let value: toml::Table = toml::from_str(example).unwrap_or_else(|e| {
            panic!(
                "{}: example `{example}` is not TOML: {e}",
                dotted(section, key)
            )
        });
        let v = value.get(key.as_str()).unwrap_or_else(|| {
            panic!(
                "{}: example `{example}` does not set {key}",
                dotted(section, key)
            )
        });
        assert!(
            fits(v, toml_type),
            "{}: example `{example}` is not of type {toml_type}",
            dotted(section, key),
        );
    }
}

/// Whether a TOML value is of a traced type ("array of integers" takes
/// an array of integers; a float key takes an integer too, as serde does).
fn fits(v: &toml::Value, toml_type: &str) -> bool {
    match v {
        toml::Value::Array(items) => toml_type.strip_prefix("array of ").is_some_and(|element| {
            let element = element.strip_suffix('s').unwrap_or(element);
            items.iter().all(|i| fits(i, element))
        }),
        toml::Value::String(_) => toml_type == "string",
        toml::Value::Integer(_) => toml_type == "integer" || toml_type == "float",
        toml::Value::Float(_) => toml_type == "float",
        toml::Value::Boolean(_) => toml_type == "boolean",
        toml::Value::Table(_) => toml_type == "table",
        toml::Value::Datetime(_) => false,
    }
}

#[test]
fn every_example_in_the_reference_is_a_valid_config() {
    let reference = read_reference(&reference_text());
    assert!(
        reference.examples.len() >= 3,
        "configuration.md should have a complete example per pipeline"
    );
    let mut pipelines = BTreeSet::new();
    for (i, example) in reference.examples.iter().enumerate() {
        let config = Config::parse(example)
            .unwrap_or_else(|e| panic!("example {} of configuration.md: {e}\n{example}", i + 1));
        pipelines.insert(config.pipeline.kind().name());
    }
    assert_eq!(
        pipelines,
        BTreeSet::from(["forward", "steer", "tensor"]),
        "an example per pipeline"
    );
}

#[test]
fn top_level_keys_are_those_of_the_file() {
    let schema = trace();
    let traced: BTreeSet<String> = schema
        .keys
        .keys()
        .filter(|(s, _)| s.is_empty())
        .map(|(_, k)| k.clone())
        .chain(
            schema
                .sections
                .keys()
                .filter(|s| !s.is_empty() && !s.contains('.'))
                .cloned(),
        )
        .collect();
    let listed: BTreeSet<String> = TOP_LEVEL_KEYS.iter().map(|k| k.to_string()).collect();
    assert_eq!(traced, listed);
}

#[test]
fn the_tracer_finds_sections_keys_and_their_types() {
    let schema = trace();
    assert_eq!(schema.sections.get("pairs"), Some(&true));
    assert_eq!(schema.sections.get("ports"), Some(&false));
    assert_eq!(schema.sections.get("steer.paths"), Some(&true));
    assert_eq!(schema.sections.get("tensor.qp"), Some(&false));
    let ty = |s: &str, k: &str| {
        schema
            .keys
            .get(&(s.to_owned(), k.to_owned()))
            .map(String::as_str)
    };
    assert_eq!(ty("", "pipeline"), Some("string"));
    assert_eq!(ty("", "burst_size"), Some("integer"));
    assert_eq!(ty("pairs", "ports"), Some("array of integers"));
    assert_eq!(ty("steer", "class_weights"), Some("table"));
    assert_eq!(ty("steer", "strict_priority"), Some("boolean"));
    assert_eq!(ty("steer.paths", "latency_us"), Some("float"));
    assert_eq!(ty("control", "listen"), Some("string"));
    assert_eq!(ty("control.peers", "nodes"), Some("array of integers"));
    assert_eq!(
        ty("steer.instances", "task_types"),
        Some("array of strings")
    );
}

#[test]
fn examples_must_fit_the_traced_type() {
    let v = |t: &str| toml::from_str::<toml::Table>(&format!("k = {t}")).unwrap()["k"].clone();
    assert!(fits(&v("[1, 2]"), "array of integers"));
    assert!(!fits(&v("[\"a\"]"), "array of integers"));
    assert!(fits(&v("5"), "float"));
    assert!(!fits(&v("5.0"), "integer"));
    assert!(!fits(&v("\"5\""), "integer"));
    assert!(fits(&v("{ a = 1 }"), "table"));
}

#[test]
fn the_reference_reader_reads_sections_and_rows() {
    let text = "## Top-level keys\n\n| Key | Type | Default | Range | Example | Meaning |\n|---|---|---|---|---|---|\n| `pipeline` | string | required | | `pipeline = \"forward\"` | x |\n\n### `[[pairs]]`\n\n| Key | Type | Default | Range | Example | Meaning |\n|---|---|---|---|---|---|\n| `ports` | array of integers | required | | `ports = [0, 1]` | x |\n";
    let r = read_reference(text);
    assert_eq!(r.sections.get("pairs"), Some(&true));
    assert!(r.keys.contains_key(&(String::new(), "pipeline".into())));
    assert!(r.keys.contains_key(&("pairs".into(), "ports".into())));
    let traced: BTreeSet<String> = trace().keys.keys().map(|(s, k)| dotted(s, k)).collect();
    assert!(
        traced.contains("burst_size")
            && !r.keys.contains_key(&(String::new(), "burst_size".into()))
    );
}

/// The value a Default cell states, when it states one: "`32`",
/// "`\"127.0.0.1:7470\"`", "`20047` (0x4E4F)", "`{}`: every weight 1".
/// "required", "absent: ..." and "4 × `concurrency`" state none.
fn stated_default(cell: &str) -> Option<toml::Value> {
    let literal = cell.strip_prefix('`')?.split('`').next()?;
    let table: toml::Table = toml::from_str(&format!("v = {literal}")).ok()?;
    table.get("v").cloned()
}

/// Configs with every section present, each with only its required keys:
/// what the defaults are written into.
fn bases_without_defaulted_keys() -> [&'static str; 3] {
    [
        "pipeline = \"forward\"\n[ports]\n[[pairs]]\nports = [0, 1]\n\
         [control]\n[[control.peers]]\nid = 1\nname = \"o\"\nkey_file = \"k\"\nroles = [\"state\"]\n\
         [metrics]\n\
         [probe]\nkey_file = \"k\"\nsrc_ip = \"192.0.2.1\"\n[[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n",
        "pipeline = \"steer\"\n[[pairs]]\nports = [0, 1]\n[steer]\nagent_port = 0\n\
         [[steer.egress]]\nport = 1\nrate_mbps = 100\n\
         [[steer.paths]]\nid = 1\nname = \"p\"\negress_port = 1\nnext_hop_mac = \"02:00:00:00:00:02\"\n\
         [[steer.instances]]\nname = \"i\"\nnode = 1\nip = \"10.0.0.2\"\npaths = [1]\nmodel_class = \"small_edge\"\n\
         task_types = [\"chat\"]\nmax_context_tokens = 8192\nprefill_tokens_per_s = 2000\ndecode_tokens_per_s = 40\n\
         [[steer.services]]\nname = \"s\"\nvip = \"10.0.100.1\"\ninstances = [\"i\"]\n",
        "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\nlocal_ip = \"192.0.2.1\"\nkey_file = \"k\"\n\
         [tensor.qp]\n[[tensor.egress]]\nport = 1\nrate_mbps = 1000\n\
         [[tensor.nodes]]\nname = \"n\"\nip = \"10.0.0.2\"\nweight = 1\n\
         [[tensor.paths]]\nid = 1\nport = 1\nnext_hop_mac = \"02:00:00:00:00:02\"\nremote_ip = \"192.0.2.2\"\ncapacity_mbps = 1000\n",
    ]
}

/// The tables a section is written in: one, every element of an array of
/// tables, or none when the config leaves the section out.
fn tables_of<'a>(root: &'a mut toml::Table, section: &str) -> Vec<&'a mut toml::Table> {
    if section.is_empty() {
        return vec![root];
    }
    let (first, rest) = section
        .split_once('.')
        .map_or((section, ""), |(f, r)| (f, r));
    match root.get_mut(first) {
        Some(toml::Value::Table(t)) => tables_of(t, rest),
        Some(toml::Value::Array(items)) => items
            .iter_mut()
            .filter_map(|v| v.as_table_mut())
            .flat_map(|t| tables_of(t, rest))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_stated_default_is_the_default_the_parser_applies() {
    let reference = read_reference(&reference_text());
    let stated: Vec<(&(String, String), toml::Value)> = reference
        .keys
        .iter()
        .filter_map(|(k, row)| stated_default(&row.default).map(|v| (k, v)))
        .collect();
    assert!(
        stated.len() > 40,
        "only {} stated defaults read",
        stated.len()
    );
    let mut applied = BTreeSet::new();
    for base in bases_without_defaulted_keys() {
        let without = Config::parse(base).unwrap_or_else(|e| panic!("{e}\n{base}"));
        let mut with: toml::Table = toml::from_str(base).unwrap();
        for ((section, key), value) in &stated {
            for table in tables_of(&mut with, section) {
                assert!(
                    !table.contains_key(key),
                    "the base sets {} itself",
                    dotted(section, key)
                );
                table.insert(key.clone(), value.clone());
                applied.insert(dotted(section, key));
            }
        }
        let text = toml::to_string(&with).unwrap();
        let with = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            with, without,
            "a documented default differs from the parser's:\n{text}"
        );
    }
    let not_applied: Vec<String> = stated
        .iter()
        .map(|((s, k), _)| dotted(s, k))
        .filter(|k| !applied.contains(k))
        .collect();
    assert!(
        not_applied.is_empty(),
        "no base has the section of {not_applied:?}"
    );
}

#[test]
fn a_wrong_stated_default_is_caught() {
    assert_eq!(stated_default("`32`"), Some(toml::Value::Integer(32)));
    assert_eq!(
        stated_default("`20047` (0x4E4F)"),
        Some(toml::Value::Integer(20047))
    );
    assert_eq!(stated_default("required"), None);
    assert_eq!(stated_default("4 × `concurrency`"), None);
    assert_eq!(stated_default("absent: any node"), None);
    let base = bases_without_defaulted_keys()[0];
    let without = Config::parse(base).unwrap();
    let with =
        Config::parse(&base.replacen("[ports]\n", "[ports]\nrx_descriptors = 512\n", 1)).unwrap();
    assert_ne!(with, without);
}
