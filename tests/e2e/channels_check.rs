//! `clarion channels check` checks what publishing needs, with the state
//! `clarion run` keeps: Bluesky's stored session instead of a new login on
//! every run, Matrix room membership, webhooks that answer neither HEAD
//! nor OPTIONS reported as `warn`, not `ok`.

use crate::harness::*;
use crate::platforms::{Platforms, five_channels, platform_env};

#[tokio::test(flavor = "multi_thread")]
async fn channels_check_reuses_the_stored_session_and_checks_room_membership() {
    let fakes = Platforms::start().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = format!(
        r#"{five}
[[channels]]
name = "elsewhere"
kind = "matrix"
homeserver = "{base}"
access_token = {{ env = "E2E_MATRIX_TOKEN" }}
room_id = "!invited:matrix.test"
"#,
        five = five_channels(&fakes.base),
        base = fakes.base,
    );
    let mut clarion = Clarion::new(None, &settings);
    clarion.env = platform_env();
    for run in 1..=2 {
        let out = clarion.cli(&["channels", "check"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = |channel: &str| {
            stdout
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(channel))
                .unwrap_or_else(|| panic!("no line for {channel}:\n{stdout}\n{stderr}"))
                .to_owned()
        };
        // The room the bot is in passes; one it has not joined fails, clearly.
        assert!(line("room").starts_with("ok "), "{}", line("room"));
        assert!(
            line("room").contains("in !news:matrix.test"),
            "{}",
            line("room")
        );
        let elsewhere = line("elsewhere");
        assert!(elsewhere.starts_with("FAIL"), "{elsewhere}");
        assert!(
            elsewhere.contains("has not joined room !invited:matrix.test"),
            "{elsewhere}"
        );
        assert!(!out.status.success(), "run {run}: {stdout}");
        assert!(line("sky").starts_with("ok "), "{}", line("sky"));
        // The sink only takes POSTs: reachable, but not verified.
        assert!(line("sink").starts_with("warn "), "{}", line("sink"));
    }
    // Two runs, one login: the second used the session the first stored.
    let logins = fakes
        .calls("bluesky")
        .iter()
        .filter(|c| c.path.ends_with("com.atproto.server.createSession"))
        .count();
    assert_eq!(logins, 1, "{:#?}", fakes.calls("bluesky"));
}
