//! The `tokenfeat` command line prints what the library computes (the
//! feature ID an agent puts in its TLV) and names a shared prefix (layout
//! version 2) from `--prefix` or from a request's system messages and tools.

use std::process::Command;

use tokenfeat::{decode, TokenFeatureId};

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenfeat"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run tokenfeat");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn id(v: &serde_json::Value) -> TokenFeatureId {
    let hex = v["feature_id"].as_str().unwrap().trim_start_matches("0x");
    TokenFeatureId(u64::from_str_radix(hex, 16).unwrap())
}

#[test]
fn prefix_flag_and_request_body_name_the_shared_prefix() {
    let system = "You are the kitchen agent. Use the tools.";
    let plain = run(&["--prompt", "turn on the light"]);
    assert_eq!(id(&plain).version(), 1);
    assert!(plain["prefix_hash"].is_null());

    let with = run(&["--prefix", system, "--prompt", "turn on the light"]);
    let f = decode(id(&with)).unwrap();
    assert_eq!(id(&with).version(), 2);
    let p = f.prefix.unwrap();
    assert_eq!(p, tokenfeat::shared_prefix(system).unwrap());
    assert_eq!(with["prefix_hash"].as_u64(), Some(u64::from(p.hash)));
    // The task still comes from the prompt, the tokens from both.
    assert_eq!(with["task"], plain["task"]);
    assert!(with["prompt_tokens"].as_u64() > plain["prompt_tokens"].as_u64());

    let dir = std::env::temp_dir().join(format!("tokenfeat-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = dir.join("req.json");
    std::fs::write(
        &body,
        serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "turn on the light"},
            ],
        })
        .to_string(),
    )
    .unwrap();
    let req = run(&["--request", body.to_str().unwrap()]);
    // The same system prompt, as a message: the same prefix.
    assert_eq!(decode(id(&req)).unwrap().prefix, Some(p));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_cli_prints_the_library_features() {
    for prompt in [
        "turn on the light",
        "Write a Rust function that parses a CSV file and returns a vector of records",
    ] {
        let cli = run(&["--prompt", prompt]);
        let lib = tokenfeat::extract(prompt, &tokenfeat::Hints::default());
        assert_eq!(
            cli["prompt_tokens"],
            u64::from(lib.prompt_tokens),
            "{prompt}"
        );
        assert_eq!(
            cli["output_tokens"],
            u64::from(lib.output_tokens),
            "{prompt}"
        );
        assert_eq!(cli["task_code"], lib.task as u64, "{prompt}");
        assert_eq!(id(&cli), tokenfeat::encode(&lib), "{prompt}");
    }
    assert_eq!(
        run(&["--prompt", "turn on the light"])["task"],
        "immediate_control"
    );
}
