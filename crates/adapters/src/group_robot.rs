//! What the three work-chat group robots share: the `wecom`, `feishu` and
//! `dingtalk` adapters each POST one JSON message to a webhook whose URL
//! holds the credential, read a `{"errcode"|"code": 0}` answer, and render
//! the same Markdown source into their platform's dialect.
//!
//! Rendering starts from `clarion_content`'s one Markdown converter: its chat
//! HTML (`<b>`, `<i>`, `<s>`, `<code>`, `<pre>`, `<a href>`, `<blockquote>`,
//! `&<>` escaped, links already checked against the one scheme allowlist)
//! is read back into [`Line`]s of styled [`Run`]s, which each adapter turns
//! into its dialect: Markdown marks ([`render`]) or Feishu rich-text
//! elements. Raw HTML in the source stays text: a `<` that could open a
//! platform tag (`<font>`, `<@userid>`, `<at user_id="all">`) gets a zero
//! width space after it ([`neutralize`]), so a post can never mention the
//! whole group or restyle itself unless the channel's config says so.

use std::time::Duration;

use clarion_core::{ConfigError, ErrorClass, PublishError, Secret};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use unicode_segmentation::UnicodeSegmentation;

use crate::http::{classify_status, classify_transport};

/// Longest platform message kept on an attempt.
const MAX_MESSAGE: usize = 500;

/// Inline marks of a run of text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub bold: bool,
    pub italic: bool,
    pub strike: bool,
    /// Inline code, or a line of a code block.
    pub code: bool,
}

/// Text with one set of marks, possibly a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub text: String,
    pub marks: Marks,
    /// The link target (already on the scheme allowlist).
    pub href: Option<String>,
}

/// One line of the message. List markers and indentation are in the text;
/// `quote` is how many block quotes it is inside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Line {
    pub quote: usize,
    pub runs: Vec<Run>,
}

impl Line {
    pub fn is_blank(&self) -> bool {
        self.runs.iter().all(|r| r.text.trim().is_empty())
    }
}

/// The Markdown source as lines of styled runs.
pub(crate) fn lines(markdown: &str) -> Vec<Line> {
    let html = clarion_content::markdown_to_html(markdown);
    let mut builder = Builder::default();
    let mut rest = html.as_str();
    // The converter escapes every `<` of the text, so each one opens a tag.
    while let Some(at) = rest.find('<') {
        builder.text(&unescape(&rest[..at]));
        let tail = &rest[at..];
        let Some(end) = tail.find('>') else {
            rest = tail;
            break;
        };
        builder.tag(&tail[1..end]);
        rest = &tail[end + 1..];
    }
    builder.text(&unescape(rest));
    builder.finish()
}

#[derive(Default)]
struct Builder {
    lines: Vec<Line>,
    line: Line,
    bold: usize,
    italic: usize,
    strike: usize,
    code: usize,
    pre: bool,
    quote: usize,
    /// Open links; `None` for an `<a>` without a readable target.
    links: Vec<Option<String>>,
}

impl Builder {
    fn tag(&mut self, tag: &str) {
        let (closing, body) = match tag.strip_prefix('/') {
            Some(body) => (true, body),
            None => (false, tag),
        };
        let step = |n: &mut usize| {
            if closing {
                *n = n.saturating_sub(1);
            } else {
                *n += 1;
            }
        };
        match body.split_whitespace().next().unwrap_or_default() {
            "b" => step(&mut self.bold),
            "i" => step(&mut self.italic),
            "s" => step(&mut self.strike),
            "code" => step(&mut self.code),
            "pre" => self.pre = !closing,
            "blockquote" => {
                step(&mut self.quote);
                if self.line.runs.is_empty() {
                    self.line.quote = self.quote;
                }
            }
            "a" if closing => {
                self.links.pop();
            }
            "a" => self.links.push(href(body)),
            // Not something the converter writes: keep it as text.
            _ => self.text(&format!("<{}>", unescape(tag))),
        }
    }

    fn text(&mut self, text: &str) {
        for (i, piece) in text.split('\n').enumerate() {
            if i > 0 {
                let next = Line {
                    quote: self.quote,
                    runs: Vec::new(),
                };
                self.lines.push(std::mem::replace(&mut self.line, next));
            }
            if piece.is_empty() {
                continue;
            }
            let marks = Marks {
                bold: self.bold > 0,
                italic: self.italic > 0,
                strike: self.strike > 0,
                code: self.code > 0 || self.pre,
            };
            let href = self.links.last().cloned().flatten();
            match self.line.runs.last_mut() {
                Some(last) if last.marks == marks && last.href == href => last.text.push_str(piece),
                _ => self.line.runs.push(Run {
                    text: piece.to_owned(),
                    marks,
                    href,
                }),
            }
        }
    }

    fn finish(mut self) -> Vec<Line> {
        self.lines.push(self.line);
        while self.lines.last().is_some_and(Line::is_blank) {
            self.lines.pop();
        }
        self.lines
    }
}

/// The `href` of an `a` tag, as the converter writes it.
fn href(tag: &str) -> Option<String> {
    let start = tag.find("href=\"")? + "href=\"".len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

/// Undoes the converter's escaping (`&amp;`, `&lt;`, `&gt;`, `&quot;`).
fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Puts a zero-width space after each `<` that could open a tag (a letter,
/// `@`, `/` or `!` follows), so platforms that read tags in message text
/// (`<font>`, `<@userid>`, `<at user_id="all">`) show it as written.
pub(crate) fn neutralize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '<'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '@' | '/' | '!'))
        {
            out.push('\u{200B}');
        }
    }
    out
}

/// The Markdown source as plain text (links as `label (url)`), neutralized.
pub(crate) fn plain(markdown: &str) -> String {
    neutralize(&clarion_content::markdown_to_plain(markdown))
}

/// Which Markdown marks a platform renders. Bold (`**`), links, block
/// quotes (`> `) and headings every one of them does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// `*italic*`.
    pub italic: bool,
    /// `~~struck~~`.
    pub strike: bool,
    /// `` `code` ``.
    pub code: bool,
    /// A single newline only breaks the line when the line ends in two
    /// spaces (DingTalk).
    pub hard_breaks: bool,
}

/// Lines in a platform's Markdown dialect. Marks it lacks are dropped (the
/// text stays); text is [`neutralize`]d.
pub(crate) fn render(lines: &[Line], dialect: Dialect) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            if dialect.hard_breaks && !lines[i - 1].is_blank() && !line.is_blank() {
                out.push_str("  ");
            }
            out.push('\n');
        }
        for _ in 0..line.quote {
            out.push_str("> ");
        }
        let mut runs = line.runs.as_slice();
        while let Some(first) = runs.first() {
            let same = runs.iter().take_while(|r| r.href == first.href).count();
            let (group, rest) = runs.split_at(same);
            match &first.href {
                Some(href) => {
                    out.push('[');
                    for run in group {
                        let text = run.text.replace('[', "\\[").replace(']', "\\]");
                        out.push_str(&marked(&text, run.marks, dialect));
                    }
                    out.push_str("](");
                    out.push_str(&link_target(href));
                    out.push(')');
                }
                None => {
                    for run in group {
                        out.push_str(&marked(&run.text, run.marks, dialect));
                    }
                }
            }
            runs = rest;
        }
    }
    out
}

/// `text` with the marks the dialect has, outside its leading and trailing
/// spaces (`** a **` is not bold in Markdown).
fn marked(text: &str, marks: Marks, dialect: Dialect) -> String {
    let text = neutralize(text);
    let core = text.trim();
    if core.is_empty() {
        return text;
    }
    let start = text.len() - text.trim_start().len();
    let end = start + core.len();
    let mut open = String::new();
    if marks.bold {
        open.push_str("**");
    }
    if marks.italic && dialect.italic {
        open.push('*');
    }
    if marks.strike && dialect.strike {
        open.push_str("~~");
    }
    if marks.code && dialect.code && !core.contains('`') {
        open.push('`');
    }
    let close: String = open.chars().rev().collect();
    format!("{}{open}{core}{close}{}", &text[..start], &text[end..])
}

/// A link target that cannot end the `(...)` early.
fn link_target(href: &str) -> String {
    href.replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
}

/// The first link's target.
pub(crate) fn first_link(lines: &[Line]) -> Option<String> {
    lines
        .iter()
        .flat_map(|l| &l.runs)
        .find_map(|r| r.href.clone())
}

/// The first link whose target names an image file (`.png`, `.jpg`, ...),
/// for link cards with a picture.
pub(crate) fn first_image_link(lines: &[Line]) -> Option<String> {
    lines
        .iter()
        .flat_map(|l| &l.runs)
        .filter_map(|r| r.href.as_deref())
        .find(|href| {
            let path = href.split(['?', '#']).next().unwrap_or_default();
            let path = path.to_ascii_lowercase();
            [".png", ".jpg", ".jpeg", ".gif", ".webp"]
                .iter()
                .any(|ext| path.ends_with(ext))
        })
        .map(str::to_owned)
}

/// The first non-blank line of plain text (a title), and the rest.
pub(crate) fn title_and_rest(plain: &str) -> (String, String) {
    let text = plain.trim_start();
    let (title, rest) = text.split_once('\n').unwrap_or((text, ""));
    (title.trim().to_owned(), rest.trim().to_owned())
}

/// `text` cut to at most `max` bytes of UTF-8, ending in `…` when cut, never
/// inside a character or grapheme.
pub(crate) fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let budget = max.saturating_sub('…'.len_utf8());
    let mut out = String::new();
    for g in text.graphemes(true) {
        if out.len() + g.len() > budget {
            break;
        }
        out.push_str(g);
    }
    out.push('…');
    out
}

/// HMAC-SHA256 of `message` under `key`, base64 (standard alphabet, padded).
pub(crate) fn hmac_sha256_base64(key: &[u8], message: &[u8]) -> String {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = match <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC hashes long keys and pads short ones: no length is refused.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    };
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `base_url` setting (or the platform's default), checked.
pub(crate) fn base_url(
    setting: Option<&str>,
    default: &str,
    what: &str,
) -> Result<Url, ConfigError> {
    let text = setting.unwrap_or(default).trim().trim_end_matches('/');
    let url = Url::parse(text).map_err(|e| ConfigError::new(format!("{what}: not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(format!(
            "{what}: must be an http or https URL such as {default}"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(format!(
            "{what}: give the address only (like {default}), without `?` or `#`"
        )));
    }
    Ok(url)
}

/// The `timeout_secs` setting, checked.
pub(crate) fn timeout(secs: f64, what: &str) -> Result<Duration, ConfigError> {
    if !(secs > 0.0 && secs <= 300.0) {
        return Err(ConfigError::new(format!(
            "{what}: must be between 0 and 300 seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A robot credential, given as itself or as the whole webhook URL the app
/// shows (then `from_url` picks it out, and the URL's origin is returned
/// too: the base to send to, unless `base_url` says otherwise, so a Lark or
/// private-deployment URL works as pasted). Errors never repeat the value.
pub(crate) fn credential(
    value: Secret,
    what: &str,
    part: &str,
    from_url: impl Fn(&Url) -> Option<String>,
) -> Result<(Secret, Option<String>), ConfigError> {
    let raw = value.expose();
    let (credential, origin) = if raw.starts_with("https://") || raw.starts_with("http://") {
        let url = Url::parse(raw).map_err(|_| {
            ConfigError::new(format!(
                "{what}: the value starts like a URL but is not one"
            ))
        })?;
        match from_url(&url) {
            Some(found) if !found.is_empty() => {
                (Secret::new(found), Some(url.origin().ascii_serialization()))
            }
            _ => {
                return Err(ConfigError::new(format!(
                    "{what}: the value is a URL without the robot's {part}; give the {part} or the \
                     whole webhook URL"
                )));
            }
        }
    } else {
        (value, None)
    };
    if credential
        .expose()
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::new(format!(
            "{what}: the value contains spaces or control characters; give the {part} alone"
        )));
    }
    Ok((credential, origin))
}

/// The value of query parameter `name` of `url`.
pub(crate) fn query_value(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// User ids or phone numbers to @, checked: non-empty, no spaces, nothing a
/// platform could read as markup.
pub(crate) fn check_ids(ids: &[String], what: &str) -> Result<(), ConfigError> {
    for id in ids {
        if id.is_empty()
            || id
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
        {
            return Err(ConfigError::new(format!(
                "{what}: `{id}` is not an id (no spaces, quotes or angle brackets)"
            )));
        }
    }
    Ok(())
}

/// `message` with every secret value replaced by `***` (platform messages
/// and HTTP errors may quote the URL, which holds the credential).
pub(crate) fn redact(message: String, secrets: &[&Secret]) -> String {
    secrets
        .iter()
        .map(|s| s.expose())
        .filter(|s| s.len() >= 4)
        .fold(message, |m, s| m.replace(s, "***"))
}

/// A platform's own words, cut to a length worth keeping.
pub(crate) fn short(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_MESSAGE {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_MESSAGE).collect();
    format!("{cut}…")
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// POSTs `body` as JSON to `url` (which holds the credential: transport
/// errors are reported without it).
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: Url,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<Reply, PublishError> {
    let response = client
        .post(url)
        .timeout(timeout)
        .json(body)
        .send()
        .await
        .map_err(classify_transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(classify_transport)?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A non-2xx answer without the platform's own error code: by HTTP status
/// (429 rate limited, waiting `Retry-After` or else `rate_limit_wait`;
/// 401/403 credentials; 4xx refused). These robots do not deduplicate, and
/// a 5xx may come from a gateway after the message went out, so it is
/// `outcome_unknown`, never resent.
pub(crate) fn http_failure(
    platform: &str,
    reply: &Reply,
    rate_limit_wait: Duration,
) -> PublishError {
    let mut error = classify_status(reply.status, &reply.headers, &reply.body);
    if error.class == ErrorClass::RateLimited && error.retry_after.is_none() {
        error.retry_after = Some(rate_limit_wait);
    }
    if reply.status.is_server_error() {
        error.class = ErrorClass::OutcomeUnknown;
        error.message = format!(
            "{}; {platform} may have sent the message before failing, and a resend could post it twice",
            error.message
        );
    }
    error
}

/// A 2xx answer that is not the platform's JSON: the message may have gone
/// out.
pub(crate) fn unreadable(platform: &str, reply: &Reply) -> PublishError {
    PublishError::new(
        ErrorClass::OutcomeUnknown,
        format!(
            "unreadable answer from {platform} (HTTP {}): {}",
            reply.status.as_u16(),
            short(&reply.body)
        ),
    )
    .with_status(reply.status.as_u16())
}

/// `HEAD` on the platform's address (never the webhook itself, which holds
/// the credential): whether it can be reached from here at all. Any HTTP
/// answer counts; its status code is returned.
pub(crate) async fn probe(
    client: &reqwest::Client,
    base: &Url,
    timeout: Duration,
) -> Result<u16, PublishError> {
    let response = client
        .head(base.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| crate::http::for_check(classify_transport(e)))?;
    Ok(response.status().as_u16())
}

/// The host (and port) of `base`, for messages.
pub(crate) fn host(base: &Url) -> String {
    match (base.host_str(), base.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => base.to_string(),
    }
}

/// A fake robot server for the three adapters' tests, and an independent
/// HMAC (the `openssl` command line).
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// One request the fake received.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        pub path: String,
        /// The raw query string, still percent-encoded.
        pub query: String,
        pub body: serde_json::Value,
    }

    impl Seen {
        /// A query parameter, decoded.
        pub fn param(&self, name: &str) -> Option<String> {
            url::form_urlencoded::parse(self.query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        }
    }

    /// An answer body that makes the fake wait 5 s before answering.
    pub const SLOW: &str = "<slow>";

    pub struct Fake {
        pub base: String,
        pub seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Fake {
        pub fn requests(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    /// Serves every path; `answer` picks status and body per request (the
    /// requests before it are counted in `seen`).
    pub async fn start(
        answer: impl Fn(&Seen, &[Seen]) -> (u16, String) + Send + Sync + 'static,
    ) -> Fake {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let answer = Arc::new(answer);
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
                let record = record.clone();
                let answer = answer.clone();
                async move {
                    let request = Seen {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query: uri.query().unwrap_or_default().to_owned(),
                        body: serde_json::from_str(&body).unwrap_or_default(),
                    };
                    let earlier = record.lock().unwrap().clone();
                    let (status, body) = answer(&request, &earlier);
                    record.lock().unwrap().push(request);
                    if body == SLOW {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { base, seen }
    }

    /// A port nothing listens on.
    pub fn closed_port() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    }

    /// base64(HMAC-SHA256(key, message)) as the `openssl` command computes
    /// it, or `None` where openssl is not installed:
    /// `printf '%s' "$MSG" | openssl dgst -sha256 -hmac "$KEY" -binary | openssl base64 -A`.
    pub fn openssl_hmac_base64(key: &str, message: &str) -> Option<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"printf '%s' "$MSG" | openssl dgst -sha256 -hmac "$KEY" -binary | openssl base64 -A"#)
            .env("KEY", key)
            .env("MSG", message)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Dialect = Dialect {
        italic: true,
        strike: true,
        code: true,
        hard_breaks: false,
    };

    #[test]
    fn markdown_is_read_back_into_styled_lines() {
        let lines = lines("# Launch\n**Big** & *small* [docs](https://x.test/?a=1&b=2) `x<y`");
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0].runs,
            vec![Run {
                text: "Launch".into(),
                marks: Marks {
                    bold: true,
                    ..Marks::default()
                },
                href: None
            }]
        );
        let texts: Vec<(&str, Option<&str>)> = lines[1]
            .runs
            .iter()
            .map(|r| (r.text.as_str(), r.href.as_deref()))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("Big", None),
                (" & ", None),
                ("small", None),
                (" ", None),
                ("docs", Some("https://x.test/?a=1&b=2")),
                (" ", None),
                ("x<y", None),
            ]
        );
        assert!(lines[1].runs[6].marks.code);
    }

    #[test]
    fn dialects_keep_the_marks_they_have() {
        let md = "**bold** *it* ~~old~~ `code` [a **b**](https://x.test/p(1)) done";
        let lines = lines(md);
        assert_eq!(
            render(&lines, ALL),
            "**bold** *it* ~~old~~ `code` [a **b**](https://x.test/p%281%29) done"
        );
        let bare = Dialect {
            italic: false,
            strike: false,
            code: false,
            hard_breaks: false,
        };
        assert_eq!(
            render(&lines, bare),
            "**bold** it old code [a **b**](https://x.test/p%281%29) done"
        );
    }

    #[test]
    fn quotes_lists_and_line_breaks_keep_their_shape() {
        let md = "Intro\nsecond\n\n- one\n- two\n\n> quoted\n> more\n\nend";
        let lines = lines(md);
        assert_eq!(
            render(&lines, ALL),
            "Intro\nsecond\n\n- one\n- two\n\n> quoted\n> more\n\nend"
        );
        let hard = Dialect {
            hard_breaks: true,
            ..ALL
        };
        assert_eq!(
            render(&lines, hard),
            "Intro  \nsecond\n\n- one  \n- two\n\n> quoted  \n> more\n\nend"
        );
    }

    #[test]
    fn raw_tags_in_the_source_cannot_mention_or_restyle() {
        let md = "hi <@zhangsan> <at user_id=\"all\">x</at> <font color=\"warning\">y</font> a < b";
        let out = render(&lines(md), ALL);
        assert!(
            !out.contains("<@") && !out.contains("<at") && !out.contains("<font"),
            "{out}"
        );
        assert!(
            out.contains("<\u{200B}@zhangsan>") && out.contains("a < b"),
            "{out}"
        );
        let text = plain(md);
        assert!(!text.contains("<at") && text.contains("a < b"), "{text}");
    }

    #[test]
    fn only_allowed_link_targets_survive() {
        let lines =
            lines("[x](javascript:alert(1)) [y](https://ok.test/a.PNG?s=1) [z](https://ok.test/)");
        assert_eq!(
            first_link(&lines).as_deref(),
            Some("https://ok.test/a.PNG?s=1")
        );
        assert_eq!(
            first_image_link(&lines).as_deref(),
            Some("https://ok.test/a.PNG?s=1")
        );
        assert_eq!(
            render(&lines, ALL),
            "x [y](https://ok.test/a.PNG?s=1) [z](https://ok.test/)"
        );
    }

    #[test]
    fn byte_truncation_never_splits_a_character() {
        assert_eq!(truncate_bytes("short", 10), "short");
        // Each CJK character is 3 bytes; "…" is 3 too.
        assert_eq!(truncate_bytes("发布新版本", 10), "发布…");
        assert!(truncate_bytes("发布新版本", 10).len() <= 10);
    }

    #[test]
    fn credentials_come_as_themselves_or_inside_the_webhook_url() {
        let key = |v: &str| {
            credential(Secret::new(v), "channel `w` key", "key", |u| {
                query_value(u, "key")
            })
            .map(|(s, origin)| (s.expose().to_owned(), origin))
        };
        assert_eq!(key("abc-123").unwrap(), ("abc-123".to_owned(), None));
        assert_eq!(
            key("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123").unwrap(),
            (
                "abc-123".to_owned(),
                Some("https://qyapi.weixin.qq.com".to_owned())
            )
        );
        let missing =
            key("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?kee=s3cret").unwrap_err();
        assert!(!missing.to_string().contains("s3cret"), "{missing}");
        let spaced = key("abc 123").unwrap_err();
        assert!(spaced.to_string().contains("spaces"), "{spaced}");
    }
}
