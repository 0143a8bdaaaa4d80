//! The CLI as people use it: pipes, colours, time zones, durations, help,
//! completions, config errors, and the calendar feed.

use std::io::Read;
use std::process::Stdio;

use crate::harness::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A Clarion whose `timezone` is Europe/Paris (through its env override).
async fn in_paris(db: Option<TestDb>) -> (Sink, Clarion) {
    let sink = Sink::start(SinkRules::default()).await;
    let mut clarion = Clarion::new(db, &Settings::new(&sink));
    clarion
        .env
        .push(("CLARION_TIMEZONE".into(), "Europe/Paris".into()));
    (sink, clarion)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_ends_the_command_quietly() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    for i in 0..3 {
        clarion.ok(&[
            "post",
            "create",
            "-C",
            "sink",
            "--text",
            &format!("post {i}"),
            "--draft",
        ]);
    }
    for args in [&["post", "ls"][..], &["completions", "zsh"][..]] {
        // `clarion post ls | head -0`: the reader is gone before the first line.
        let mut child = std::process::Command::new(BIN)
            .arg("--config")
            .arg(clarion.config())
            .args(args)
            .env("CLARION_API_TOKEN", &clarion.token)
            .env_remove("CLARION_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        // Killed by SIGPIPE like other Unix tools, or a clean exit: never
        // Rust's panic exit code.
        assert_ne!(status.code(), Some(101), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_colour_codes_when_not_a_terminal_or_with_no_color() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut clarion = Clarion::new(None, &Settings::new(&sink));
    // The first command logs (the key file is created); none may colour it.
    let first = clarion.cli(&["post", "ls"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!stderr(&first).is_empty(), "expected a log line to check");
    let failed = clarion.cli(&["post", "ls", "--status", "bogus"]);
    let help = clarion.cli(&["post", "--help"]);
    clarion.env.push(("NO_COLOR".into(), "1".into()));
    let no_color = clarion.cli(&["post", "ls"]);
    for out in [&first, &failed, &help, &no_color] {
        assert!(!out.stdout.contains(&0x1b), "ESC in stdout");
        assert!(
            !out.stderr.contains(&0x1b),
            "ESC in stderr: {}",
            stderr(out)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_file_warning_is_for_run_only() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    clarion.ok(&["migrate"]);
    let key = clarion.dir.path().join("clarion.key");
    assert!(key.exists(), "the SQLite key file sits beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        for _ in 0..2 {
            let out = clarion.cli(&["post", "ls"]);
            assert!(out.status.success());
            assert!(
                !stderr(&out).contains("readable by other users"),
                "{}",
                stderr(&out)
            );
            assert!(
                !stderr(&out).contains("CLARION_SECRET_KEY"),
                "{}",
                stderr(&out)
            );
        }
        let mut run = clarion.run();
        run.ready().await;
        run.kill();
        assert_eq!(
            run.log().matches("readable by other users").count(),
            1,
            "{}",
            run.log()
        );
    }
}

async fn times_without_offset_use_the_timezone(db: Option<TestDb>) {
    let (_sink, clarion) = in_paris(db).await;
    // 09:00 in Paris in winter is 08:00 UTC.
    let out = clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "Launch",
        "--at",
        "2031-03-01T09:00:00",
    ]);
    assert!(
        out.contains("scheduled for 2031-03-01 09:00:00 CET"),
        "{out}"
    );
    let id: i32 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let store = clarion.db.store().await;
    let detail = store.post_detail(id).await.unwrap();
    let utc = chrono::DateTime::parse_from_rfc3339("2031-03-01T08:00:00Z").unwrap();
    assert_eq!(detail.post.scheduled_at_ms, Some(utc.timestamp_millis()));

    // In summer, CEST.
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "Summer",
        "--at",
        "2031-07-01 09:00",
    ]);
    // An explicit offset wins.
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "Offset",
        "--at",
        "2031-03-02T09:00:00Z",
    ]);

    let show = clarion.ok(&["post", "show", &id.to_string()]);
    assert!(
        show.contains("scheduled: 2031-03-01 09:00:00 CET"),
        "{show}"
    );
    assert!(show.contains("timezone:  Europe/Paris"), "{show}");
    // --json stays in UTC for scripts.
    let json: serde_json::Value =
        serde_json::from_str(&clarion.ok(&["post", "show", &id.to_string(), "--json"])).unwrap();
    assert_eq!(json["scheduled_at"], "2031-03-01T08:00:00.000Z");

    // The schedule by day, in time order, in the zone.
    let days = clarion.ok(&["post", "ls", "--from", "2031-03-01", "--to", "2031-07-01"]);
    let lines: Vec<&str> = days.lines().collect();
    assert!(
        lines[0].starts_with("3 post(s) from 2031-03-01 00:00:00 CET"),
        "{days}"
    );
    let order: Vec<usize> = [
        "Sat 2031-03-01",
        "09:00:00 CET",
        "Sun 2031-03-02",
        "10:00:00 CET",
        "Tue 2031-07-01",
        "09:00:00 CEST",
    ]
    .iter()
    .map(|needle| {
        days.find(needle)
            .unwrap_or_else(|| panic!("{needle}:\n{days}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{days}");
    let narrow = clarion.ok(&["post", "ls", "--from", "2031-03-02", "--to", "2031-03-02"]);
    assert!(
        narrow.contains("Offset") && !narrow.contains("Launch"),
        "{narrow}"
    );

    // The hour the clocks skip is refused, naming time and zone; nothing stored.
    let gap = clarion.cli(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "Gap",
        "--at",
        "2031-03-30T02:30:00",
    ]);
    assert!(!gap.status.success());
    assert!(
        stderr(&gap).contains("2031-03-30T02:30:00 does not exist in Europe/Paris"),
        "{}",
        stderr(&gap)
    );
    // The repeated hour in autumn takes the earlier instant (CEST, +02:00).
    let overlap = clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "Twice",
        "--at",
        "2031-10-26T02:30:00",
    ]);
    assert!(overlap.contains("2031-10-26 02:30:00 CEST"), "{overlap}");
    let posts = clarion.ok(&["post", "ls", "--limit", "100"]);
    assert!(!posts.contains("Gap"), "{posts}");

    // Content files: `at` without offset is read in the zone too.
    std::fs::write(
        clarion.posts_dir().join("paris.md"),
        "+++\nat = 2031-03-01T09:00:00\nchannels = [\"sink\"]\n+++\nFrom a file\n",
    )
    .unwrap();
    let plan = clarion.ok(&["content", "plan"]);
    assert!(plan.contains("2031-03-01 09:00:00 CET"), "{plan}");
}

#[tokio::test(flavor = "multi_thread")]
async fn times_without_offset_use_the_timezone_sqlite() {
    times_without_offset_use_the_timezone(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn times_without_offset_use_the_timezone_postgres() {
    if let Some(db) = TestDb::postgres().await {
        times_without_offset_use_the_timezone(Some(db)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_in_gets_one_message_with_examples() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    clarion.ok(&["migrate"]); // makes the key file: later commands log nothing
    let examples = "give a positive duration: a number and a unit (s, m, h, d), e.g. 90s, 5m, 1h30m, 2d or 1.5h";
    for args in [
        &["--in", "-5m"][..],
        &["--in=-5m"][..],
        &["--in", "0s"][..],
        &["--in", "3w"][..],
        &["--in", "10"][..],
    ] {
        let mut command = vec!["post", "create", "-C", "sink", "--text", "x"];
        command.extend_from_slice(args);
        let out = clarion.cli(&command);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(examples), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    let ok = clarion.ok(&[
        "post", "create", "-C", "sink", "--text", "x", "--in", "1.5h",
    ]);
    assert!(ok.contains("scheduled for"), "{ok}");
    let out = clarion.cli(&["post", "schedule", "1", "--in", "-1h"]);
    assert!(stderr(&out).contains(examples), "{}", stderr(&out));

    let bogus = clarion.cli(&["post", "ls", "--status", "bogus"]);
    assert!(!bogus.status.success());
    assert!(
        stderr(&bogus).contains(
            "one of: draft, scheduled, publishing, published, failed, outcome_unknown, cancelled"
        ),
        "{}",
        stderr(&bogus)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn help_lines_examples_and_completions() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    let help = clarion.ok(&["--help"]);
    assert!(help.contains("Examples:"), "{help}");
    let schedule = clarion.ok(&["post", "schedule", "--help"]);
    for needle in ["<ID>  The post's id", "--at <AT>  ", "--in <WITHIN>  "] {
        assert!(schedule.contains(needle), "{needle}\n{schedule}");
    }
    let sync = clarion.ok(&["content", "sync", "--help"]);
    assert!(sync.contains("--dir <DIR>"), "{sync}");
    assert!(sync.contains("Posts folder (default"), "{sync}");
    for shell in ["bash", "zsh", "fish"] {
        let script = clarion.ok(&["completions", shell]);
        assert!(script.contains("clarion"), "{shell}");
        assert!(
            script.contains("schedule"),
            "{shell}: subcommands completed"
        );
    }
    // Completions need no config.
    let out = std::process::Command::new(BIN)
        .args([
            "--config",
            "/nonexistent/clarion.toml",
            "completions",
            "bash",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_name_their_source() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut clarion = Clarion::new(None, &Settings::new(&sink));
    clarion
        .env
        .push(("CLARION_SCHEDULER__MAX_ATTEMPTS".into(), "abc".into()));
    let out = clarion.cli(&["post", "ls"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with("error: environment variable CLARION_SCHEDULER__MAX_ATTEMPTS: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    clarion.env.clear();
    for (var, value, expect) in [
        (
            "CLARION_SCHEDULER__CONCURRENCY",
            "0",
            "scheduler.concurrency = 0: must be at least 1",
        ),
        (
            "CLARION_SCHEDULER__POLL_INTERVAL_MS",
            "0",
            "scheduler.poll_interval_ms = 0: must be at least 1",
        ),
        (
            "CLARION_TIMEZONE",
            "Mars/Olympus",
            "`Mars/Olympus` is not a time zone",
        ),
        (
            "CLARION_SERVER__API_TOKEN",
            "inline-s3cret",
            "use { env = \"NAME\" } or { file = \"path\" }",
        ),
    ] {
        clarion.env = vec![(var.into(), value.into())];
        let out = clarion.cli(&["post", "ls"]);
        assert!(!out.status.success(), "{var}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("environment variable {var}: ")),
            "{err}"
        );
        assert!(err.contains(expect), "{err}");
        assert!(!err.contains("inline-s3cret"), "{err}");
    }
}

async fn calendar_feed(db: Option<TestDb>) {
    let (sink, clarion) = in_paris(db).await;
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let client = reqwest::Client::new();

    // An API `at` without offset is read in the zone too.
    let created = client
        .post(format!("{base}/api/v1/posts"))
        .bearer_auth(&clarion.token)
        .json(&serde_json::json!({
            "body": "Spring launch, with commas; and a backslash \\ and a long tail of words that goes on",
            "channels": ["sink"],
            "at": "2031-03-01T09:00:00",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(created["scheduled_at"], "2031-03-01T08:00:00.000Z");
    let target_id = created["targets"][0]["id"].as_i64().unwrap();
    let gap = client
        .post(format!("{base}/api/v1/posts"))
        .bearer_auth(&clarion.token)
        .json(
            &serde_json::json!({ "body": "x", "channels": ["sink"], "at": "2031-03-30T02:30:00" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gap.status(), 400);
    assert!(
        gap.text()
            .await
            .unwrap()
            .contains("2031-03-30T02:30:00 does not exist in Europe/Paris")
    );
    // One published now, so the feed has both kinds.
    clarion.ok(&[
        "post", "create", "-C", "sink", "--text", "Out now", "--at", "now",
    ]);
    let published = wait_until(std::time::Duration::from_secs(20), || async {
        !sink.arrivals().is_empty()
    })
    .await;
    assert!(published, "{}", run.log());
    let settled = wait_until(std::time::Duration::from_secs(20), || async {
        clarion.ok(&["post", "ls"]).contains("sink:published")
    })
    .await;
    assert!(settled, "{}", run.log());

    let feed_url = format!("{base}/calendar.ics");
    for request in [
        client.get(&feed_url),
        client.get(format!("{feed_url}?token=wrong")),
        client.get(&feed_url).bearer_auth("wrong"),
    ] {
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    let by_header = client
        .get(&feed_url)
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let answer = client
        .get(format!("{feed_url}?token={}", clarion.token))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "text/calendar; charset=utf-8"
    );
    let feed = answer.text().await.unwrap();

    // RFC 5545: CRLF everywhere, no line over 75 octets, folded lines
    // continue with a space.
    assert!(
        feed.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:"),
        "{feed}"
    );
    assert!(feed.ends_with("END:VCALENDAR\r\n"), "{feed}");
    let physical: Vec<&str> = feed.split("\r\n").collect();
    for line in &physical {
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        assert!(line.len() <= 75, "{} octets: {line}", line.len());
    }
    let lines: Vec<String> = feed
        .replace("\r\n ", "")
        .split("\r\n")
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines.iter().filter(|l| *l == "BEGIN:VEVENT").count(),
        2,
        "{feed}"
    );
    assert_eq!(
        lines.iter().filter(|l| *l == "END:VEVENT").count(),
        2,
        "{feed}"
    );
    assert!(
        lines.contains(&"DTSTART:20310301T080000Z".to_owned()),
        "{feed}"
    );
    assert!(
        lines.contains(
            &"SUMMARY:sink: Spring launch\\, with commas\\; and a backslash \\\\…".to_owned()
        ),
        "{feed}"
    );
    let uid = format!("UID:target-{target_id}-");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with(&uid)).count(),
        1,
        "{feed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("URL:https://sink.test/")),
        "{feed}"
    );
    // Each event has the properties RFC 5545 requires.
    for required in ["UID:", "DTSTAMP:", "DTSTART:"] {
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(required)).count(),
            2,
            "{required}\n{feed}"
        );
    }
    // The same target keeps its UID from one fetch to the next.
    let again = client
        .get(format!("{feed_url}?token={}", clarion.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let uid_line = |f: &str| {
        f.replace("\r\n ", "")
            .split("\r\n")
            .find(|l| l.starts_with(&uid))
            .map(str::to_owned)
    };
    assert_eq!(uid_line(&feed), uid_line(&again));
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_feed_sqlite() {
    calendar_feed(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_feed_postgres() {
    if let Some(db) = TestDb::postgres().await {
        calendar_feed(Some(db)).await;
    }
}
