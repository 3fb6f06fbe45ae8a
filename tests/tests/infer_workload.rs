//! The gateway's HTTP inference (`steer::infer`, alloc-free, bounded) and
//! the agent's feature extractor (`tokenfeat`, tiktoken) agree on the
//! agent workload's own requests (`pktgen::workload::text`): same task
//! type, and a byte-based prompt-token estimate within a factor of two of
//! the real BPE count.

use classifier::TaskType;
use pktgen::workload::text::{
    chat_body, http_post, long_prompt_from, LongTask, CODE_OPENERS, CONTROL_COMMANDS,
    REASONING_OPENERS, SUMMARY_OPENERS, WORDS,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steer::infer::{infer_http, InferLimits, Inference, InferredRequest};

const HOST: &str = "10.0.100.1:8000";

fn inferred(payload: &[u8], limits: &InferLimits) -> InferredRequest {
    match infer_http(payload, limits) {
        Inference::Inferred(r) => r,
        other => panic!("expected Inferred, got {other:?}"),
    }
}

/// Scan limit covering a whole request.
fn whole() -> InferLimits {
    InferLimits {
        max_scan_bytes: 64 * 1024,
    }
}

#[test]
fn control_commands_match_tokenfeat() {
    for &cmd in CONTROL_COMMANDS {
        let want = tokenfeat::classify(cmd, tokenfeat::count_tokens(cmd));
        let req = http_post(HOST, &chat_body("llama-3.2-1b", cmd, 128));
        let f = inferred(&req, &InferLimits::default()).features;
        assert_eq!(f.task, want, "{cmd}");
        assert_eq!(f.urgency, want.default_urgency());
    }
}

/// Half the prompts use the workload's vocabulary as is (whose "function"
/// and "compile" make tokenfeat call them code generation), half without
/// the words tokenfeat reads as code, so summarisation and reasoning are
/// compared too.
#[test]
fn long_prompts_match_tokenfeat() {
    let clean: Vec<&str> = WORDS
        .iter()
        .copied()
        .filter(|w| tokenfeat::classify(w, 1) != TaskType::CodeGeneration)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut worst: f64 = 1.0;
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..120 {
        let task = [
            LongTask::CodeGeneration,
            LongTask::Reasoning,
            LongTask::Summarisation,
        ][i % 3];
        let words = rng.gen_range(300..=3000);
        let vocab = if i < 60 { WORDS } else { &clean[..] };
        let prompt = long_prompt_from(&mut rng, task, vocab, words);
        let real = tokenfeat::count_tokens(&prompt);
        let want = tokenfeat::classify(&prompt, real);
        let req = http_post(HOST, &chat_body("llama-3.1-70b", &prompt, 2048));
        let f = inferred(&req, &whole()).features;
        assert_eq!(f.task, want, "prompt {i}: {}", &prompt[..80]);
        *seen.entry(want.name()).or_insert(0) += 1;
        let ratio = f64::from(f.prompt_tokens) / f64::from(real);
        worst = worst.max(ratio).max(1.0 / ratio);
        assert!(
            (0.5..=2.0).contains(&ratio),
            "prompt {i}: estimate {} vs real {real}",
            f.prompt_tokens
        );
    }
    for task in ["code_generation", "summarisation", "complex_reasoning"] {
        assert!(seen.contains_key(task), "no {task} prompt in {seen:?}");
    }
    eprintln!("worst estimate/real factor {worst:.2}; tasks {seen:?}");
}

/// With a long prompt cut by the default scan limit, the opener alone
/// decides the task, as it does for tokenfeat on the whole prompt when the
/// rest is keyword-free prose.
#[test]
fn openers_within_default_limit_match_tokenfeat() {
    let filler = "The cluster node reported high latency after the canary rollout. ".repeat(60);
    for &opener in REASONING_OPENERS
        .iter()
        .chain(SUMMARY_OPENERS)
        .chain(CODE_OPENERS)
    {
        let prompt = format!("{opener} {filler}");
        let want = tokenfeat::classify(&prompt, tokenfeat::count_tokens(&prompt));
        let req = http_post(HOST, &chat_body("m", &prompt, 1024));
        let r = inferred(&req[..1448], &InferLimits::default());
        assert_eq!(r.features.task, want, "{opener}");
    }
}
