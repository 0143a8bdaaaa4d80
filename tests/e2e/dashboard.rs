//! Team use: users from the CLI, sign-in, sessions, CSRF, roles, the
//! approval workflow and the audit log, against the real binary over HTTP
//! (the browser tests in `browser.rs` drive the same pages in Chromium).

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

const PASSWORD: &str = "correct horse battery";

/// A signed-in browser: its session cookie and CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Adds a user through `clarion users add` with the shared password.
pub fn add_user(clarion: &mut Clarion, email: &str, role: &str) {
    clarion.env = vec![("CLARION_PASSWORD".into(), PASSWORD.into())];
    let out = clarion.ok(&["users", "add", email, "--role", role]);
    clarion.env.clear();
    assert!(out.contains(&format!("added {email} ({role})")), "{out}");
}

/// Signs in through the login form; returns the session (cookie + CSRF).
pub async fn sign_in(
    base: &str,
    email: &str,
    password: &str,
) -> Result<Session, (StatusCode, String)> {
    let c = client();
    let r = c
        .post(format!("{base}/login"))
        .form(&[
            ("email", email),
            ("password", password),
            ("next", "/approvals"),
        ])
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::SEE_OTHER {
        let status = r.status();
        return Err((status, r.text().await.unwrap()));
    }
    assert_eq!(r.headers()["location"], "/approvals");
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing: {set_cookie}"
        );
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let page = c
        .get(format!("{base}/approvals"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page carries the session's CSRF token")
        .to_owned();
    Ok(Session { cookie, csrf })
}

impl Session {
    pub async fn api(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.api_with_csrf(method, url, body, Some(&self.csrf))
            .await
    }

    pub async fn api_with_csrf(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut r = client().request(method, url).header("cookie", &self.cookie);
        if let Some(csrf) = csrf {
            r = r.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

async fn roles_sessions_and_approvals(db: TestDb) {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    // Editors hear of posts waiting for them on the alerts channel.
    settings.extra_channels = "[alerts]\nchannel = \"sink\"\n".into();
    let mut clarion = Clarion::new(Some(db), &settings);
    add_user(&mut clarion, "owner@example.com", "owner");
    add_user(&mut clarion, "ed@example.com", "editor");
    add_user(&mut clarion, "co@example.com", "contributor");
    add_user(&mut clarion, "vi@example.com", "viewer");
    let listed = clarion.ok(&["users", "ls"]);
    for email in [
        "owner@example.com",
        "ed@example.com",
        "co@example.com",
        "vi@example.com",
    ] {
        assert!(listed.contains(email), "{listed}");
    }
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let api = |path: &str| format!("{base}/api/v1{path}");

    // Not signed in: pages send you to the login form, the API says 401.
    let r = client().get(format!("{base}/inbox")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Finbox");
    let (status, _) = Session {
        cookie: "clarion_session=made-up".into(),
        csrf: String::new(),
    }
    .api(reqwest::Method::GET, &api("/posts"), None)
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a made-up cookie is no session"
    );

    let (status, page) = sign_in(&base, "co@example.com", "wrong password!")
        .await
        .err()
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Wrong email or password."), "{page}");

    let co = sign_in(&base, "co@example.com", PASSWORD).await.unwrap();
    let ed = sign_in(&base, "ed@example.com", PASSWORD).await.unwrap();
    let vi = sign_in(&base, "vi@example.com", PASSWORD).await.unwrap();
    assert_ne!(co.csrf, ed.csrf, "each session has its own CSRF token");

    // A contributor's post waits for approval: stored, never queued.
    let at = at_in(3_600_000);
    let post = json!({"body": "Spring launch", "channels": ["sink"], "at": at});
    let (status, created) = co
        .api(reqwest::Method::POST, &api("/posts"), Some(post.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["approval"], "pending_approval");
    assert_eq!(created["targets"][0]["status"], "draft");
    let id = created["id"].as_i64().unwrap();
    let notice = format!("Post {id} by co@example.com waits for approval");
    let told = wait_until(std::time::Duration::from_secs(20), || async {
        sink.arrivals()
            .iter()
            .any(|a| a.body.to_string().contains(&notice))
    })
    .await;
    assert!(
        told,
        "editors were told on the alerts channel: {:?}",
        sink.arrivals()
    );
    // Never early: a submission due now is not sent while it waits. Its
    // notice goes through the same queue after it is stored, so once the
    // notice has arrived the dispatcher has had its chance at the post.
    let (status, due_now) = co
        .api(
            reqwest::Method::POST,
            &api("/posts"),
            Some(json!({"body": "Due now, waiting", "channels": ["sink"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{due_now}");
    let due_id = due_now["id"].as_i64().unwrap();
    let due_notice = format!("Post {due_id} by co@example.com waits for approval");
    let told = wait_until(std::time::Duration::from_secs(20), || async {
        sink.arrivals()
            .iter()
            .any(|a| a.body.to_string().contains(&due_notice))
    })
    .await;
    assert!(told, "{:?}", sink.arrivals());
    let sent = |text: &'static str| {
        let sink = sink.clone();
        move || {
            sink.arrivals()
                .iter()
                .filter(|a| a.body["text"].as_str() == Some(text))
                .count()
        }
    };
    let due_sent = sent("Due now, waiting");
    assert_eq!(due_sent(), 0, "a post waiting for approval was sent");

    // ... and a contributor cannot schedule it themselves.
    let (status, err) = co
        .api(
            reqwest::Method::POST,
            &api(&format!("/posts/{id}/schedule")),
            Some(json!({"at": at})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        err["error"].as_str().unwrap().contains("needs editor"),
        "{err}"
    );

    // CSRF: a session's write without its token, or with another's, is refused.
    for csrf in [None, Some("forged"), Some(ed.csrf.as_str())] {
        let (status, err) = co
            .api_with_csrf(
                reqwest::Method::POST,
                &api("/posts"),
                Some(post.clone()),
                csrf,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "csrf {csrf:?}");
        assert!(err["error"].as_str().unwrap().contains("CSRF"), "{err}");
    }

    // A viewer reads but cannot write.
    let (status, _) = vi.api(reqwest::Method::GET, &api("/posts"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = vi
        .api(reqwest::Method::POST, &api("/posts"), Some(post.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("vi@example.com is viewer"),
        "{err}"
    );

    // An editor cannot move a post that waits for approval, only decide it.
    let (status, err) = ed
        .api(
            reqwest::Method::POST,
            &api(&format!("/posts/{id}/schedule")),
            Some(json!({"at": at})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let approvals = client()
        .get(format!("{base}/approvals"))
        .header("cookie", &ed.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(approvals.contains("Spring launch") && approvals.contains("Approve and schedule"));
    let (status, approved) = ed
        .api(
            reqwest::Method::POST,
            &api(&format!("/posts/{id}/approve")),
            Some(json!({"comment": "ship it"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approval"], "approved");
    assert_eq!(approved["targets"][0]["status"], "scheduled");
    let wanted = chrono::DateTime::parse_from_rfc3339(&at)
        .unwrap()
        .timestamp_millis();
    let got = chrono::DateTime::parse_from_rfc3339(
        approved["targets"][0]["scheduled_at"].as_str().unwrap(),
    )
    .unwrap()
    .timestamp_millis();
    assert_eq!(got, wanted, "scheduled for the time the contributor asked");
    let (status, _) = ed
        .api(
            reqwest::Method::POST,
            &api(&format!("/posts/{id}/approve")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once");
    // Approved with no time asked for: sent now, once.
    let (status, _) = ed
        .api(
            reqwest::Method::POST,
            &api(&format!("/posts/{due_id}/approve")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let arrived = wait_until(std::time::Duration::from_secs(20), || async {
        due_sent() == 1
    })
    .await;
    assert!(arrived, "the approved post was sent: {:?}", sink.arrivals());

    // Rejected with a comment: stays a draft; resubmitted: waits again.
    let (_, second) = co
        .api(reqwest::Method::POST, &api("/posts"), Some(post.clone()))
        .await;
    let second_id = second["id"].as_i64().unwrap();
    let (status, err) = ed
        .api(
            reqwest::Method::POST,
            &api(&format!("/posts/{second_id}/reject")),
            Some(json!({"comment": ""})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a rejection says why: {err}"
    );
    let (status, rejected) = ed
        .api(
            reqwest::Method::POST,
            &api(&format!("/posts/{second_id}/reject")),
            Some(json!({"comment": "wrong date"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rejected["approval"], "rejected");
    assert_eq!(rejected["review_comment"], "wrong date");
    assert_eq!(rejected["targets"][0]["status"], "draft");
    let (status, again) = co
        .api(
            reqwest::Method::POST,
            &api(&format!("/posts/{second_id}/submit")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["approval"], "pending_approval");

    // Per-user API tokens act with their user's role.
    let token = clarion.ok(&["users", "token", "vi@example.com", "--name", "script"]);
    let token = token.trim();
    let r = client()
        .post(api("/posts"))
        .bearer_auth(token)
        .json(&post)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client()
        .get(api("/posts"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The shared token still works, as an owner.
    let r = client()
        .get(api("/users"))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .get(api("/users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "only owners manage users"
    );

    // The audit log names who did what, and exports as CSV.
    let (_, audit) = ed.api(reqwest::Method::GET, &api("/audit"), None).await;
    let entries: Vec<(String, String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
                e["subject"].as_str().unwrap().into(),
            )
        })
        .collect();
    for wanted in [
        ("co@example.com", "post.submit", format!("post {id}")),
        ("ed@example.com", "post.approve", format!("post {id}")),
        ("ed@example.com", "post.reject", format!("post {second_id}")),
        ("co@example.com", "post.submit", format!("post {second_id}")),
        ("cli", "user.add", "user vi@example.com".to_owned()),
    ] {
        assert!(
            entries
                .iter()
                .any(|(a, b, c)| (a.as_str(), b.as_str(), c) == (wanted.0, wanted.1, &wanted.2)),
            "{wanted:?} not in {entries:?}"
        );
    }
    assert!(
        !entries
            .iter()
            .any(|(_, action, _)| action == "post.schedule"),
        "refused writes are not logged"
    );
    let csv = client()
        .get(api("/audit?format=csv"))
        .header("cookie", &ed.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("at,actor,action,subject,detail"), "{csv}");
    assert!(csv.contains("post.approve"), "{csv}");
    assert!(!csv.contains(PASSWORD), "passwords never reach the log");

    // Signing out ends the session for good.
    let r = client()
        .post(format!("{base}/logout"))
        .header("cookie", &co.cookie)
        .form(&[("csrf", co.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, _) = co.api(reqwest::Method::GET, &api("/posts"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Guessing is slowed: after five failures the account is locked for a
    // while, even for the right password.
    for _ in 0..5 {
        let (status, _) = sign_in(&base, "owner@example.com", "not the password")
            .await
            .err()
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let r = client()
        .post(format!("{base}/login"))
        .form(&[("email", "owner@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_sessions_and_approvals_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    roles_sessions_and_approvals(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_sessions_and_approvals_postgres() {
    if let Some(db) = TestDb::postgres().await {
        roles_sessions_and_approvals(db).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_cli_refuses_bad_input_and_keeps_an_owner() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut clarion = Clarion::new(None, &Settings::new(&sink));
    let fails = |clarion: &Clarion, args: &[&str]| {
        let out = clarion.cli(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = fails(
        &clarion,
        &["users", "add", "not-an-email", "--role", "owner"],
    );
    assert!(
        err.contains("`not-an-email` is not an email address"),
        "{err}"
    );
    clarion.env = vec![("CLARION_PASSWORD".into(), "short".into())];
    let err = fails(&clarion, &["users", "add", "a@example.com"]);
    assert!(err.contains("too short"), "{err}");
    clarion.env.clear();
    // No password: the first user is an owner and gets a one-time link.
    let out = clarion.ok(&["users", "add", "a@example.com"]);
    assert!(out.contains("added a@example.com (owner)"), "{out}");
    let link = out
        .split_whitespace()
        .find(|w| w.contains("/login/link/"))
        .expect("a sign-in link")
        .to_owned();
    let err = fails(&clarion, &["users", "add", "A@example.com"]);
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&clarion, &["users", "role", "a@example.com", "viewer"]);
    assert!(err.contains("last owner"), "{err}");
    let err = fails(&clarion, &["users", "rm", "a@example.com"]);
    assert!(err.contains("last owner"), "{err}");
    let err = fails(&clarion, &["users", "role", "a@example.com", "admin"]);
    assert!(err.contains("unknown role `admin`"), "{err}");

    // The link signs in once.
    let run = clarion.run();
    run.ready().await;
    let path = link.split_once("/login/link/").unwrap().1;
    let url = format!("http://127.0.0.1:{}/login/link/{path}", run.port);
    let first = client().get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert!(
        first.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("clarion_session=")
    );
    let again = client().get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("expired or was already used")
    );
}
