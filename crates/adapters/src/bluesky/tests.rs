//! The adapter against a local fake PDS that answers the documented XRPC
//! shapes and records every request it gets.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use clarion_core::{Media, MemoryAdapterStore, ReplyTo};

use super::*;

const DID: &str = "did:plc:alice";
const HANDLE: &str = "alice.bsky.social";
const PASSWORD: &str = "app-pass-1234";

/// One request as the fake received it.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    auth: Option<String>,
    content_type: Option<String>,
    query: HashMap<String, String>,
    body: Vec<u8>,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Debug, Default)]
struct Fake {
    calls: Vec<Call>,
    issued: u32,
    valid_access: Option<String>,
    valid_refresh: Option<String>,
    /// rkey -> (uri, cid, record value)
    records: HashMap<String, (String, String, Value)>,
    /// `getSession` answers 200 with a body that is not its JSON.
    garbled_session: bool,
}

type Shared = Arc<StdMutex<Fake>>;

/// The scheduled time every test request carries.
const SCHEDULED_MS: i64 = 1_764_158_400_000;

fn xrpc_error(status: u16, error: &str, message: &str) -> Response {
    (
        AxumStatus::from_u16(status).unwrap(),
        axum::Json(json!({"error": error, "message": message})),
    )
        .into_response()
}

fn issue_tokens(fake: &mut Fake) -> Response {
    fake.issued += 1;
    let (access, refresh) = (
        format!("access-{}", fake.issued),
        format!("refresh-{}", fake.issued),
    );
    fake.valid_access = Some(access.clone());
    fake.valid_refresh = Some(refresh.clone());
    axum::Json(json!({"accessJwt": access, "refreshJwt": refresh, "handle": HANDLE, "did": DID, "active": true}))
        .into_response()
}

async fn handle(
    State(fake): State<Shared>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: AxumHeaders,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let call = Call {
        method: method.clone(),
        auth: header("authorization"),
        content_type: header("content-type"),
        query: url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
        body: body.to_vec(),
    };
    let mut fake = fake.lock().unwrap();
    fake.calls.push(call.clone());
    let bearer = call
        .auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned);
    match method.as_str() {
        "com.atproto.server.createSession" => {
            let body = call.json();
            if body["identifier"] == HANDLE && body["password"] == PASSWORD {
                issue_tokens(&mut fake)
            } else {
                xrpc_error(
                    401,
                    "AuthenticationRequired",
                    "Invalid identifier or password",
                )
            }
        }
        "com.atproto.server.refreshSession" => {
            if bearer.is_some() && bearer == fake.valid_refresh {
                issue_tokens(&mut fake)
            } else {
                xrpc_error(400, "ExpiredToken", "Token has expired")
            }
        }
        "com.atproto.identity.resolveHandle" => {
            match call.query.get("handle").map(String::as_str) {
                Some("bob.test") => axum::Json(json!({"did": "did:plc:bob"})).into_response(),
                _ => xrpc_error(400, "InvalidRequest", "Unable to resolve handle"),
            }
        }
        _ if bearer.is_none() || bearer != fake.valid_access => {
            xrpc_error(400, "ExpiredToken", "Token has expired")
        }
        "com.atproto.server.getSession" if fake.garbled_session => {
            "<html>Service temporarily unavailable</html>".into_response()
        }
        "com.atproto.server.getSession" => {
            axum::Json(json!({"handle": HANDLE, "did": DID})).into_response()
        }
        "com.atproto.repo.uploadBlob" => axum::Json(json!({"blob": {
            "$type": "blob",
            "ref": {"$link": "bafkreiblob"},
            "mimeType": call.content_type,
            "size": call.body.len(),
        }}))
        .into_response(),
        "com.atproto.repo.getRecord" => {
            let rkey = call.query.get("rkey").cloned().unwrap_or_default();
            match fake.records.get(&rkey) {
                Some((uri, cid, value)) => {
                    axum::Json(json!({"uri": uri, "cid": cid, "value": value})).into_response()
                }
                None => xrpc_error(400, "RecordNotFound", "Could not locate record"),
            }
        }
        "com.atproto.repo.createRecord" => {
            let body = call.json();
            match body["record"]["text"].as_str() {
                Some("rate limit me") => {
                    let reset = (chrono::Utc::now().timestamp() + 120).to_string();
                    return (
                        AxumStatus::TOO_MANY_REQUESTS,
                        [
                            ("RateLimit-Limit", "5000".to_owned()),
                            ("RateLimit-Remaining", "0".to_owned()),
                            ("RateLimit-Reset", reset),
                        ],
                        axum::Json(
                            json!({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}),
                        ),
                    )
                        .into_response();
                }
                Some("server error") => {
                    return xrpc_error(500, "InternalServerError", "Internal Server Error");
                }
                Some("invalid me") => {
                    return xrpc_error(
                        400,
                        "InvalidRequest",
                        "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes",
                    );
                }
                _ => {}
            }
            let rkey = body["rkey"].as_str().unwrap_or("3generatedkey").to_owned();
            if fake.records.contains_key(&rkey) {
                // What the reference PDS answers today for a taken rkey.
                return xrpc_error(500, "InternalServerError", "Internal Server Error");
            }
            let uri = format!(
                "at://{}/app.bsky.feed.post/{rkey}",
                body["repo"].as_str().unwrap()
            );
            let cid = format!("bafy-{rkey}");
            fake.records
                .insert(rkey, (uri.clone(), cid.clone(), body["record"].clone()));
            axum::Json(json!({"uri": uri, "cid": cid, "validationStatus": "valid"})).into_response()
        }
        // The AppView's post views, with their counts; an unknown (deleted)
        // post is left out of the answer.
        "app.bsky.feed.getPosts" => {
            let uri = call.query.get("uris").cloned().unwrap_or_default();
            let posts: Vec<Value> = fake
                .records
                .values()
                .filter(|(stored, _, _)| *stored == uri)
                .map(|(uri, cid, record)| {
                    json!({
                        "uri": uri, "cid": cid, "record": record,
                        "author": {"did": "did:plc:me", "handle": HANDLE},
                        "likeCount": 4, "repostCount": 1, "replyCount": 2, "quoteCount": 1,
                        "indexedAt": "2026-11-27T10:00:00.000Z"
                    })
                })
                .collect();
            axum::Json(json!({"posts": posts})).into_response()
        }
        _ => xrpc_error(501, "MethodNotImplemented", "Method Not Implemented"),
    }
}

async fn fake_pds() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/xrpc/{method}", axum::routing::any(handle))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

fn calls(fake: &Shared, method: &str) -> Vec<Call> {
    let method = format!("com.atproto.{method}");
    fake.lock()
        .unwrap()
        .calls
        .iter()
        .filter(|c| c.method == method)
        .cloned()
        .collect()
}

fn temp_file(contents: &[u8]) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "clarion-bluesky-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

fn config(settings: Value) -> ChannelConfig {
    let mut config = json!({"name": "sky", "kind": "bluesky"});
    config
        .as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    serde_json::from_value(config).unwrap()
}

fn adapter_with(
    base: &str,
    password: &str,
    store: Arc<MemoryAdapterStore>,
) -> Arc<dyn ChannelAdapter> {
    let password_file = temp_file(format!("{password}\n").as_bytes());
    Factory
        .build(
            &config(json!({
                "identifier": HANDLE,
                "app_password": {"file": password_file},
                "service": format!("{base}/"),
                "timeout_secs": 5,
            })),
            &AdapterContext { state: store },
        )
        .unwrap()
}

fn adapter(base: &str) -> (Arc<dyn ChannelAdapter>, Arc<MemoryAdapterStore>) {
    let store = Arc::new(MemoryAdapterStore::default());
    (adapter_with(base, PASSWORD, store.clone()), store)
}

fn text_post(text: &str) -> OutboundPost {
    OutboundPost {
        text: text.into(),
        campaign: None,
        media: vec![],
    }
}

async fn publish(
    adapter: &dyn ChannelAdapter,
    post: &OutboundPost,
    key: &str,
    reply_to: Option<ReplyTo<'_>>,
) -> Result<PublishReceipt, PublishError> {
    adapter
        .publish(PublishRequest {
            post,
            idempotency_key: key,
            reply_to,
            post_id: 1,
            target_id: 2,
            scheduled_at_ms: 1_764_158_400_000,
            budget: std::time::Duration::from_secs(30),
        })
        .await
}

async fn stored(store: &MemoryAdapterStore, name: &str) -> Option<String> {
    store
        .load("sky", name)
        .await
        .unwrap()
        .map(|s| s.expose().to_owned())
}

#[tokio::test]
async fn a_plain_post_logs_in_once_and_creates_the_record_as_the_did() {
    let (base, fake) = fake_pds().await;
    let (adapter, store) = adapter(&base);
    let first = publish(adapter.as_ref(), &text_post("hello sky"), "k-1", None)
        .await
        .unwrap();
    publish(adapter.as_ref(), &text_post("again"), "k-2", None)
        .await
        .unwrap();

    let sessions = calls(&fake, "server.createSession");
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].json(),
        json!({"identifier": HANDLE, "password": PASSWORD})
    );
    let creates = calls(&fake, "repo.createRecord");
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0].auth.as_deref(), Some("Bearer access-1"));
    assert_eq!(creates[1].auth.as_deref(), Some("Bearer access-1"));
    let mut body = creates[0].json();
    let created_at = body["record"]
        .as_object_mut()
        .unwrap()
        .remove("createdAt")
        .unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created_at.as_str().unwrap()).is_ok(),
        "{created_at}"
    );
    let rkey = facets::record_key("k-1", SCHEDULED_MS, 0);
    assert_eq!(
        body,
        json!({
            "repo": DID,
            "collection": "app.bsky.feed.post",
            "rkey": rkey,
            "record": {"$type": "app.bsky.feed.post", "text": "hello sky"},
        })
    );
    assert_eq!(
        first,
        PublishReceipt {
            platform_post_id: Some(format!("at://{DID}/app.bsky.feed.post/{rkey} bafy-{rkey}")),
            url: Some(format!("https://bsky.app/profile/{DID}/post/{rkey}")),
        }
    );
    assert_eq!(
        stored(&store, "access_jwt").await.as_deref(),
        Some("access-1")
    );
    assert_eq!(
        stored(&store, "refresh_jwt").await.as_deref(),
        Some("refresh-1")
    );
    assert_eq!(stored(&store, "did").await.as_deref(), Some(DID));
}

#[tokio::test]
async fn facets_carry_utf8_byte_offsets_and_resolved_mentions() {
    let (base, fake) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    let text = "日本語 👋🏽 @bob.test @ghost.test #テスト https://example.com/ok.";
    publish(adapter.as_ref(), &text_post(text), "k-facets", None)
        .await
        .unwrap();

    let resolved: Vec<_> = calls(&fake, "identity.resolveHandle")
        .into_iter()
        .map(|c| c.query["handle"].clone())
        .collect();
    assert_eq!(resolved, vec!["bob.test", "ghost.test"]);
    let record = calls(&fake, "repo.createRecord")[0].json()["record"].clone();
    assert_eq!(
        record["facets"],
        json!([
            {"index": {"byteStart": 19, "byteEnd": 28},
             "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:bob"}]},
            {"index": {"byteStart": 41, "byteEnd": 51},
             "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "テスト"}]},
            {"index": {"byteStart": 52, "byteEnd": 74},
             "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/ok"}]},
        ])
    );
    let bytes = text.as_bytes();
    assert_eq!(&bytes[19..28], "@bob.test".as_bytes());
    assert_eq!(&bytes[41..51], "#テスト".as_bytes());
    assert_eq!(&bytes[52..74], "https://example.com/ok".as_bytes());
    assert_eq!(
        record["embed"],
        json!({"$type": "app.bsky.embed.external",
               "external": {"uri": "https://example.com/ok", "title": "example.com", "description": ""}})
    );
}

#[tokio::test]
async fn images_are_uploaded_as_blobs_and_embedded_with_alt_text() {
    let (base, fake) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    let png = b"\x89PNG\r\n\x1a\nfake image bytes".to_vec();
    let path = temp_file(&png);
    let post = OutboundPost {
        text: "look https://example.com".into(),
        campaign: None,
        media: vec![Media {
            path: path.clone(),
            alt: "a red square".into(),
            mime: "image/png".into(),
            bytes: png.len() as u64,
        }],
    };
    adapter.validate(&post).unwrap();
    publish(adapter.as_ref(), &post, "k-img", None)
        .await
        .unwrap();
    std::fs::remove_file(path).unwrap();

    let uploads = calls(&fake, "repo.uploadBlob");
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].body, png);
    assert_eq!(uploads[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(uploads[0].auth.as_deref(), Some("Bearer access-1"));
    let record = calls(&fake, "repo.createRecord")[0].json()["record"].clone();
    // An image embed replaces the link card.
    assert_eq!(
        record["embed"],
        json!({"$type": "app.bsky.embed.images", "images": [{
            "image": {"$type": "blob", "ref": {"$link": "bafkreiblob"}, "mimeType": "image/png", "size": png.len()},
            "alt": "a red square",
        }]})
    );
}

#[tokio::test]
async fn thread_parts_reply_to_the_root_and_the_previous_part() {
    let (base, fake) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    let one = publish(adapter.as_ref(), &text_post("1/3"), "t", None)
        .await
        .unwrap()
        .platform_post_id
        .unwrap();
    let two = publish(
        adapter.as_ref(),
        &text_post("2/3"),
        "t.2",
        Some(ReplyTo {
            root: &one,
            parent: &one,
        }),
    )
    .await
    .unwrap()
    .platform_post_id
    .unwrap();
    publish(
        adapter.as_ref(),
        &text_post("3/3"),
        "t.3",
        Some(ReplyTo {
            root: &one,
            parent: &two,
        }),
    )
    .await
    .unwrap();

    let (k1, k2) = (
        facets::record_key("t", SCHEDULED_MS, 0),
        facets::record_key("t.2", SCHEDULED_MS, 0),
    );
    let strong = |rkey: &str| json!({"uri": format!("at://{DID}/app.bsky.feed.post/{rkey}"), "cid": format!("bafy-{rkey}")});
    let creates = calls(&fake, "repo.createRecord");
    assert_eq!(creates[0].json()["record"].get("reply"), None);
    assert_eq!(
        creates[1].json()["record"]["reply"],
        json!({"root": strong(&k1), "parent": strong(&k1)})
    );
    assert_eq!(
        creates[2].json()["record"]["reply"],
        json!({"root": strong(&k1), "parent": strong(&k2)})
    );

    let bad = publish(
        adapter.as_ref(),
        &text_post("x"),
        "t.4",
        Some(ReplyTo {
            root: "12345",
            parent: "12345",
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(bad.class, ErrorClass::Permanent);
    assert_eq!(
        bad.message,
        "cannot reply to `12345`: expected \"<at-uri> <cid>\" as this adapter returns"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_new_pair_is_saved() {
    let (base, fake) = fake_pds().await;
    let (adapter, store) = adapter(&base);
    publish(adapter.as_ref(), &text_post("before"), "k-1", None)
        .await
        .unwrap();
    fake.lock().unwrap().valid_access = None; // access-1 expires

    publish(adapter.as_ref(), &text_post("after"), "k-2", None)
        .await
        .unwrap();

    let refreshes = calls(&fake, "server.refreshSession");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].auth.as_deref(), Some("Bearer refresh-1"));
    let auths: Vec<_> = calls(&fake, "repo.createRecord")
        .into_iter()
        .map(|c| c.auth.unwrap())
        .collect();
    assert_eq!(
        auths,
        vec!["Bearer access-1", "Bearer access-1", "Bearer access-2"]
    );
    assert_eq!(calls(&fake, "server.createSession").len(), 1);
    assert_eq!(
        stored(&store, "access_jwt").await.as_deref(),
        Some("access-2")
    );
    assert_eq!(
        stored(&store, "refresh_jwt").await.as_deref(),
        Some("refresh-2")
    );
}

#[tokio::test]
async fn a_dead_refresh_token_falls_back_to_one_login_then_auth_expired() {
    let (base, fake) = fake_pds().await;
    let store = Arc::new(MemoryAdapterStore::default());
    let adapter = adapter_with(&base, PASSWORD, store.clone());
    publish(adapter.as_ref(), &text_post("a"), "k-1", None)
        .await
        .unwrap();
    {
        let mut fake = fake.lock().unwrap();
        fake.valid_access = None;
        fake.valid_refresh = None;
    }
    publish(adapter.as_ref(), &text_post("b"), "k-2", None)
        .await
        .unwrap();
    assert_eq!(calls(&fake, "server.refreshSession").len(), 1);
    assert_eq!(calls(&fake, "server.createSession").len(), 2);
    assert_eq!(
        stored(&store, "access_jwt").await.as_deref(),
        Some("access-2")
    );

    // The app password was revoked: a fresh adapter cannot log in.
    let revoked = adapter_with(&base, "wrong-pass", Arc::new(MemoryAdapterStore::default()));
    let error = publish(revoked.as_ref(), &text_post("c"), "k-3", None)
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::AuthExpired);
    assert_eq!(error.status, Some(401));
    assert_eq!(
        error.message,
        "com.atproto.server.createSession: AuthenticationRequired: Invalid identifier or password"
    );
    assert_eq!(calls(&fake, "server.createSession").len(), 3);
}

#[tokio::test]
async fn a_persisted_session_is_reused_without_logging_in() {
    let (base, fake) = fake_pds().await;
    let store = Arc::new(MemoryAdapterStore::default());
    let first = adapter_with(&base, PASSWORD, store.clone());
    publish(first.as_ref(), &text_post("a"), "k-1", None)
        .await
        .unwrap();

    // A restart: a new adapter over the same store.
    let restarted = adapter_with(&base, PASSWORD, store.clone());
    publish(restarted.as_ref(), &text_post("b"), "k-2", None)
        .await
        .unwrap();
    assert_eq!(calls(&fake, "server.createSession").len(), 1);
    let creates = calls(&fake, "repo.createRecord");
    assert_eq!(creates[1].auth.as_deref(), Some("Bearer access-1"));
    assert_eq!(creates[1].json()["repo"], DID);

    // Tokens saved for another account are not used for this one.
    store
        .save(
            "sky",
            "session_for",
            &Secret::new("https://other.example bob.test"),
        )
        .await
        .unwrap();
    let other = adapter_with(&base, PASSWORD, store);
    publish(other.as_ref(), &text_post("c"), "k-3", None)
        .await
        .unwrap();
    assert_eq!(calls(&fake, "server.createSession").len(), 2);
}

#[tokio::test]
async fn a_resend_with_the_same_key_returns_the_first_post() {
    let (base, fake) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    let post = text_post("once only");
    let first = publish(adapter.as_ref(), &post, "k-dup", None)
        .await
        .unwrap();
    let again = publish(adapter.as_ref(), &post, "k-dup", None)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(fake.lock().unwrap().records.len(), 1);
    let lookups = calls(&fake, "repo.getRecord");
    assert_eq!(lookups.len(), 1);
    assert_eq!(
        lookups[0].query["rkey"],
        facets::record_key("k-dup", SCHEDULED_MS, 0)
    );
    assert_eq!(lookups[0].query["repo"], DID);
    assert_eq!(lookups[0].query["collection"], "app.bsky.feed.post");
}

#[tokio::test]
async fn a_server_error_without_a_stored_record_stays_transient() {
    let (base, fake) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    let error = publish(adapter.as_ref(), &text_post("server error"), "k-500", None)
        .await
        .unwrap_err();
    assert_eq!(
        (error.class, error.status, error.message.as_str()),
        (
            ErrorClass::Transient,
            Some(500),
            "com.atproto.repo.createRecord: InternalServerError: Internal Server Error"
        )
    );
    // The 500 might have been a taken rkey, so the adapter looked first.
    assert_eq!(calls(&fake, "repo.getRecord").len(), 1);
}

#[tokio::test]
async fn rate_limits_wait_until_the_reset() {
    let (base, _) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    let error = publish(adapter.as_ref(), &text_post("rate limit me"), "k", None)
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::RateLimited);
    assert_eq!(error.status, Some(429));
    assert_eq!(
        error.message,
        "com.atproto.repo.createRecord: RateLimitExceeded: Rate Limit Exceeded"
    );
    let wait = error.retry_after.unwrap();
    assert!(
        wait >= Duration::from_secs(118) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
}

#[tokio::test]
async fn invalid_requests_are_permanent_with_the_platform_message() {
    let (base, _) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    let error = publish(adapter.as_ref(), &text_post("invalid me"), "k", None)
        .await
        .unwrap_err();
    assert_eq!(
        (error.class, error.status, error.message.as_str()),
        (
            ErrorClass::Permanent,
            Some(400),
            "com.atproto.repo.createRecord: InvalidRequest: Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"
        )
    );
}

#[tokio::test]
async fn check_names_the_account() {
    let (base, fake) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    let check = adapter.check().await.unwrap();
    assert_eq!(check.detail, format!("@{HANDLE} ({DID})"));
    assert_eq!(
        calls(&fake, "server.getSession")[0].auth.as_deref(),
        Some("Bearer access-1")
    );
}

/// `channels check` runs as its own process each time: over the stored
/// session it neither logs in again (30 logins per 5 minutes) nor, with an
/// expired access token, does more than refresh it.
#[tokio::test]
async fn checks_reuse_and_refresh_the_stored_session_instead_of_logging_in() {
    let (base, fake) = fake_pds().await;
    let store = Arc::new(MemoryAdapterStore::default());
    for _ in 0..3 {
        let run = adapter_with(&base, PASSWORD, store.clone());
        run.check().await.unwrap();
    }
    assert_eq!(calls(&fake, "server.createSession").len(), 1);
    assert_eq!(calls(&fake, "server.getSession").len(), 3);

    fake.lock().unwrap().valid_access = None; // access-1 expires
    let run = adapter_with(&base, PASSWORD, store.clone());
    run.check().await.unwrap();
    assert_eq!(calls(&fake, "server.createSession").len(), 1);
    let refreshes = calls(&fake, "server.refreshSession");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].auth.as_deref(), Some("Bearer refresh-1"));
    assert_eq!(
        stored(&store, "access_jwt").await.as_deref(),
        Some("access-2")
    );
}

/// A read-only check posts nothing: an answer it cannot read is a failed
/// check, not an outcome to be unsure about.
#[tokio::test]
async fn an_unreadable_check_answer_is_a_failed_check() {
    let (base, fake) = fake_pds().await;
    fake.lock().unwrap().garbled_session = true;
    let (adapter, _) = adapter(&base);
    let error = adapter.check().await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient, "{error}");
    assert!(
        error
            .message
            .starts_with("com.atproto.server.getSession: unexpected answer"),
        "{error}"
    );
}

#[test]
fn validation_counts_graphemes_and_bytes() {
    let store = Arc::new(MemoryAdapterStore::default());
    let adapter = adapter_with("http://127.0.0.1:9", PASSWORD, store);
    assert_eq!(
        adapter
            .validate(&text_post(&"a".repeat(301)))
            .unwrap_err()
            .message,
        "text is 301 graphemes long; the limit is 300"
    );
    // 300 graphemes, but each family emoji is 18 bytes: 5,400 bytes.
    let family = "👨\u{200d}👩\u{200d}👧".repeat(300);
    assert_eq!(
        adapter.validate(&text_post(&family)).unwrap_err().message,
        "text is 5400 bytes long in UTF-8; the limit is 3000 bytes"
    );
    assert!(adapter.validate(&text_post(&"👋🏽".repeat(300))).is_ok());
    let image = |n: u64| Media {
        path: PathBuf::from(format!("/tmp/{n}.png")),
        alt: String::new(),
        mime: "image/png".into(),
        bytes: n,
    };
    let mut post = text_post("pics");
    post.media = (1..=5).map(image).collect();
    assert_eq!(
        adapter.validate(&post).unwrap_err().message,
        "5 attachments; the limit is 4"
    );
    post.media = vec![image(1_000_001)];
    assert_eq!(
        adapter.validate(&post).unwrap_err().message,
        "/tmp/1000001.png: 1000001 bytes; the limit is 1000000 bytes"
    );
}

#[test]
fn bad_settings_name_the_channel_and_the_field() {
    let build = |settings: Value| {
        Factory
            .build(&config(settings), &AdapterContext::default())
            .unwrap_err()
            .to_string()
    };
    let password = temp_file(b"pw");
    let typo =
        build(json!({"identifier": HANDLE, "app_password": {"file": password}, "password": "x"}));
    assert!(
        typo.starts_with("channel `sky` (kind bluesky): unknown field `password`"),
        "{typo}"
    );
    assert_eq!(
        build(json!({"identifier": " ", "app_password": {"file": password}})),
        "channel `sky` identifier: must be your handle (e.g. alice.bsky.social) or account email"
    );
    assert_eq!(
        build(
            json!({"identifier": HANDLE, "app_password": {"file": password}, "service": "ftp://pds"})
        ),
        "channel `sky` service: must be http or https"
    );
    assert_eq!(
        build(
            json!({"identifier": HANDLE, "app_password": {"file": password}, "langs": ["en", "de", "fr", "ja"]})
        ),
        "channel `sky` langs: give at most 3 non-empty language tags, e.g. [\"en\"]"
    );
}

#[test]
fn rate_limit_reset_is_read_as_epoch_seconds() {
    let mut headers = HeaderMap::new();
    let soon = chrono::Utc::now().timestamp() + 60;
    headers.insert("ratelimit-reset", soon.to_string().parse().unwrap());
    let wait = rate_limit_reset(&headers).unwrap();
    assert!(
        wait >= Duration::from_secs(59) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    headers.insert("ratelimit-reset", "1".parse().unwrap());
    assert_eq!(rate_limit_reset(&headers), Some(Duration::ZERO));
    assert_eq!(rate_limit_reset(&HeaderMap::new()), None);
}

#[test]
fn secrets_never_show_in_debug() {
    let store = Arc::new(MemoryAdapterStore::default());
    let adapter = adapter_with("http://127.0.0.1:9", PASSWORD, store);
    assert!(!format!("{adapter:?}").contains(PASSWORD));
}

/// Two different posts scheduled for the same millisecond may derive the
/// same record key. The second must not be mistaken for a resend of the
/// first: the adapter compares the stored record and moves to the next key.
#[tokio::test]
async fn a_record_key_taken_by_another_post_is_not_mistaken_for_a_resend() {
    let (base, fake) = fake_pds().await;
    let (adapter, _) = adapter(&base);
    // Another post already sits under the key this one derives first.
    let taken = facets::record_key("k-collide", SCHEDULED_MS, 0);
    fake.lock().unwrap().records.insert(
        taken.clone(),
        (
            format!("at://{DID}/app.bsky.feed.post/{taken}"),
            "bafy-other".into(),
            json!({"text": "someone else"}),
        ),
    );
    let receipt = publish(adapter.as_ref(), &text_post("mine"), "k-collide", None)
        .await
        .unwrap();
    let next = facets::record_key("k-collide", SCHEDULED_MS, 1);
    assert_eq!(
        receipt.platform_post_id,
        Some(format!("at://{DID}/app.bsky.feed.post/{next} bafy-{next}"))
    );
    assert_eq!(fake.lock().unwrap().records.len(), 2, "both posts exist");
    // A resend walks the same keys and finds its own record under the second.
    let again = publish(adapter.as_ref(), &text_post("mine"), "k-collide", None)
        .await
        .unwrap();
    assert_eq!(again, receipt);
    assert_eq!(fake.lock().unwrap().records.len(), 2);
}

#[tokio::test]
async fn post_counts_come_from_get_posts() {
    let (base, _fake) = fake_pds().await;
    let adapter = adapter_with(&base, PASSWORD, Arc::default());
    let post = OutboundPost {
        text: "counted".into(),
        campaign: None,
        media: vec![],
    };
    let receipt = publish(adapter.as_ref(), &post, "k-counts", None)
        .await
        .unwrap();
    let id = receipt.platform_post_id.unwrap();
    let counts = adapter.post_counts(&id).await.unwrap().unwrap();
    assert_eq!(
        (
            counts.likes,
            counts.reposts,
            counts.replies,
            counts.quotes,
            counts.views
        ),
        (Some(4), Some(1), Some(2), Some(1), None)
    );
    assert_eq!(counts.engagements(), 8);
    let gone = adapter
        .post_counts("at://did:plc:me/app.bsky.feed.post/3gone bafy-gone")
        .await
        .unwrap_err();
    assert_eq!(gone.class, ErrorClass::Permanent, "{gone}");
    let bogus = adapter.post_counts("12345").await.unwrap_err();
    assert_eq!(bogus.class, ErrorClass::Permanent, "{bogus}");
}
