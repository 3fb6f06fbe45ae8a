//! The `tokenfeat` CLI prints what the library computes: the feature ID an
//! agent would put in its TLV, and the fields it encodes.

use std::process::Command;

fn cli_json(prompt: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenfeat"))
        .args(["--json", "--prompt", prompt])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_cli_prints_the_library_features() {
    for prompt in [
        "turn on the light",
        "Write a Rust function that parses a CSV file and returns a vector of records",
    ] {
        let cli = cli_json(prompt);
        let lib = tokenfeat::extract(prompt, &tokenfeat::Hints::default());
        assert_eq!(cli["prompt_tokens"], u64::from(lib.prompt_tokens), "{prompt}");
        assert_eq!(cli["output_tokens"], u64::from(lib.output_tokens), "{prompt}");
        assert_eq!(cli["task_code"], lib.task as u64, "{prompt}");
        assert_eq!(
            cli["feature_id"],
            format!("{:#018x}", tokenfeat::encode(&lib).0),
            "{prompt}"
        );
    }
    assert_eq!(cli_json("turn on the light")["task"], "immediate_control");
}
