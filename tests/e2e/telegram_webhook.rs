//! Telegram in webhook mode: updates pushed to `POST /hooks/<channel>` are
//! stored only with the right `X-Telegram-Bot-Api-Secret-Token`; a forged
//! or missing secret gets 401 and nothing is stored; a malformed body gets
//! 400; the same update twice is stored once.

use axum::Json;
use axum::extract::Request;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::harness::*;

const SECRET: &str = "hook-Secret_0123456789";

async fn fake_bot_api() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|request: Request| async move {
        if request.uri().path().to_lowercase().ends_with("/getme") {
            Json(json!({"ok": true, "result": {"id": 123456, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot"}}))
                .into_response()
        } else {
            // getUpdates must never be called in webhook mode.
            (axum::http::StatusCode::CONFLICT, Json(json!({"ok": false, "error_code": 409,
                "description": "Conflict: can't use getUpdates method while webhook is active"})))
                .into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn dm(update_id: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": 31, "date": 1_764_230_400,
            "chat": {"id": 4242, "type": "private", "first_name": "Kim"},
            "from": {"id": 4242, "is_bot": false, "first_name": "Kim", "username": "kim"},
            "text": text
        }
    })
}

async fn pushes_need_the_secret(db: Option<TestDb>) {
    let base = fake_bot_api().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = format!(
        r#"
[[channels]]
name = "tg"
kind = "telegram"
bot_token = {{ env = "E2E_TELEGRAM_TOKEN" }}
chat_id = "-100777"
api_url = "{base}/"
listen = true
webhook_secret = {{ env = "E2E_TELEGRAM_HOOK_SECRET" }}
"#
    );
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = vec![
        ("E2E_TELEGRAM_TOKEN".into(), "123:telegram".into()),
        ("E2E_TELEGRAM_HOOK_SECRET".into(), SECRET.into()),
    ];
    let run = clarion.run();
    run.ready().await;
    let url = format!("http://127.0.0.1:{}/hooks/tg", clarion.port);
    let client = reqwest::Client::new();
    let push = |secret: Option<&'static str>, body: String| {
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        request.send()
    };
    let update = dm(500, "Hi, is my order shipped?").to_string();

    let forged = push(Some("hook-Secret_0123456788"), update.clone())
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let missing = push(None, update.clone()).await.unwrap();
    assert_eq!(missing.status(), 401);
    let listed = clarion.ok(&["inbox", "ls"]);
    assert!(
        listed.contains("no conversations"),
        "nothing stored: {listed}"
    );

    let malformed = push(Some(SECRET), "{\"message\": 1".into()).await.unwrap();
    assert_eq!(malformed.status(), 400);
    let text = malformed.text().await.unwrap();
    assert!(text.contains("malformed body"), "{text}");

    let ok = push(Some(SECRET), update.clone()).await.unwrap();
    assert_eq!(ok.status(), 200, "{}", run.log());
    assert_eq!(ok.json::<Value>().await.unwrap()["stored"], json!(1));
    let again = push(Some(SECRET), update).await.unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap()["stored"],
        json!(0),
        "stored once"
    );

    let listed = clarion.ok(&["inbox", "ls", "--json"]);
    let lines: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{listed}");
    assert_eq!(lines[0]["latest"]["kind"], json!("dm"));
    assert_eq!(
        lines[0]["latest"]["text"],
        json!("Hi, is my order shipped?")
    );
    assert!(!run.log().contains(SECRET), "the secret is never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn telegram_pushes_need_the_secret_sqlite() {
    pushes_need_the_secret(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn telegram_pushes_need_the_secret_postgres() {
    if let Some(db) = TestDb::postgres().await {
        pushes_need_the_secret(Some(db)).await;
    }
}
