//! `contrib/grafana/intellinode.json` asks only for what the appliance
//! exports. Every PromQL query of the dashboard (panel targets and template
//! variables) is tokenized enough to find the metric names it selects, the
//! labels it matches on, groups by and prints in legends; each must be in
//! the `/metrics` of a real running pipeline (forward, steer, tensor), or
//! be one of the labels Prometheus itself attaches to every scraped sample.

use std::collections::{BTreeMap, BTreeSet};

use intellinode_tests::scrape::{scrape, PIPELINES};
use intellinode_tests::workspace_root;

/// Labels the Prometheus server adds to every sample it scrapes.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Sample names of an exposition, each with the label names it carries.
type Exported = BTreeMap<String, BTreeSet<String>>;

fn exported(exposition: &str, into: &mut Exported) {
    for line in exposition.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = into.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let Some(close) = line.rfind('}') else {
                continue;
            };
            // Label values are quoted and escaped; a label name is what
            // precedes each `="` outside a value.
            let body = &line[name_end + 1..close];
            let mut in_value = false;
            let mut escaped = false;
            let mut start = 0;
            for (i, c) in body.char_indices() {
                if in_value {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            in_value = false;
                            start = i + 1;
                        }
                        _ => {}
                    }
                } else if c == '=' {
                    labels.insert(body[start..i].trim_matches([',', ' ']).to_owned());
                } else if c == '"' {
                    in_value = true;
                }
            }
        }
    }
}

/// What one PromQL expression refers to.
#[derive(Debug, Default, PartialEq)]
struct References {
    /// Metric names, each with the labels its selector matches on.
    selectors: Vec<(String, Vec<String>)>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left` and
    /// `group_right` clauses.
    grouping: Vec<String>,
}

const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_ident(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

/// A small PromQL tokenizer: enough to tell metric names from functions,
/// aggregations, keywords, label names, strings, numbers, durations and
/// Grafana's `$variables`.
fn references(expr: &str) -> Result<References, String> {
    let b = expr.as_bytes();
    let mut refs = References::default();
    let mut i = 0;
    let skip_space = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    let ident_at = |j: usize| {
        let mut k = j;
        while k < b.len() && is_ident(b[k]) {
            k += 1;
        }
        k
    };
    let string_end = |j: usize| -> Result<usize, String> {
        let quote = b[j];
        let mut k = j + 1;
        while k < b.len() {
            if b[k] == b'\\' && quote != b'`' {
                k += 2;
                continue;
            }
            if b[k] == quote {
                return Ok(k + 1);
            }
            k += 1;
        }
        Err(format!("unterminated string in {expr:?}"))
    };
    // Label names of a `{...}` or `(...)` list starting at `open`; returns
    // them and the index after the closing bracket.
    let label_list = |open: usize, close: u8| -> Result<(Vec<String>, usize), String> {
        let mut names = Vec::new();
        let mut k = open + 1;
        loop {
            k = skip_space(k);
            match b.get(k) {
                None => return Err(format!("unclosed {:?} in {expr:?}", close as char)),
                Some(&c) if c == close => return Ok((names, k + 1)),
                Some(b'"' | b'\'' | b'`') => k = string_end(k)?,
                Some(&c) if is_ident_start(c) => {
                    let end = ident_at(k);
                    names.push(expr[k..end].to_owned());
                    k = end;
                }
                Some(b',' | b'=' | b'!' | b'~') => k += 1,
                Some(&c) => {
                    return Err(format!(
                        "unexpected {:?} in a label list of {expr:?}",
                        c as char
                    ))
                }
            }
        }
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if matches!(c, b'"' | b'\'' | b'`') {
            i = string_end(i)?;
        } else if c == b'$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if b.get(i) == Some(&b'{') {
                while i < b.len() && b[i] != b'}' {
                    i += 1;
                }
                i += 1;
            } else {
                i = ident_at(i);
            }
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c == b'[' {
            // A range or subquery: durations and variables only.
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i += 1;
        } else if c == b'{' {
            return Err(format!(
                "a selector without a metric name in {expr:?}: the check cannot follow it"
            ));
        } else if is_ident_start(c) {
            let end = ident_at(i);
            let word = &expr[i..end];
            let next = skip_space(end);
            if GROUPING.contains(&word) {
                if b.get(next) == Some(&b'(') {
                    let (names, after) = label_list(next, b')')?;
                    refs.grouping.extend(names);
                    i = after;
                } else {
                    i = end;
                }
            } else if b.get(next) == Some(&b'(')
                || AGGREGATIONS.contains(&word)
                || KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
            {
                i = end;
            } else if b.get(next) == Some(&b'{') {
                let (labels, after) = label_list(next, b'}')?;
                // Matchers alternate name and quoted value; the values were
                // skipped as strings, so only names are left.
                refs.selectors.push((word.to_owned(), labels));
                i = after;
            } else {
                refs.selectors.push((word.to_owned(), Vec::new()));
                i = end;
            }
        } else {
            i += 1;
        }
    }
    Ok(refs)
}

/// Every query of the dashboard: (where, expression, legend).
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String, String)> {
    fn panels(v: &serde_json::Value, out: &mut Vec<(String, String, String)>) {
        for p in v.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((
                        format!("panel {title:?} target {}", t["refId"]),
                        expr.to_owned(),
                        t["legendFormat"].as_str().unwrap_or("").to_owned(),
                    ));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = v["query"]["query"].as_str().or(v["query"].as_str());
        if v["type"] == "query" {
            if let Some(q) = query {
                // label_values(SELECTOR, LABEL): the label is one the
                // selector's metric must carry.
                let inner = q
                    .strip_prefix("label_values(")
                    .and_then(|r| r.strip_suffix(')'))
                    .unwrap_or(q);
                let (selector, label) = inner.rsplit_once(',').unwrap_or((inner, ""));
                out.push((
                    format!("variable {}", v["name"]),
                    selector.trim().to_owned(),
                    format!("{{{{{}}}}}", label.trim()),
                ));
            }
        }
    }
    out
}

/// What is wrong with `dashboard`'s queries against `exported`, one line
/// per problem.
fn problems(dashboard: &serde_json::Value, exported: &Exported) -> Vec<String> {
    let mut out = Vec::new();
    for (place, expr, legend) in queries(dashboard) {
        let refs = match references(&expr) {
            Ok(r) => r,
            Err(e) => {
                out.push(format!("{place}: {e}"));
                continue;
            }
        };
        if refs.selectors.is_empty() {
            out.push(format!("{place}: {expr:?} names no metric"));
        }
        // The labels this query can see: its metrics' and the target's.
        let mut known: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
        for (metric, _) in &refs.selectors {
            match exported.get(metric) {
                Some(labels) => known.extend(labels.iter().map(String::as_str)),
                None => out.push(format!(
                    "{place}: metric {metric} is not exported by any pipeline"
                )),
            }
        }
        for (metric, labels) in &refs.selectors {
            for l in labels {
                let ok = TARGET_LABELS.contains(&l.as_str())
                    || exported.get(metric).is_some_and(|e| e.contains(l));
                if !ok && exported.contains_key(metric) {
                    out.push(format!("{place}: {metric} has no label {l}"));
                }
            }
        }
        for l in &refs.grouping {
            if !known.contains(l.as_str()) {
                out.push(format!(
                    "{place}: groups by {l}, which none of its metrics carries"
                ));
            }
        }
        for part in legend.split("{{").skip(1) {
            let l = part.split("}}").next().unwrap_or("").trim();
            if !known.contains(l) {
                out.push(format!(
                    "{place}: legend names {l}, which none of its metrics carries"
                ));
            }
        }
    }
    out
}

fn dashboard() -> serde_json::Value {
    let path = workspace_root().join("contrib/grafana/intellinode.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_dashboard_queries_only_what_the_pipelines_export() {
    let mut names = Exported::new();
    for pipeline in PIPELINES {
        let dir = tempfile::tempdir().unwrap();
        exported(&scrape(pipeline, dir.path()), &mut names);
    }
    let d = dashboard();
    let all = queries(&d);
    assert!(
        all.len() >= 25,
        "only {} queries in the dashboard",
        all.len()
    );
    let wrong = problems(&d, &names);
    assert!(
        wrong.is_empty(),
        "the dashboard asks for what the appliance does not export:\n{}",
        wrong.join("\n")
    );
    // The topics the dashboard exists for are all there.
    let used: BTreeSet<String> = all
        .iter()
        .flat_map(|(_, e, _)| references(e).unwrap().selectors)
        .map(|(m, _)| m)
        .collect();
    for needed in [
        "intellinode_port_rx_packets_total",
        "intellinode_port_tx_packets_total",
        "intellinode_drops_total",
        "intellinode_decisions_total",
        "intellinode_steer_chosen_total",
        "intellinode_steer_predicted_ttft_seconds_sum",
        "intellinode_steer_observed_ttft_seconds_sum",
        "intellinode_state_age_seconds",
        "intellinode_state_fresh",
        "intellinode_control_rejected_total",
        "intellinode_tensor_events_total",
        "intellinode_mempool_in_use_mbufs",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn the_check_finds_unknown_metrics_and_labels() {
    let mut names = Exported::new();
    exported(
        "# TYPE a_total counter\na_total{port=\"0\",reason=\"x\\\",y\"} 1\nb_seconds 2\n\
         c_bucket{le=\"+Inf\"} 3\n",
        &mut names,
    );
    assert_eq!(
        names["a_total"],
        BTreeSet::from(["port".to_owned(), "reason".to_owned()])
    );
    assert!(names["b_seconds"].is_empty());
    let board = |expr: &str, legend: &str| {
        serde_json::json!({"panels": [{"type": "row", "panels": [
            {"title": "t", "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}]}]}]})
    };
    let ok = board(
        "sum by (port) (rate(a_total{job=~\"$job\",reason!=\"x\"}[$__rate_interval])) / on (instance) b_seconds > 0.5",
        "{{port}}",
    );
    assert_eq!(problems(&ok, &names), Vec::<String>::new());
    let q = "histogram_quantile(0.99, sum by (le) (rate(c_bucket[5m])))";
    assert_eq!(problems(&board(q, "p99"), &names), Vec::<String>::new());
    for (expr, legend, complaint) in [
        (
            "rate(nope_total[5m])",
            "",
            "metric nope_total is not exported",
        ),
        (
            "sum by (device) (rate(a_total[5m]))",
            "",
            "groups by device",
        ),
        ("a_total{lcore=\"1\"}", "", "a_total has no label lcore"),
        ("a_total", "{{class}}", "legend names class"),
        ("{__name__=~\"a.*\"}", "", "without a metric name"),
        ("1 + 2", "", "names no metric"),
    ] {
        let found = problems(&board(expr, legend), &names);
        assert!(
            found.iter().any(|p| p.contains(complaint)),
            "{expr:?}: wanted {complaint:?}, got {found:?}"
        );
    }
}
