//! `tokenfeat` — print the token features and feature ID of a prompt.
//!
//! ```text
//! tokenfeat --prompt "turn on the light"
//! tokenfeat --prompt "summarise this report ..." --max-tokens 200 --json
//! tokenfeat --prompt "restart the build" --urgent
//! ```

use clap::Parser;
use tokenfeat::{encode, extract, token_counter, Hints, Urgency};

/// Extracts token features (prompt tokens, expected output tokens, task
/// type, urgency) from a prompt and prints the 64-bit token feature ID.
#[derive(Debug, Parser)]
#[command(name = "tokenfeat", version)]
struct Args {
    /// The prompt text.
    #[arg(long)]
    prompt: String,
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
    let hints = Hints {
        max_tokens: args.max_tokens,
        urgency: args.urgent.then_some(Urgency::Immediate),
        task: None,
    };
    let f = extract(&args.prompt, &hints);
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
        println!("feature id       {:#018x}", id.0);
    }
}
