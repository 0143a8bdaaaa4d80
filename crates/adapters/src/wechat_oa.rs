//! `wechat_oa`: publishes articles (图文) to a WeChat Official Account
//! (微信公众号) through the draft box and the publish API.
//!
//! ```toml
//! [[channels]]
//! name = "wechat"
//! kind = "wechat_oa"
//! appid = "wx0123456789abcdef"             # 设置与开发 → 基本配置 → AppID
//! secret = { env = "WECHAT_OA_SECRET" }    # AppSecret
//! # title = "{first_line}"                 # title template: {first_line}, {campaign}
//! # author = "Clarion"
//! # api_base = "https://api.weixin.qq.com"
//! # timeout_secs = 20
//! # poll_ms = 30000                        # between publish status checks (100 a day allowed)
//! ```
//!
//! One publish is four calls, each step recorded in the adapter store
//! (under the channel, per idempotency key) before the next, so a retry
//! resumes where the last attempt stopped and never submits twice:
//! 1. the post's first image as permanent material
//!    (`material/add_material?type=image`, multipart `media`): the cover;
//! 2. `draft/add` with one article: the title (the `title` template, or the
//!    post's first line), the post's Markdown as HTML, the cover's
//!    `thumb_media_id`;
//! 3. `freepublish/submit` with the draft's `media_id`: a `publish_id`,
//!    recorded (send and record run as one task, so a cancelled call cannot
//!    fall between them);
//! 4. `freepublish/get` polled within half the publish budget. Still
//!    publishing then is [`ErrorClass::Unfinished`]: the next attempt polls
//!    the same `publish_id` again. After [`MAX_PUBLISHING`] the attempt is
//!    `outcome_unknown` instead, for a person to look at the account.
//!
//! The access token comes from `cgi-bin/stable_token` and is kept in the
//! adapter store, shared by every process on the same database (WeChat
//! counts token calls per day), and fetched anew when less than 5 minutes
//! remain or when WeChat refuses it (40001, 42001, 40014: refreshed once,
//! the call repeated; a second refusal is rejected credentials).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, AdapterStore, ChannelAdapter, ChannelCheck, ChannelConfig,
    ConfigError, ErrorClass, Idempotency, LengthRule, LengthUnit, Markup, Media, MediaRule,
    OutboundPost, PublishError, PublishReceipt, PublishRequest, Secret, SecretRef, ValidationError,
    truncate_graphemes,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::group_robot as robot;
use crate::http::{classify_status, classify_transport, for_check};

#[cfg(test)]
mod tests;

const DEFAULT_BASE: &str = "https://api.weixin.qq.com";
/// `content` must be under 20,000 characters (and 1 MB).
const CONTENT_LIMIT: usize = 20_000;
/// Article titles are cut to this many characters.
const TITLE_LIMIT: usize = 64;
/// Permanent image material: bmp/png/jpeg/jpg/gif up to 10 MB.
const COVER_RULE: MediaRule = MediaRule {
    max_count: 1,
    max_bytes: 10 * 1024 * 1024,
    mime_types: &["image/png", "image/jpeg", "image/gif", "image/bmp"],
};
/// A token with less than this left is fetched anew.
const TOKEN_MARGIN_MS: i64 = 5 * 60 * 1000;
/// How long a submitted article may stay "publishing" before an attempt
/// stops resuming and reports the outcome unknown.
pub(crate) const MAX_PUBLISHING: Duration = Duration::from_secs(30 * 60);
/// Errcodes of a refused access token.
const TOKEN_ERRORS: [i64; 3] = [40001, 42001, 40014];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    appid: String,
    secret: SecretRef,
    title: Option<String>,
    author: Option<String>,
    api_base: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    #[serde(default = "default_poll")]
    poll_ms: u64,
}

fn default_timeout() -> f64 {
    20.0
}

/// `freepublish/get` may be called 100 times a day: one check per 30 s
/// spends at most 60 on one article within [`MAX_PUBLISHING`].
fn default_poll() -> u64 {
    30_000
}

/// A token and when it lapses, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    token: String,
    expires_at_ms: i64,
    appid: String,
}

/// What an attempt has done for one message, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    cover: Option<String>,
    draft: Option<String>,
    publish_id: Option<String>,
    submitted_at_ms: Option<i64>,
    /// When `freepublish/get` was last called, to pace it across attempts.
    #[serde(default)]
    polled_at_ms: Option<i64>,
}

/// The API client: cloned into the task that submits and records.
#[derive(Debug, Clone)]
struct Api {
    client: reqwest::Client,
    channel: String,
    base: Url,
    appid: String,
    secret: Secret,
    timeout: Duration,
    state: Arc<dyn AdapterStore>,
    /// The token in use, shared by clones.
    cached: Arc<tokio::sync::Mutex<Option<StoredToken>>>,
}

#[derive(Debug)]
pub struct WechatOaAdapter {
    api: Api,
    title: Option<String>,
    author: Option<String>,
    poll: Duration,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "wechat_oa"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let appid = s.appid.trim().to_owned();
        if appid.is_empty() || !appid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConfigError::new(format!(
                "{}: give the AppID (wx…) from 设置与开发 → 基本配置",
                what("appid")
            )));
        }
        let secret = s.secret.resolve(&what("secret"))?;
        let base = robot::base_url(s.api_base.as_deref(), DEFAULT_BASE, &what("api_base"))?;
        let timeout = robot::timeout(s.timeout_secs, &what("timeout_secs"))?;
        if !(1..=60_000).contains(&s.poll_ms) {
            return Err(ConfigError::new(format!(
                "{}: must be between 1 and 60000",
                what("poll_ms")
            )));
        }
        Ok(Arc::new(WechatOaAdapter {
            api: Api {
                client: crate::http_client(),
                channel: config.name.clone(),
                base,
                appid,
                secret,
                timeout,
                state: context.state.clone(),
                cached: Arc::default(),
            },
            title: s.title,
            author: s.author,
            poll: Duration::from_millis(s.poll_ms),
        }))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Until the next midnight in China (UTC+8), when daily quotas reset.
pub(crate) fn until_china_midnight(now: chrono::DateTime<chrono::Utc>) -> Duration {
    let china = chrono::FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| unreachable!());
    let local = now.with_timezone(&china);
    let next = (local.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_else(|| unreachable!());
    let next = next
        .and_local_timezone(china)
        .single()
        .unwrap_or_else(|| unreachable!());
    (next.with_timezone(&chrono::Utc) - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// An errcode as an error class, with the platform's words. `step` names
/// the call.
fn classify(code: i64, errmsg: &str, step: &str) -> PublishError {
    let msg = robot::short(errmsg);
    match code {
        45009 => PublishError::new(
            ErrorClass::RateLimited,
            format!(
                "WeChat errcode 45009 on {step}, the daily API quota is used up (it resets at \
                 midnight China time): {msg}"
            ),
        )
        .with_retry_after(Some(until_china_midnight(chrono::Utc::now()))),
        48001 => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "WeChat errcode 48001 on {step}, api unauthorized: this account may not use the \
                 API. Publishing needs a verified (微信认证) subscription or service account; \
                 personal and unverified accounts cannot call it: {msg}"
            ),
        ),
        40013 => PublishError::new(
            ErrorClass::AuthExpired,
            format!("WeChat errcode 40013, invalid `appid`: {msg}"),
        ),
        40125 | 40001 | 42001 | 40014 => PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "WeChat errcode {code} on {step}, credentials rejected: check `secret` (AppSecret, \
                 reset in 基本配置?) and `appid`: {msg}"
            ),
        ),
        40164 => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "WeChat errcode 40164, this server's IP is not on the account's IP allowlist \
                 (基本配置 → IP白名单): {msg}"
            ),
        ),
        -1 => PublishError::new(
            ErrorClass::Transient,
            format!("WeChat errcode -1 on {step}, system busy: {msg}"),
        ),
        _ => PublishError::new(
            ErrorClass::Permanent,
            format!("WeChat errcode {code} on {step}: {msg}"),
        ),
    }
}

impl Api {
    fn url(&self, path: &str, token: &Secret, extra: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("access_token", token.expose());
            for (k, v) in extra {
                query.append_pair(k, v);
            }
        }
        url
    }

    fn redacted(&self, mut error: PublishError, token: Option<&Secret>) -> PublishError {
        let mut secrets = vec![&self.secret];
        secrets.extend(token);
        error.message = robot::redact(error.message, &secrets);
        error
    }

    /// Sends and reads JSON. A non-2xx answer is classified by status.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, PublishError> {
        let response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(classify_transport)?;
        if !status.is_success() {
            return Err(classify_status(status, &headers, &body));
        }
        serde_json::from_str(&body).map_err(|_| {
            PublishError::new(
                ErrorClass::OutcomeUnknown,
                format!(
                    "unreadable answer from WeChat (HTTP {}): {}",
                    status.as_u16(),
                    robot::short(&body)
                ),
            )
        })
    }

    /// A token with more than 5 minutes left: this process's, else the
    /// store's (another process may have fetched it), else a new one.
    async fn token(&self) -> Result<Secret, PublishError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| fresh(t)) {
            return Ok(Secret::new(t.token.clone()));
        }
        if let Some(stored) = self.load_token().await.filter(fresh) {
            let token = Secret::new(stored.token.clone());
            *cached = Some(stored);
            return Ok(token);
        }
        let fetched = self.fetch_token(false).await?;
        let token = Secret::new(fetched.token.clone());
        *cached = Some(fetched);
        Ok(token)
    }

    /// After WeChat refused `stale`: a newer token from this process or
    /// the store, else a new one from WeChat.
    async fn refresh(&self, stale: &Secret) -> Result<Secret, PublishError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached
            .as_ref()
            .filter(|t| fresh(t) && t.token != stale.expose())
        {
            return Ok(Secret::new(t.token.clone()));
        }
        if let Some(stored) = self
            .load_token()
            .await
            .filter(|t| fresh(t) && t.token != stale.expose())
        {
            tracing::info!(channel = %self.channel, "another process fetched a new WeChat token; using it");
            let token = Secret::new(stored.token.clone());
            *cached = Some(stored);
            return Ok(token);
        }
        let mut fetched = self.fetch_token(false).await?;
        if fetched.token == stale.expose() {
            // The stable token is still the refused one: force a new one.
            fetched = self.fetch_token(true).await?;
        }
        let token = Secret::new(fetched.token.clone());
        *cached = Some(fetched);
        Ok(token)
    }

    async fn load_token(&self) -> Option<StoredToken> {
        match self.state.load(&self.channel, "access_token").await {
            Ok(Some(value)) => serde_json::from_str::<StoredToken>(value.expose())
                .ok()
                .filter(|t| t.appid == self.appid),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(channel = %self.channel, "cannot read the stored WeChat token: {e}");
                None
            }
        }
    }

    /// `POST /cgi-bin/stable_token`, saved to the store.
    async fn fetch_token(&self, force: bool) -> Result<StoredToken, PublishError> {
        let mut url = self.base.clone();
        url.set_path("/cgi-bin/stable_token");
        let mut body = json!({
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self.secret.expose(),
        });
        if force {
            body["force_refresh"] = json!(true);
        }
        let answer = self
            .send(self.client.post(url).json(&body))
            .await
            .map_err(|e| {
                // Nothing was posted: a token call can always be repeated.
                let mut e = for_check(self.redacted(e, None));
                e.message = format!("fetching the access token: {}", e.message);
                e
            })?;
        if let Some(code) = errcode(&answer) {
            let mut e = classify(code, errmsg(&answer), "stable_token");
            if code == 40001 {
                e.message = format!(
                    "WeChat errcode 40001 fetching the access token: `secret` (AppSecret) is \
                     wrong or was reset: {}",
                    robot::short(errmsg(&answer))
                );
            }
            return Err(self.redacted(e, None));
        }
        let token = answer["access_token"].as_str().unwrap_or_default();
        let expires_in = answer["expires_in"].as_i64().unwrap_or(7200);
        if token.is_empty() {
            return Err(PublishError::new(
                ErrorClass::Transient,
                "fetching the access token: the answer has no access_token",
            ));
        }
        let stored = StoredToken {
            token: token.to_owned(),
            expires_at_ms: now_ms() + expires_in * 1000,
            appid: self.appid.clone(),
        };
        let value = serde_json::to_string(&stored).unwrap_or_default();
        if let Err(e) = self
            .state
            .save(&self.channel, "access_token", &Secret::new(value))
            .await
        {
            tracing::warn!(channel = %self.channel, "cannot save the WeChat token: {e}");
        }
        tracing::info!(channel = %self.channel, "fetched a WeChat access token");
        Ok(stored)
    }

    /// Calls `path` with the token; on a refused token refreshes once and
    /// calls again. `step` names the call in errors.
    async fn call(
        &self,
        step: &str,
        build: impl Fn(&Secret) -> reqwest::RequestBuilder,
    ) -> Result<Value, PublishError> {
        let mut token = self.token().await?;
        for attempt in 0..2 {
            let answer = self
                .send(build(&token))
                .await
                .map_err(|e| self.redacted(e, Some(&token)))?;
            match errcode(&answer) {
                None => return Ok(answer),
                Some(code) if TOKEN_ERRORS.contains(&code) && attempt == 0 => {
                    tracing::info!(channel = %self.channel, "WeChat refused the access token (errcode {code}); refreshing");
                    token = self.refresh(&token).await?;
                }
                Some(code) => {
                    let e = classify(code, errmsg(&answer), step);
                    return Err(self.redacted(e, Some(&token)));
                }
            }
        }
        unreachable!("the second answer always returns")
    }

    fn progress_scope(&self) -> String {
        format!("{}/publish", self.channel)
    }

    async fn load_progress(&self, key: &str) -> Result<Progress, PublishError> {
        let value = self
            .state
            .load(&self.progress_scope(), key)
            .await
            .map_err(|e| {
                // Without the record a retry might submit twice.
                PublishError::new(ErrorClass::Transient, e.to_string())
            })?;
        Ok(value
            .and_then(|v| serde_json::from_str(v.expose()).ok())
            .unwrap_or_default())
    }

    async fn save_progress(&self, key: &str, progress: &Progress) -> Result<(), PublishError> {
        let value = Secret::new(serde_json::to_string(progress).unwrap_or_default());
        self.state
            .save(&self.progress_scope(), key, &value)
            .await
            .map_err(|e| PublishError::new(ErrorClass::Transient, e.to_string()))
    }

    /// `freepublish/submit`, and the `publish_id` recorded, as one task.
    async fn submit_once(
        &self,
        key: &str,
        mut progress: Progress,
    ) -> Result<Progress, PublishError> {
        let api = self.clone();
        let key = key.to_owned();
        let task = tokio::spawn(async move {
            let draft = progress.draft.clone().unwrap_or_default();
            let answer = api
                .call("freepublish/submit", |token| {
                    api.client
                        .post(api.url("/cgi-bin/freepublish/submit", token, &[]))
                        .json(&json!({ "media_id": draft }))
                })
                .await?;
            let id = id_of(&answer["publish_id"]).ok_or_else(|| {
                PublishError::new(
                    ErrorClass::OutcomeUnknown,
                    "freepublish/submit answered no publish_id: check the account's publish records",
                )
            })?;
            progress.publish_id = Some(id);
            progress.submitted_at_ms = Some(now_ms());
            api.save_progress(&key, &progress).await.map_err(|e| {
                PublishError::new(
                    ErrorClass::OutcomeUnknown,
                    format!(
                        "the article was submitted but the publish_id could not be recorded ({}); \
                         a retry could publish it twice",
                        e.message
                    ),
                )
            })?;
            Ok(progress)
        });
        task.await.unwrap_or_else(|e| {
            Err(PublishError::new(
                ErrorClass::OutcomeUnknown,
                format!("submitting the article stopped: {e}"),
            ))
        })
    }
}

/// The end of an attempt whose article is still publishing: resumable
/// ([`ErrorClass::Unfinished`]) until [`MAX_PUBLISHING`] after the submit,
/// then `outcome_unknown` for a person to look.
fn still_publishing(publish_id: &str, progress: &Progress, polls: usize) -> PublishError {
    let since = progress.submitted_at_ms.unwrap_or_else(now_ms);
    let waited = Duration::from_millis((now_ms() - since).max(0) as u64);
    if waited >= MAX_PUBLISHING {
        return PublishError::new(
            ErrorClass::OutcomeUnknown,
            format!(
                "WeChat publish {publish_id} is still publishing {} min after it was submitted: \
                 check 发表记录 in the account's backend",
                waited.as_secs() / 60
            ),
        );
    }
    PublishError::new(
        ErrorClass::Unfinished,
        format!(
            "WeChat publish {publish_id} submitted and still publishing ({polls} checks in this \
             attempt); the next attempt checks it again (it is not submitted twice)"
        ),
    )
}

fn fresh(t: &StoredToken) -> bool {
    t.expires_at_ms - now_ms() > TOKEN_MARGIN_MS
}

fn errcode(answer: &Value) -> Option<i64> {
    answer["errcode"].as_i64().filter(|c| *c != 0)
}

fn errmsg(answer: &Value) -> &str {
    answer["errmsg"].as_str().unwrap_or_default()
}

fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A step before the submit created nothing public (at worst an unused
/// material or draft): an unknown outcome there is safe to retry.
fn before_submit(mut e: PublishError) -> PublishError {
    if e.class == ErrorClass::OutcomeUnknown {
        e.class = ErrorClass::Transient;
    }
    e
}

impl WechatOaAdapter {
    fn title(&self, post: &OutboundPost) -> String {
        let plain = clarion_content::markdown_to_plain(&post.text);
        let first = plain
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        let title = match &self.title {
            None => first.to_owned(),
            Some(template) => template
                .replace("{first_line}", first)
                .replace("{campaign}", post.campaign.as_deref().unwrap_or("")),
        };
        truncate_graphemes(title.replace(['\r', '\n'], " ").trim(), TITLE_LIMIT)
    }

    fn content(post: &OutboundPost) -> String {
        clarion_content::markdown_to_html_blocks(&post.text)
    }

    async fn upload_cover(&self, media: &Media) -> Result<String, PublishError> {
        let api = &self.api;
        let shown = media.path.display();
        let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
            PublishError::new(ErrorClass::Permanent, format!("cannot read {shown}: {e}"))
        })?;
        let name = media
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("cover.jpg")
            .to_owned();
        let answer = api
            .call("material/add_material", |token| {
                let part = reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name(name.clone())
                    .mime_str(&media.mime)
                    .unwrap_or_else(|_| reqwest::multipart::Part::bytes(bytes.clone()));
                api.client
                    .post(api.url(
                        "/cgi-bin/material/add_material",
                        token,
                        &[("type", "image")],
                    ))
                    .multipart(reqwest::multipart::Form::new().part("media", part))
            })
            .await?;
        id_of(&answer["media_id"]).ok_or_else(|| {
            PublishError::new(
                ErrorClass::Transient,
                "material/add_material answered no media_id",
            )
        })
    }

    async fn add_draft(&self, post: &OutboundPost, cover: &str) -> Result<String, PublishError> {
        let api = &self.api;
        let mut article = json!({
            "title": self.title(post),
            "content": Self::content(post),
            "thumb_media_id": cover,
            "need_open_comment": 0,
        });
        if let Some(author) = &self.author {
            article["author"] = json!(author);
        }
        let body = json!({ "articles": [article] });
        let answer = api
            .call("draft/add", |token| {
                api.client
                    .post(api.url("/cgi-bin/draft/add", token, &[]))
                    .json(&body)
            })
            .await?;
        id_of(&answer["media_id"]).ok_or_else(|| {
            PublishError::new(ErrorClass::Transient, "draft/add answered no media_id")
        })
    }

    /// `freepublish/get`: `Ok(Some(receipt))` when published, `Ok(None)`
    /// while publishing.
    async fn status(&self, publish_id: &str) -> Result<Option<PublishReceipt>, PublishError> {
        let api = &self.api;
        let answer = api
            .call("freepublish/get", |token| {
                api.client
                    .post(api.url("/cgi-bin/freepublish/get", token, &[]))
                    .json(&json!({ "publish_id": publish_id }))
            })
            .await
            .map_err(before_submit)?;
        let status = answer["publish_status"].as_i64().unwrap_or(-1);
        let failed = |what: &str| {
            PublishError::new(
                ErrorClass::Permanent,
                format!(
                    "WeChat publish {publish_id} ended with publish_status {status}: {what} \
                     (fail_idx {})",
                    answer["fail_idx"]
                ),
            )
        };
        match status {
            0 => {
                let url = answer["article_detail"]["item"][0]["article_url"]
                    .as_str()
                    .map(str::to_owned);
                Ok(Some(PublishReceipt {
                    platform_post_id: id_of(&answer["article_id"])
                        .or_else(|| Some(publish_id.to_owned())),
                    url,
                }))
            }
            1 => Ok(None),
            2 => Err(failed("the originality check (原创校验) failed")),
            3 => Err(failed("publishing failed")),
            4 => Err(failed("the platform's review (平台审核) did not pass")),
            5 => Err(failed("published, then deleted")),
            6 => Err(failed("published, then banned (封禁)")),
            _ => Err(PublishError::new(
                ErrorClass::Transient,
                format!(
                    "freepublish/get: unexpected answer {}",
                    robot::short(&answer.to_string())
                ),
            )),
        }
    }
}

#[async_trait]
impl ChannelAdapter for WechatOaAdapter {
    fn kind(&self) -> &'static str {
        "wechat_oa"
    }

    /// The article body is limited as HTML (under 20,000 characters);
    /// [`Self::validate`] counts the HTML that is sent.
    fn length_rule(&self) -> LengthRule {
        LengthRule::new(CONTENT_LIMIT, LengthUnit::Chars)
    }

    fn markup(&self) -> Markup {
        Markup::Markdown
    }

    fn idempotency(&self) -> Idempotency {
        // Submits are not deduplicated by WeChat; each step is recorded,
        // but a submit whose answer was lost cannot be looked up.
        Idempotency::None
    }

    fn media_rule(&self) -> MediaRule {
        COVER_RULE
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.media_rule().check(&post.media)?;
        if post.media.is_empty() {
            return Err(ValidationError::new(
                "a WeChat Official Account article needs a cover image (thumb_media_id): attach \
                 one image to the post",
            ));
        }
        if self.title(post).is_empty() {
            return Err(ValidationError::new(
                "a WeChat article needs a title: the post's first line, or the channel's `title`",
            ));
        }
        let count = Self::content(post).chars().count();
        if count >= CONTENT_LIMIT {
            return Err(ValidationError::new(format!(
                "the article is {count} characters long as HTML; WeChat takes under \
                 {CONTENT_LIMIT}"
            )));
        }
        Ok(())
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let (started, limit) = (Instant::now(), request.budget / 2);
        let key = request.idempotency_key;
        let post = request.post;
        let api = &self.api;
        let mut progress = api.load_progress(key).await?;
        if progress.publish_id.is_none() {
            if progress.cover.is_none() {
                let media = post.media.first().ok_or_else(|| {
                    PublishError::new(
                        ErrorClass::Permanent,
                        "a WeChat article needs a cover image",
                    )
                })?;
                progress.cover = Some(self.upload_cover(media).await.map_err(before_submit)?);
                api.save_progress(key, &progress).await?;
            }
            if progress.draft.is_none() {
                let cover = progress.cover.clone().unwrap_or_default();
                progress.draft = Some(self.add_draft(post, &cover).await.map_err(before_submit)?);
                api.save_progress(key, &progress).await?;
            }
            progress = api.submit_once(key, progress).await?;
        }
        let publish_id = progress.publish_id.clone().unwrap_or_default();
        let mut polls = 0;
        loop {
            // At most one status check per `poll_ms`, across attempts too:
            // WeChat allows `freepublish/get` only 100 calls a day.
            let last = progress.polled_at_ms.unwrap_or(0);
            let wait = Duration::from_millis(
                (last + self.poll.as_millis() as i64 - now_ms()).max(0) as u64,
            );
            if started.elapsed() + wait >= limit {
                tokio::time::sleep(limit.saturating_sub(started.elapsed())).await;
                return Err(still_publishing(&publish_id, &progress, polls));
            }
            tokio::time::sleep(wait).await;
            let answer = self.status(&publish_id).await;
            polls += 1;
            progress.polled_at_ms = Some(now_ms());
            match answer {
                Ok(Some(receipt)) => return Ok(receipt),
                Ok(None) => {
                    // Only paces the next check: losing it costs nothing.
                    let _ = api.save_progress(key, &progress).await;
                }
                Err(e) if e.class == ErrorClass::Permanent => {
                    // Forget this publish_id: a manual retry submits the
                    // draft again.
                    progress.publish_id = None;
                    progress.submitted_at_ms = None;
                    let _ = api.save_progress(key, &progress).await;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        let api = &self.api;
        api.token().await.map_err(for_check)?;
        let quota = api
            .call("openapi/quota/get", |token| {
                api.client
                    .post(api.url("/cgi-bin/openapi/quota/get", token, &[]))
                    .json(&json!({ "cgi_path": "/cgi-bin/freepublish/submit" }))
            })
            .await;
        let detail = format!("appid {}: access token obtained", api.appid);
        match quota {
            Ok(answer) => {
                let q = &answer["quota"];
                Ok(ChannelCheck::ok(format!(
                    "{detail}; freepublish/submit used {} of {} today",
                    q["used"], q["daily_limit"]
                )))
            }
            Err(e) if e.message.contains("errcode 48001") => Err(e),
            Err(e) => Ok(ChannelCheck::warn(
                detail,
                format!(
                    "the publish quota could not be read, so the right to publish is verified by \
                     the first article: {}",
                    e.message
                ),
            )),
        }
    }
}
