//! `tokenfeat` — print the token features and feature ID of a prompt.
//!
//! ```text
//! tokenfeat --prompt "turn on the light"
//! tokenfeat --prompt "summarise this report ..." --max-tokens 200 --json
//! tokenfeat --prompt "restart the build" --urgent
//! tokenfeat --prefix "$(cat system-prompt.txt)" --prompt "turn on the light"
//! tokenfeat --request body.json      # an OpenAI chat request: system + tools are the prefix
//! ```
//!
//! With a shared prefix (`--prefix`, or a request's system messages and
//! tools) the ID is layout version 2 (docs/wire-format.md §5.2a).

use clap::Parser;
use tokenfeat::{encode, extract_with_prefix, token_counter, Hints, Urgency};

/// Extracts token features (prompt tokens, expected output tokens, task
/// type, urgency) from a prompt and prints the 64-bit token feature ID.
#[derive(Debug, Parser)]
#[command(name = "tokenfeat", version)]
struct Args {
    /// The prompt text.
    #[arg(long, required_unless_present = "request")]
    prompt: Option<String>,
    /// The shared prefix the prompt follows (an agent's system prompt and
    /// tool definitions): counted as prompt, and named in the ID.
    #[arg(long, default_value = "", conflicts_with = "request")]
    prefix: String,
    /// An OpenAI chat or completions request body (JSON file) instead of
    /// a prompt: its leading system messages and its tools are the prefix.
    #[arg(long, conflicts_with = "prompt")]
    request: Option<std::path::PathBuf>,
    /// The request's max_tokens (caps the expected output).
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Mark the request explicitly urgent (urgency 3, explicit flag set).
    #[arg(long)]
    urgent: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    let urgency = args.urgent.then_some(Urgency::Immediate);
    let hints = Hints {
        max_tokens: args.max_tokens,
        urgency,
        task: None,
    };
    let f = match (&args.request, &args.prompt) {
        (Some(path), _) => {
            let body = std::fs::read(path).unwrap_or_else(|e| {
                eprintln!("tokenfeat: cannot read {}: {e}", path.display());
                std::process::exit(2)
            });
            let Some(r) = tokenfeat::parse_openai_json(&body) else {
                eprintln!(
                    "tokenfeat: {} is not an OpenAI request body",
                    path.display()
                );
                std::process::exit(2)
            };
            let mut f = r.features(urgency);
            if let Some(m) = args.max_tokens {
                f.output_tokens = f.output_tokens.min(m);
            }
            f
        }
        (None, prompt) => {
            extract_with_prefix(&args.prefix, prompt.as_deref().unwrap_or(""), &hints)
        }
    };
    let id = encode(&f);
    if args.json {
        let v = serde_json::json!({
            "prompt_tokens": f.prompt_tokens,
            "output_tokens": f.output_tokens,
            "task": f.task.name(),
            "task_code": f.task.code(),
            "urgency": f.urgency.name(),
            "urgency_code": f.urgency.code(),
            "explicit_urgency": f.explicit_urgency,
            "tokenizer": token_counter().name(),
            "prefix_tokens": f.prefix.map(|p| p.tokens),
            "prefix_hash": f.prefix.map(|p| p.hash),
            "feature_id": format!("{:#018x}", id.0),
        });
        println!("{v}");
    } else {
        println!(
            "prompt tokens    {} ({})",
            f.prompt_tokens,
            token_counter().name()
        );
        println!("output tokens    {}", f.output_tokens);
        println!("task             {} ({})", f.task.name(), f.task.code());
        println!(
            "urgency          {} ({})",
            f.urgency.name(),
            f.urgency.code()
        );
        println!("explicit urgency {}", f.explicit_urgency);
        if let Some(p) = f.prefix {
            println!("shared prefix    {} tokens, hash {:#07x}", p.tokens, p.hash);
        }
        println!("feature id       {:#018x}", id.0);
    }
}
