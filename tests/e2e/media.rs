//! Media named through the API or the CLI comes from the media folder
//! (`media_dir`, default `<content_dir>/media`) or is uploaded into it with
//! `POST /api/v1/media`; a path elsewhere is refused without saying whether
//! it exists; a type is accepted only on channels whose adapter takes it.

use serde_json::{Value, json};

use crate::harness::*;
use crate::platforms::{Platforms, five_channels, platform_env};

#[tokio::test(flavor = "multi_thread")]
async fn media_comes_from_the_media_folder_or_an_upload() {
    let fakes = Platforms::start().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = five_channels(&fakes.base);
    let mut clarion = Clarion::new(None, &settings);
    clarion.env = platform_env();
    // A real image outside the media folder, next to the config.
    let outside = clarion.dir.path().join("outside.png");
    std::fs::write(&outside, b"\x89PNG not really").unwrap();
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let client = reqwest::Client::new();
    let upload = |name: &'static str, bytes: &'static [u8]| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
        client
            .post(format!("{base}/api/v1/media"))
            .bearer_auth(&clarion.token)
            .multipart(form)
            .send()
    };
    let create = |media: &str| {
        client
            .post(format!("{base}/api/v1/posts"))
            .bearer_auth(&clarion.token)
            .json(&json!({
                "body": "with a picture", "channels": ["masto"], "draft": true,
                "media": [{"path": media, "alt": "a picture"}]
            }))
            .send()
    };

    // Upload: sanitised name, the path to use, measured.
    let uploaded = upload("../../My Logo.png", b"\x89PNG logo bytes")
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let uploaded: Value = uploaded.json().await.unwrap();
    let path = uploaded["path"].as_str().unwrap().to_owned();
    assert!(
        path.starts_with("uploads/") && path.ends_with("-My-Logo.png"),
        "{uploaded}"
    );
    assert_eq!(uploaded["mime"], "image/png");
    assert_eq!(uploaded["bytes"], 15);
    assert!(
        clarion
            .dir
            .path()
            .join("content/media")
            .join(&path)
            .is_file()
    );

    let created = create(&path).await.unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());

    // Outside the folder: an existing file, a missing one, `..`: the same answer.
    let refusal =
        |answer: Value, given: &str| answer["error"].as_str().unwrap().replace(given, "<path>");
    let mut answers = Vec::new();
    for given in [
        outside.to_str().unwrap(),
        clarion.dir.path().join("missing.png").to_str().unwrap(),
        "../../outside.png",
        "/etc/passwd.png",
    ] {
        let answer = create(given).await.unwrap();
        assert_eq!(answer.status(), 400, "{given}");
        answers.push(refusal(answer.json().await.unwrap(), given));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    assert!(
        answers[0].contains("is not a file in the media folder"),
        "{}",
        answers[0]
    );
    assert!(
        !answers[0].to_lowercase().contains("no such file"),
        "{}",
        answers[0]
    );

    // A type is accepted only where the channel's adapter takes it.
    let clip = upload("clip.mp4", b"\x00\x00\x00\x18ftypmp42")
        .await
        .unwrap();
    assert_eq!(clip.status(), 201);
    let clip: Value = clip.json().await.unwrap();
    let refused = create(clip["path"].as_str().unwrap()).await.unwrap();
    assert_eq!(refused.status(), 422);
    let details = refused.json::<Value>().await.unwrap()["details"].to_string();
    assert!(details.contains("channel `masto`"), "{details}");
    assert!(details.contains("video/mp4"), "{details}");
    assert!(
        details.contains("accepted: image/png, image/jpeg, image/gif, image/webp"),
        "{details}"
    );

    // Not a media type, or no file at all: refused, nothing stored.
    let text = upload("notes.txt", b"hello").await.unwrap();
    assert_eq!(text.status(), 400);
    assert!(text.text().await.unwrap().contains("unknown media type"));
    let none = client
        .post(format!("{base}/api/v1/media"))
        .bearer_auth(&clarion.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 400);
    let anonymous = client
        .post(format!("{base}/api/v1/media"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // The CLI takes a path from here or within the folder, and refuses others alike.
    let from_here = format!("content/media/{path}");
    clarion.ok(&[
        "post", "create", "-C", "masto", "--text", "hi", "--draft", "--media", &from_here,
    ]);
    clarion.ok(&[
        "post", "create", "-C", "masto", "--text", "hi", "--draft", "--media", &path,
    ]);
    let out = clarion.cli(&[
        "post",
        "create",
        "-C",
        "masto",
        "--text",
        "hi",
        "--draft",
        "--media",
        "outside.png",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not a file in the media folder"),
        "{stderr}"
    );
}
