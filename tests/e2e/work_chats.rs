//! One post file to the Chinese work-chat robots (WeCom, Feishu, DingTalk),
//! Weibo and LinkedIn, each a fake on 127.0.0.1 answering in the platform's
//! documented wire format: published once each, signed where the robot is
//! signed (checked here with openssl, not with the code under test), and
//! counted the platform's way on CJK text by `content plan`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::harness::*;

const FEISHU_SECRET: &str = "feishu-signing-secret";
const DINGTALK_SECRET: &str = "SECdingtalk-signing-secret";

/// One request a robot fake received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub robot: &'static str,
    pub query: String,
    pub body: Value,
    /// The body as sent (Weibo's is a form).
    pub raw: String,
}

#[derive(Clone)]
pub struct Robots {
    pub base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Robots {
    pub async fn start() -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(hits.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, hits }
    }

    pub fn hits(&self, robot: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.robot == robot)
            .cloned()
            .collect()
    }
}

async fn answer(State(hits): State<Arc<Mutex<Vec<Hit>>>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let robot = if path == "/cgi-bin/webhook/send" {
        "wecom"
    } else if path.starts_with("/open-apis/bot/v2/hook/") {
        "feishu"
    } else if path == "/robot/send" {
        "dingtalk"
    } else if path == "/2/statuses/share.json" {
        "weibo"
    } else if path == "/rest/posts" {
        "linkedin"
    } else {
        "unknown"
    };
    hits.lock().unwrap().push(Hit {
        robot,
        query: query.clone(),
        body: body.clone(),
        raw: String::from_utf8_lossy(&bytes).into_owned(),
    });
    match robot {
        // WeCom: the key in the query; errcode 0 is success.
        "wecom" if query == "key=wecom-key" => {
            Json(json!({"errcode": 0, "errmsg": "ok"})).into_response()
        }
        "wecom" => Json(json!({"errcode": 93000, "errmsg": "invalid webhook url"})).into_response(),
        "feishu" if path.ends_with("/feishu-token") => {
            Json(json!({"code": 0, "msg": "success", "data": {}})).into_response()
        }
        "feishu" => Json(json!({"code": 19001, "msg": "param invalid: incoming webhook access token invalid", "data": {}}))
            .into_response(),
        "dingtalk" => Json(json!({"errcode": 0, "errmsg": "ok"})).into_response(),
        // Weibo: the new status (`statuses/share`).
        "weibo" => Json(json!({
            "created_at": "Sat Nov 28 10:00:00 +0800 2026", "id": 4_950_000_000_000_001_u64,
            "idstr": "4950000000000001", "mid": "4950000000000001", "text": "ok",
            "user": {"id": 7_000_000_001_u64, "idstr": "7000000001", "screen_name": "clarion"}
        }))
        .into_response(),
        // LinkedIn: 201, the post's URN in `x-restli-id`, no body.
        "linkedin" => (
            axum::http::StatusCode::CREATED,
            [("x-restli-id", "urn:li:share:7300000000000000001")],
        )
            .into_response(),
        _ => (
            axum::http::StatusCode::NOT_FOUND,
            Json(json!({"error": format!("fake has no {path}")})),
        )
            .into_response(),
    }
}

pub fn robot_channels(base: &str) -> String {
    format!(
        r#"
[[channels]]
name = "wecom"
kind = "wecom"
key = {{ env = "E2E_WECOM_KEY" }}
base_url = "{base}"

[[channels]]
name = "feishu"
kind = "feishu"
token = {{ env = "E2E_FEISHU_TOKEN" }}
secret = {{ env = "E2E_FEISHU_SECRET" }}
base_url = "{base}"

[[channels]]
name = "dingtalk"
kind = "dingtalk"
access_token = {{ env = "E2E_DINGTALK_TOKEN" }}
secret = {{ env = "E2E_DINGTALK_SECRET" }}
base_url = "{base}"

[[channels]]
name = "weibo"
kind = "weibo"
access_token = {{ env = "E2E_WEIBO_TOKEN" }}
safe_url = "https://shop.example.cn/"
append_safe_url = true
api_base = "{base}"

[[channels]]
name = "linkedin"
kind = "linkedin"
author = "urn:li:organization:2414183"
access_token = {{ env = "E2E_LINKEDIN_TOKEN" }}
api_base = "{base}"
"#
    )
}

pub fn robot_env() -> Vec<(String, String)> {
    [
        ("E2E_WECOM_KEY", "wecom-key"),
        ("E2E_FEISHU_TOKEN", "feishu-token"),
        ("E2E_FEISHU_SECRET", FEISHU_SECRET),
        ("E2E_DINGTALK_TOKEN", "dingtalk-token"),
        ("E2E_DINGTALK_SECRET", DINGTALK_SECRET),
        ("E2E_WEIBO_TOKEN", "weibo-token"),
        ("E2E_LINKEDIN_TOKEN", "linkedin-token"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(&format!("http://robot.test/?{query}"))
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn one_file_to_every_work_chat(db: Option<TestDb>) {
    let robots = Robots::start().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = robot_channels(&robots.base);
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = robot_env();
    let channels = r#"["wecom", "feishu", "dingtalk", "weibo", "linkedin"]"#;

    // 1,400 CJK characters are 4,200 bytes of UTF-8: over WeCom's 4,096
    // for markdown, well inside Feishu's and DingTalk's limits; and 1,400
    // of Weibo's 2,000 (a CJK character counts one).
    let long = "新品上市".repeat(350);
    let at = at_in(1_500);
    let file = |body: &str| format!("+++\nat = \"{at}\"\nchannels = {channels}\n+++\n{body}\n");
    std::fs::write(clarion.posts_dir().join("long.md"), file(&long)).unwrap();
    let plan = clarion.cli(&["content", "plan"]);
    assert!(!plan.status.success(), "{plan:?}");
    let stderr = String::from_utf8_lossy(&plan.stderr);
    assert!(
        stderr.contains("long.md") && stderr.contains("wecom") && stderr.contains("bytes"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("`feishu`") && !stderr.contains("`dingtalk`"),
        "{stderr}"
    );
    std::fs::remove_file(clarion.posts_dir().join("long.md")).unwrap();

    std::fs::write(
        clarion.posts_dir().join("launch.md"),
        file("**春季新品**上市：今天下单享九折。"),
    )
    .unwrap();
    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains("+ wecom") && plan.contains("+ dingtalk"),
        "{plan}"
    );
    clarion.ok(&["content", "sync"]);
    let run = clarion.run();
    run.ready().await;

    let store = clarion.db.store().await;
    let done = wait_until(Duration::from_secs(30), || async {
        let targets = all_targets(&store).await;
        targets.len() == 5 && targets.iter().all(|t| t.status == "published")
    })
    .await;
    assert!(
        done,
        "{:?}\n{}",
        all_targets(&store)
            .await
            .iter()
            .map(|t| (&t.channel, &t.status, &t.last_error))
            .collect::<Vec<_>>(),
        run.log()
    );

    // Each robot got the post once, in its own dialect.
    let wecom = robots.hits("wecom");
    assert_eq!(wecom.len(), 1, "{wecom:?}");
    assert_eq!(wecom[0].body["msgtype"], json!("markdown"), "{wecom:?}");
    let text = wecom[0].body["markdown"]["content"].as_str().unwrap();
    assert!(
        text.contains("**春季新品**") && text.contains("九折"),
        "{text}"
    );

    let feishu = robots.hits("feishu");
    assert_eq!(feishu.len(), 1, "{feishu:?}");
    assert!(
        feishu[0].body.to_string().contains("春季新品"),
        "{feishu:?}"
    );
    // Feishu's signature: HMAC-SHA256 keyed by "timestamp\nsecret" over
    // nothing, base64; recomputed here with openssl.
    let ts = feishu[0].body["timestamp"].as_str().unwrap().to_owned();
    assert_eq!(
        feishu[0].body["sign"].as_str().unwrap(),
        openssl_hmac_with(&format!("{ts}\n{FEISHU_SECRET}"), ""),
        "{feishu:?}"
    );

    let dingtalk = robots.hits("dingtalk");
    assert_eq!(dingtalk.len(), 1, "{dingtalk:?}");
    assert!(
        dingtalk[0].body.to_string().contains("春季新品"),
        "{dingtalk:?}"
    );
    // DingTalk's: HMAC-SHA256 keyed by the secret over "timestamp\nsecret",
    // base64, URL-encoded once in the query.
    let q = &dingtalk[0].query;
    assert_eq!(
        query_param(q, "access_token").as_deref(),
        Some("dingtalk-token")
    );
    let ts = query_param(q, "timestamp").unwrap();
    assert_eq!(
        query_param(q, "sign").unwrap(),
        openssl_hmac_with(DINGTALK_SECRET, &format!("{ts}\n{DINGTALK_SECRET}")),
        "{q}"
    );

    let weibo = robots.hits("weibo");
    assert_eq!(weibo.len(), 1, "{weibo:?}");
    let form: Vec<(String, String)> =
        reqwest::Url::parse(&format!("http://f.test/?{}", weibo[0].raw))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
    let status = &form.iter().find(|(k, _)| k == "status").unwrap().1;
    assert!(
        status.contains("春季新品") && status.contains("https://shop.example.cn/"),
        "{status}"
    );
    assert!(
        form.iter()
            .any(|(k, v)| k == "access_token" && v == "weibo-token")
    );

    let linkedin = robots.hits("linkedin");
    assert_eq!(linkedin.len(), 1, "{linkedin:?}");
    assert_eq!(
        linkedin[0].body["author"],
        json!("urn:li:organization:2414183")
    );
    assert!(
        linkedin[0].body["commentary"]
            .as_str()
            .is_some_and(|t| t.contains("春季新品")),
        "{linkedin:?}"
    );
    let target = all_targets(&store)
        .await
        .into_iter()
        .find(|t| t.channel == "linkedin")
        .unwrap();
    assert_eq!(
        target.platform_post_id.as_deref(),
        Some("urn:li:share:7300000000000000001")
    );

    // A second sync changes nothing and sends nothing more.
    let synced = clarion.ok(&["content", "sync"]);
    assert!(synced.contains("1 unchanged"), "{synced}");
    assert_eq!(robots.hits("wecom").len(), 1);
    assert_eq!(robots.hits("feishu").len(), 1);
    assert_eq!(robots.hits("dingtalk").len(), 1);
    assert_eq!(robots.hits("weibo").len(), 1);
    assert_eq!(robots.hits("linkedin").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_file_to_every_work_chat_sqlite() {
    one_file_to_every_work_chat(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_file_to_every_work_chat_postgres() {
    if let Some(db) = TestDb::postgres().await {
        one_file_to_every_work_chat(Some(db)).await;
    }
}
