//! `intellinode_agent._native`: the agent-side half of token-aware steering
//! for Python. The features come from `tokenfeat` and the option bytes from
//! `classifier::token_feature_tlv`, the same code the `tokenfeat` CLI and
//! the appliance use, so an agent, the CLI and the appliance cannot
//! disagree on a prompt's feature ID or on its carrier's bytes.

use classifier::token_feature_tlv::{
    emit_hbh_header, emit_ipv4_option, TokenFeatureTlvRepr, HBH_HEADER_LEN, TLV_LEN,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokenfeat::{encode, token_counter, Hints, TokenFeatureId, TokenFeatures, Urgency};

/// The features as a dict with the keys of `tokenfeat --json`.
fn to_dict<'py>(py: Python<'py>, f: &TokenFeatures) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("prompt_tokens", f.prompt_tokens)?;
    d.set_item("output_tokens", f.output_tokens)?;
    d.set_item("task", f.task.name())?;
    d.set_item("task_code", f.task.code())?;
    d.set_item("urgency", f.urgency.name())?;
    d.set_item("urgency_code", f.urgency.code())?;
    d.set_item("explicit_urgency", f.explicit_urgency)?;
    d.set_item("tokenizer", token_counter().name())?;
    d.set_item("prefix_tokens", f.prefix.map(|p| p.tokens))?;
    d.set_item("prefix_hash", f.prefix.map(|p| p.hash))?;
    d.set_item("feature_id", encode(f).0)?;
    Ok(d)
}

fn urgency_hint(urgent: bool) -> Option<Urgency> {
    urgent.then_some(Urgency::Immediate)
}

/// features(prompt, max_tokens=None, urgent=False, prefix="") -> dict
///
/// The token features of one prompt, exactly as `tokenfeat --prompt ...
/// [--prefix ...] --json` prints them (`feature_id` is an int here). A
/// non-empty `prefix` (the agent's system prompt and tools) is named in the
/// ID: layout version 2.
#[pyfunction]
#[pyo3(signature = (prompt, max_tokens=None, urgent=false, prefix=""))]
fn features<'py>(
    py: Python<'py>,
    prompt: &str,
    max_tokens: Option<u32>,
    urgent: bool,
    prefix: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let hints = Hints {
        max_tokens,
        urgency: urgency_hint(urgent),
        task: None,
    };
    to_dict(py, &tokenfeat::extract_with_prefix(prefix, prompt, &hints))
}

/// request_features(body, urgent=False) -> dict | None
///
/// The features of an OpenAI chat-completions or completions request body
/// (JSON bytes, any size): tokens over every message, task and urgency from
/// the last user message, `max_tokens` (or `max_completion_tokens`) as the
/// output cap, and the shared prefix (the leading system messages and the
/// `tools`; layout version 2) when the body has one. None when the body is
/// not such a request.
#[pyfunction]
#[pyo3(signature = (body, urgent=false))]
fn request_features<'py>(
    py: Python<'py>,
    body: &[u8],
    urgent: bool,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    match tokenfeat::parse_openai_json(body) {
        Some(r) => Ok(Some(to_dict(py, &r.features(urgency_hint(urgent)))?)),
        None => Ok(None),
    }
}

fn repr_of(feature_id: u64, directed: bool) -> PyResult<TokenFeatureTlvRepr> {
    let id = TokenFeatureId(feature_id);
    tokenfeat::decode(id).map_err(|e| PyValueError::new_err(format!("feature_id: {e}")))?;
    Ok(TokenFeatureTlvRepr {
        directed,
        feature_id: id,
    })
}

/// ipv4_option(feature_id, directed=False) -> bytes
///
/// The 12-byte IPv4 option (type 0x9E, length 12; wire-format §5.4), ready
/// for `setsockopt(IPPROTO_IP, IP_OPTIONS, ...)`.
#[pyfunction]
#[pyo3(signature = (feature_id, directed=false))]
fn ipv4_option(py: Python<'_>, feature_id: u64, directed: bool) -> PyResult<Bound<'_, PyBytes>> {
    let mut buf = [0u8; TLV_LEN];
    emit_ipv4_option(&repr_of(feature_id, directed)?, &mut buf)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &buf))
}

/// ipv6_hop_by_hop(feature_id, directed=False) -> bytes
///
/// The 16-byte Hop-by-Hop header carrying the option (type 0x1E; wire-format
/// §5.3), ready for `setsockopt(IPPROTO_IPV6, IPV6_HOPOPTS, ...)`, which
/// fills in the Next Header byte itself.
#[pyfunction]
#[pyo3(signature = (feature_id, directed=false))]
fn ipv6_hop_by_hop(
    py: Python<'_>,
    feature_id: u64,
    directed: bool,
) -> PyResult<Bound<'_, PyBytes>> {
    let mut buf = [0u8; HBH_HEADER_LEN];
    emit_hbh_header(&repr_of(feature_id, directed)?, 0, &mut buf)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &buf))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(features, m)?)?;
    m.add_function(wrap_pyfunction!(request_features, m)?)?;
    m.add_function(wrap_pyfunction!(ipv4_option, m)?)?;
    m.add_function(wrap_pyfunction!(ipv6_hop_by_hop, m)?)?;
    Ok(())
}
