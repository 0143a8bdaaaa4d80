//! The README's quickstart API call, run as pasted into a fresh terminal
//! (no variables but PATH and HOME) against a running Clarion.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// The first ```sh block after the line `marker` starts with, and the
/// README line it begins at.
fn sh_block_after(readme: &str, marker: &str) -> String {
    let mut lines = readme.lines().skip_while(|l| !l.starts_with(marker));
    assert!(
        lines.next().is_some(),
        "README has no line starting {marker:?}"
    );
    let mut lines = lines.skip_while(|l| l.trim() != "```sh");
    assert!(lines.next().is_some(), "no ```sh block after {marker:?}");
    lines
        .take_while(|l| l.trim() != "```")
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_api_call_works_pasted_into_a_fresh_terminal() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let server = sh_block_after(&readme, "Terminal 2");
    let call = sh_block_after(&readme, "Or through the API");
    // The token terminal 2 starts Clarion with is the one the call sends.
    let token = server
        .lines()
        .find_map(|l| l.trim().strip_prefix("export CLARION_API_TOKEN="))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("terminal 2 exports CLARION_API_TOKEN")
        .to_owned();
    assert!(call.contains("curl"), "{call}");

    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    // The example config's `team-webhook`, pointed at the test's receiver.
    settings.extra_channels = format!(
        "[[channels]]\nname = \"team-webhook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        sink.url
    );
    let mut clarion = Clarion::new(None, &settings);
    clarion.token = token;
    let run = clarion.run();
    run.ready().await;
    // Only the port differs from the README's default bind address.
    let script = call.replace("127.0.0.1:8080", &format!("127.0.0.1:{}", run.port));
    assert_ne!(
        script, call,
        "the call names the default address 127.0.0.1:8080"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", clarion.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(answer["id"].is_i64(), "{answer}");
    assert_eq!(answer["targets"][0]["channel"], "team-webhook", "{answer}");
    // And the receiver gets it.
    let arrived = wait_until(Duration::from_secs(10), || async {
        sink.arrivals()
            .iter()
            .any(|a| a.body["text"] == "Hello via the API")
    })
    .await;
    assert!(arrived, "{}", run.log());

    // The OpenAPI document the README links is served, without a token.
    let doc: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{}/api/v1/openapi.json", run.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/v1/posts"]["post"].is_object());
}
