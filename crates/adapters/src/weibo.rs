//! `weibo`: posts to Sina Weibo (新浪微博) through the third-party share API,
//! `POST https://api.weibo.com/2/statuses/share.json` (form fields
//! `access_token` and `status`; with a picture, multipart with `pic`).
//!
//! ```toml
//! [[channels]]
//! name = "weibo"
//! kind = "weibo"
//! access_token = { env = "WEIBO_ACCESS_TOKEN" }  # OAuth2 access token of the posting account
//! safe_url = "https://example.com/"              # a URL on the app's 安全域名 (safe domain)
//! # safe_domain = "example.com"                  # or only the domain (then nothing is appended)
//! # append_safe_url = true                       # add `safe_url` to posts that lack a safe link
//! # api_base = "https://api.weibo.com"
//! # timeout_secs = 20
//! # listen = true                                # capture comments and mentions (see `listen`)
//! # listen_interval_secs = 120                   # between polls (3 requests each)
//! # listen_mentions = true                       # also poll the two @mention timelines
//! ```
//!
//! What Weibo documents for `statuses/share`:
//! - the text must contain at least one URL under the app's registered safe
//!   domain (应用信息 → 安全域名). A post without one is refused when it is
//!   planned, saying so, unless `append_safe_url = true` (then `safe_url` is
//!   appended, and counted);
//! - the text is counted as Weibo counts it: a full-width (CJK) character is
//!   1, two half-width (ASCII) characters are 1, i.e.
//!   `fullwidth + ceil(halfwidth / 2)`, up to 2,000; timelines fold a post
//!   after about 140 (“全文” expands it);
//! - one picture, JPEG, GIF or PNG, under 5 MB.
//!
//! Nothing deduplicates a resend (a repeat is refused as 20019 only when the
//! text is identical and recent): a timeout or a 5xx answer is
//! `outcome_unknown`, never resent. `channels check` reads the token's
//! remaining life (`oauth2/get_token_info`): warns within 7 days, fails
//! when it has expired.
//!
//! Inbox replies: a post with `reply_to` is sent as a comment, not a
//! status. Answering a status (`parent == root`: a mention, or one of the
//! account's statuses) is `POST 2/comments/create.json` (`id`, `comment`);
//! answering a comment is `POST 2/comments/reply.json` (`cid` = the comment,
//! `id` = the status it is under). The receipt id is the new comment's id,
//! the form the listener gives comments. A comment needs no safe link but
//! takes at most 140 (Weibo-counted) characters and no picture: anything
//! else is refused when the reply is planned (`validate_reply`), saying why,
//! and again at send time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, ChannelAdapter, ChannelCheck, ChannelConfig, ConfigError,
    ErrorClass, Idempotency, LengthRule, LengthUnit, Listener, Markup, MediaRule, OutboundPost,
    PublishError, PublishReceipt, PublishRequest, RateWindow, ReplyTo, Secret, SecretRef,
    ValidationError,
};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::group_robot::{self as robot, Reply};
use crate::http::{classify_status, classify_transport, for_check};

mod listen;
#[cfg(test)]
mod tests;

const DEFAULT_BASE: &str = "https://api.weibo.com";
/// Weibo's limit, in its own units (see [`weibo_count`]).
const TEXT_LIMIT: usize = 2000;
/// `pic`: JPEG, GIF or PNG, under 5 MB.
const PIC_RULE: MediaRule = MediaRule {
    max_count: 1,
    max_bytes: 5 * 1024 * 1024 - 1,
    mime_types: &["image/jpeg", "image/gif", "image/png"],
};
/// Weibo's per-user posting frequency for an ordinary app is counted per
/// hour (接口访问权限说明); pace well inside it.
const WINDOW: RateWindow = RateWindow {
    max: 30,
    per: Duration::from_secs(60 * 60),
};
/// How long 10023/10024 (user/IP hourly limits) pause the channel.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60 * 60);
/// A comment (`comments/create`, `comments/reply`): 140 Chinese characters,
/// counted Weibo's way.
const COMMENT_LIMIT: usize = 140;

/// The text of a reply, which Weibo takes as a comment, or why it cannot be one.
fn comment_text(post: &OutboundPost) -> Result<&str, String> {
    if !post.media.is_empty() {
        return Err(
            "a Weibo reply is a comment, and the comments API takes no picture: \
             remove the attachment"
                .to_owned(),
        );
    }
    let text = post.text.trim();
    if text.is_empty() {
        return Err("the reply is empty".to_owned());
    }
    let count = weibo_count(text);
    if count > COMMENT_LIMIT {
        return Err(format!(
            "a Weibo reply is a comment, limited to {COMMENT_LIMIT} characters as Weibo \
             counts them (two ASCII characters 1); this one is {count}"
        ));
    }
    Ok(text)
}
/// `channels check` warns when the token lapses within this.
const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 60 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    access_token: SecretRef,
    safe_url: Option<String>,
    safe_domain: Option<String>,
    #[serde(default)]
    append_safe_url: bool,
    api_base: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    /// Seconds between two polls of the listener (listening only).
    #[serde(default = "default_listen_interval")]
    listen_interval_secs: f64,
    /// Whether the listener also polls the @mention timelines.
    #[serde(default = "default_true")]
    listen_mentions: bool,
}

fn default_timeout() -> f64 {
    20.0
}

/// Three requests a poll every two minutes is 90 an hour, inside the
/// hourly per-user limit of an ordinary app together with posting.
fn default_listen_interval() -> f64 {
    120.0
}

fn default_true() -> bool {
    true
}

#[derive(Debug)]
pub struct WeiboAdapter {
    client: reqwest::Client,
    base: Url,
    token: Secret,
    timeout: Duration,
    /// The safe domain (lowercase); links to it or a subdomain count.
    safe_domain: String,
    /// Appended to a post without a safe link, when configured so.
    append: Option<String>,
    /// Between two polls (the listener's).
    listen_interval: Duration,
    /// Whether the listener polls the mention timelines too.
    listen_mentions: bool,
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "weibo"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        Ok(Arc::new(configure(config)?))
    }

    fn build_listener(
        &self,
        config: &ChannelConfig,
        _context: &AdapterContext,
    ) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
        Ok(Some(listen::listener(configure(config)?)))
    }
}

/// Checks the settings and builds the adapter (the listener builds on it).
fn configure(config: &ChannelConfig) -> Result<WeiboAdapter, ConfigError> {
    let s: Settings = config.settings()?;
    let what = |field: &str| format!("channel `{}` {field}", config.name);
    let token = s.access_token.resolve(&what("access_token"))?;
    let base = robot::base_url(s.api_base.as_deref(), DEFAULT_BASE, &what("api_base"))?;
    let timeout = robot::timeout(s.timeout_secs, &what("timeout_secs"))?;
    let safe_url = match &s.safe_url {
        Some(text) => {
            let url = Url::parse(text.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    ConfigError::new(format!(
                        "{}: `{text}` is not an http(s) URL",
                        what("safe_url")
                    ))
                })?;
            Some(url)
        }
        None => None,
    };
    let safe_domain = match (&s.safe_domain, &safe_url) {
        (Some(domain), _) => domain.trim().trim_start_matches('.').to_ascii_lowercase(),
        (None, Some(url)) => url.host_str().unwrap_or_default().to_ascii_lowercase(),
        (None, None) => {
            return Err(ConfigError::new(format!(
                "{}: Weibo only accepts a shared post that links to the app's safe domain \
                 (应用信息 → 安全域名); set `safe_url` (a URL on it) or `safe_domain`",
                what("safe_url")
            )));
        }
    };
    if safe_domain.is_empty() || safe_domain.contains(['/', ' ', ':']) {
        return Err(ConfigError::new(format!(
            "{}: give a host name such as example.com",
            what("safe_domain")
        )));
    }
    if let Some(url) = &safe_url
        && !on_domain(url.host_str().unwrap_or_default(), &safe_domain)
    {
        return Err(ConfigError::new(format!(
            "{}: {url} is not on safe_domain {safe_domain}",
            what("safe_url")
        )));
    }
    let append = match (s.append_safe_url, &s.safe_url) {
        (true, None) => {
            return Err(ConfigError::new(format!(
                "{}: needs `safe_url`, the URL to append",
                what("append_safe_url")
            )));
        }
        (true, Some(url)) => Some(url.trim().to_owned()),
        (false, _) => None,
    };
    if !(s.listen_interval_secs >= 10.0 && s.listen_interval_secs <= 86_400.0) {
        return Err(ConfigError::new(format!(
            "{}: must be between 10 and 86400 seconds",
            what("listen_interval_secs")
        )));
    }
    Ok(WeiboAdapter {
        client: crate::http_client(),
        base,
        token,
        timeout,
        safe_domain,
        append,
        listen_interval: Duration::from_secs_f64(s.listen_interval_secs),
        listen_mentions: s.listen_mentions,
    })
}

/// Whether `host` is `domain` or one of its subdomains.
fn on_domain(host: &str, domain: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// Weibo's count: a half-width (ASCII) character weighs a half, anything
/// else 1, rounded up: `fullwidth + ceil(halfwidth / 2)`.
pub(crate) fn weibo_count(text: &str) -> usize {
    let half = text.chars().filter(char::is_ascii).count();
    let full = text.chars().count() - half;
    full + half.div_ceil(2)
}

impl WeiboAdapter {
    /// The text as sent: the post, with the safe URL appended when it lacks
    /// a safe link and the config says so.
    fn status_text(&self, text: &str) -> Result<String, ValidationError> {
        let text = text.trim();
        if self.has_safe_link(text) {
            return Ok(text.to_owned());
        }
        match &self.append {
            Some(url) if text.is_empty() => Ok(url.clone()),
            Some(url) => Ok(format!("{text} {url}")),
            None => Err(ValidationError::new(format!(
                "Weibo's share API only accepts a post containing a link to the app's safe domain \
                 ({}): add one to the post, or set `append_safe_url = true` with `safe_url`",
                self.safe_domain
            ))),
        }
    }

    fn has_safe_link(&self, text: &str) -> bool {
        text.split(|c: char| c.is_whitespace() || ('\u{3000}'..='\u{303F}').contains(&c))
            .filter_map(|word| {
                let start = word.find("http://").or_else(|| word.find("https://"))?;
                Url::parse(word[start..].trim_end_matches([')', ']', '>', ',', '.', '"', '\'']))
                    .ok()
            })
            .any(|url| on_domain(url.host_str().unwrap_or_default(), &self.safe_domain))
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, PublishError> {
        let response = request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.redacted(classify_transport(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| self.redacted(classify_transport(e)))?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// The id of what a create call made (a status or a comment): `idstr`,
    /// else `id`. An error answer is classified.
    fn created_id(&self, reply: &Reply) -> Result<Option<String>, PublishError> {
        if !reply.status.is_success() {
            return Err(self.redacted(failure(reply)));
        }
        #[derive(Deserialize)]
        struct Created {
            idstr: Option<String>,
            id: Option<serde_json::Value>,
            error_code: Option<i64>,
        }
        match serde_json::from_str::<Created>(&reply.body) {
            Ok(Created {
                error_code: Some(_),
                ..
            }) => Err(self.redacted(failure(reply))),
            Ok(created) => Ok(created.idstr.or_else(|| {
                created.id.map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
            })),
            Err(_) => Err(self.redacted(robot::unreadable("Weibo", reply))),
        }
    }

    /// An inbox reply: a comment on the status `to.root`, answering the
    /// comment `to.parent` unless that is the status itself.
    async fn reply(
        &self,
        post: &OutboundPost,
        to: ReplyTo<'_>,
    ) -> Result<PublishReceipt, PublishError> {
        let refuse = |why: String| Err(PublishError::new(ErrorClass::Permanent, why));
        let numeric = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        if !numeric(to.root) || !numeric(to.parent) {
            return refuse(format!(
                "cannot reply on Weibo to `{}` under `{}`: not Weibo status or comment ids",
                to.parent, to.root
            ));
        }
        let text = match comment_text(post) {
            Ok(text) => text,
            Err(why) => return refuse(why),
        };
        let builder = if to.parent == to.root {
            self.client
                .post(self.url("/2/comments/create.json"))
                .form(&[
                    ("access_token", self.token.expose()),
                    ("id", to.root),
                    ("comment", text),
                ])
        } else {
            self.client.post(self.url("/2/comments/reply.json")).form(&[
                ("access_token", self.token.expose()),
                ("cid", to.parent),
                ("id", to.root),
                ("comment", text),
            ])
        };
        let reply = self.send(builder).await?;
        let id = self.created_id(&reply)?;
        Ok(PublishReceipt {
            platform_post_id: id,
            // Weibo has no page of its own for a comment: its status's.
            url: Some(format!("https://m.weibo.cn/status/{}", to.root)),
        })
    }

    fn redacted(&self, mut error: PublishError) -> PublishError {
        error.message = robot::redact(error.message, &[&self.token]);
        error
    }
}

/// Weibo's error JSON: `{"error": "...", "error_code": 21327, "request": "..."}`.
#[derive(Debug, Deserialize)]
struct WeiboError {
    error_code: i64,
    #[serde(default)]
    error: String,
}

/// An answer that is not a success, classified.
fn failure(reply: &Reply) -> PublishError {
    let status = reply.status.as_u16();
    if let Ok(e) = serde_json::from_str::<WeiboError>(&reply.body) {
        let mut error = classify(e.error_code, &e.error).with_status(status);
        if error.class == ErrorClass::RateLimited
            && let Some(wait) = crate::http::retry_after(&reply.headers)
        {
            error.retry_after = Some(wait);
        }
        return error;
    }
    let mut error = classify_status(reply.status, &reply.headers, &reply.body);
    if error.class == ErrorClass::RateLimited && error.retry_after.is_none() {
        error.retry_after = Some(RATE_LIMIT_WAIT);
    }
    if reply.status.is_server_error() {
        error.class = ErrorClass::OutcomeUnknown;
        error.message = format!(
            "{}; Weibo may have posted before failing, and a resend could post twice",
            error.message
        );
    }
    error
}

/// A Weibo `error_code` as an error class, with the platform's words.
fn classify(code: i64, error: &str) -> PublishError {
    let msg = robot::short(error);
    match code {
        10023 | 10024 => PublishError::new(
            ErrorClass::RateLimited,
            format!(
                "Weibo error_code {code}, {} request limit reached (counted per hour): {msg}",
                if code == 10023 { "user" } else { "IP" }
            ),
        )
        .with_retry_after(Some(RATE_LIMIT_WAIT)),
        21327 | 21332 | 21314..=21319 | 21301 | 21501 => PublishError::new(
            ErrorClass::AuthExpired,
            format!(
                "Weibo error_code {code}, the access token was rejected{}: renew `access_token` \
                 (OAuth2 authorization of the posting account): {msg}",
                if code == 21327 { " (expired)" } else { "" }
            ),
        ),
        20019 => PublishError::new(
            ErrorClass::Permanent,
            format!(
                "Weibo error_code 20019, repeated content (the same text was posted recently): {msg}"
            ),
        ),
        20012 => PublishError::new(
            ErrorClass::Permanent,
            format!("Weibo error_code 20012, text too long: {msg}"),
        ),
        _ => PublishError::new(
            ErrorClass::Permanent,
            format!("Weibo error_code {code}: {msg}"),
        ),
    }
}

#[async_trait]
impl ChannelAdapter for WeiboAdapter {
    fn kind(&self) -> &'static str {
        "weibo"
    }

    /// Weibo counts half-width characters as a half, a unit [`LengthRule`]
    /// does not have: as characters, no text over the limit can meet it
    /// (Weibo's count never exceeds the character count), and
    /// [`Self::validate`] counts Weibo's way.
    fn length_rule(&self) -> LengthRule {
        LengthRule::new(TEXT_LIMIT, LengthUnit::Chars)
    }

    fn markup(&self) -> Markup {
        Markup::Plain
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::None
    }

    fn media_rule(&self) -> MediaRule {
        PIC_RULE
    }

    fn rate_window(&self) -> Option<RateWindow> {
        Some(WINDOW)
    }

    fn validate(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        self.media_rule().check(&post.media)?;
        let text = self.status_text(&post.text)?;
        let count = weibo_count(&text);
        if count > TEXT_LIMIT {
            return Err(ValidationError::new(format!(
                "text is {count} long as Weibo counts it (a Chinese character 1, two ASCII \
                 characters 1{}); the limit is {TEXT_LIMIT}",
                if self.append.is_some() {
                    ", the appended safe URL included"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }

    /// A reply is a comment: no safe link needed, 140 units, no picture.
    fn validate_reply(&self, post: &OutboundPost) -> Result<(), ValidationError> {
        comment_text(post).map(|_| ()).map_err(ValidationError::new)
    }

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        if let Some(to) = request.reply_to {
            return self.reply(request.post, to).await;
        }
        let text = self
            .status_text(&request.post.text)
            .map_err(|e| PublishError::new(ErrorClass::Permanent, e.message))?;
        let builder = self.client.post(self.url("/2/statuses/share.json"));
        let builder = match request.post.media.first() {
            None => builder.form(&[
                ("access_token", self.token.expose()),
                ("status", text.as_str()),
            ]),
            Some(media) => {
                let shown = media.path.display();
                let bytes = tokio::fs::read(&media.path).await.map_err(|e| {
                    PublishError::new(ErrorClass::Permanent, format!("cannot read {shown}: {e}"))
                })?;
                let name = media
                    .path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("pic")
                    .to_owned();
                let part = reqwest::multipart::Part::bytes(bytes)
                    .file_name(name)
                    .mime_str(&media.mime)
                    .map_err(|_| {
                        PublishError::new(
                            ErrorClass::Permanent,
                            format!("{shown}: `{}` is not a MIME type", media.mime),
                        )
                    })?;
                builder.multipart(
                    reqwest::multipart::Form::new()
                        .text("access_token", self.token.expose().to_owned())
                        .text("status", text)
                        .part("pic", part),
                )
            }
        };
        let reply = self.send(builder).await?;
        let id = self.created_id(&reply)?;
        Ok(PublishReceipt {
            url: id
                .as_ref()
                .map(|id| format!("https://m.weibo.cn/status/{id}")),
            platform_post_id: id,
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        let builder = self
            .client
            .post(self.url("/oauth2/get_token_info"))
            .form(&[("access_token", self.token.expose())]);
        let reply = self.send(builder).await.map_err(for_check)?;
        if !reply.status.is_success() {
            return Err(for_check(self.redacted(failure(&reply))));
        }
        #[derive(Deserialize)]
        struct TokenInfo {
            uid: Option<serde_json::Value>,
            expire_in: Option<i64>,
            error_code: Option<i64>,
        }
        let info: TokenInfo = serde_json::from_str(&reply.body)
            .map_err(|_| for_check(robot::unreadable("Weibo", &reply)))?;
        if info.error_code.is_some() {
            return Err(for_check(self.redacted(failure(&reply))));
        }
        let uid = match info.uid {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => "?".to_owned(),
        };
        let Some(expire_in) = info.expire_in else {
            return Err(for_check(robot::unreadable("Weibo", &reply)));
        };
        if expire_in <= 0 {
            return Err(PublishError::new(
                ErrorClass::AuthExpired,
                format!("the access token of Weibo user {uid} has expired: renew `access_token`"),
            )
            .with_status(StatusCode::OK.as_u16()));
        }
        let left = Duration::from_secs(expire_in as u64);
        let detail = format!(
            "Weibo user {uid}; token valid for {}; safe domain {}",
            human(left),
            self.safe_domain
        );
        if left < EXPIRY_WARNING {
            return Ok(ChannelCheck::warn(
                detail,
                "the access token expires within 7 days: renew `access_token` (authorize the app \
                 again) before it lapses",
            ));
        }
        Ok(ChannelCheck::ok(detail))
    }
}

/// `3 days 4 h` / `5 h 10 min` / `42 min`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if days > 0 {
        format!("{days} days {hours} h")
    } else if hours > 0 {
        format!("{hours} h {mins} min")
    } else {
        format!("{mins} min")
    }
}
