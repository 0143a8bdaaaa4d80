//! `email`: a newsletter-style channel. Each post is mailed over SMTP to
//! every recipient, one message per recipient (text and HTML alternatives,
//! `List-Unsubscribe` headers). No attachments in this version.
//!
//! ```toml
//! [[channels]]
//! name = "newsletter"
//! kind = "email"
//! smtp_host = "smtp.example.org"
//! smtp_port = 587                                  # default 587 (465 when tls = "tls")
//! tls = "starttls"                                 # starttls | tls | none
//! username = "news@example.org"
//! password = { env = "SMTP_PASSWORD" }
//! from = "Clarion <news@example.org>"
//! recipients = ["a@example.org", "b@example.org"]  # or: recipients_file = "/etc/clarion/list.txt"
//! subject_template = "News: {first_line}"          # {first_line}, {campaign}
//! list_unsubscribe = "https://example.org/unsubscribe"
//! timeout_secs = 30
//! ```
//!
//! Delivery marks make a retry safe: after the server accepts a message for
//! a recipient, `<channel>/sent/<idempotency key>` / `<recipient>` is saved
//! in the adapter store, and recipients with a mark are skipped next time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    AdapterContext, AdapterFactory, AdapterStore, ChannelAdapter, ChannelCheck, ChannelConfig,
    ConfigError, ErrorClass, Idempotency, LengthRule, LengthUnit, Markup, PublishError,
    PublishReceipt, PublishRequest, Secret, SecretRef, ThreadStyle, truncate_graphemes,
};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, Error as SmtpError};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

/// RFC 5322 recommends header lines of at most 78 characters.
const SUBJECT_MAX: usize = 78;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum TlsMode {
    /// Plain connection upgraded with STARTTLS (required, never downgraded).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: local relays and tests only.
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    smtp_host: String,
    smtp_port: Option<u16>,
    #[serde(default)]
    tls: TlsMode,
    username: Option<String>,
    password: Option<SecretRef>,
    from: String,
    recipients: Option<Vec<String>>,
    recipients_file: Option<PathBuf>,
    subject_template: Option<String>,
    list_unsubscribe: String,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
}

fn default_timeout() -> f64 {
    30.0
}

pub struct EmailAdapter {
    channel: String,
    host: String,
    port: u16,
    /// A builder, not a transport: lettre's pooled transport spawns a task
    /// when built, which needs the runtime `publish` runs on (and `build`
    /// may run outside one). Holds the credentials, so never printed.
    transport: AsyncSmtpTransportBuilder,
    from: Mailbox,
    recipients: Vec<Address>,
    subject_template: Option<String>,
    list_unsubscribe: String,
    one_click: bool,
    timeout: Duration,
    state: Arc<dyn AdapterStore>,
}

impl std::fmt::Debug for EmailAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailAdapter")
            .field("channel", &self.channel)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("recipients", &self.recipients.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Factory;

impl AdapterFactory for Factory {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn build(
        &self,
        config: &ChannelConfig,
        context: &AdapterContext,
    ) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
        let s: Settings = config.settings()?;
        let what = |field: &str| format!("channel `{}` {field}", config.name);
        let fail = |field: &str, problem: String| {
            Err(ConfigError::new(format!("{}: {problem}", what(field))))
        };
        let host = s.smtp_host.trim().to_owned();
        if host.is_empty() {
            return fail("smtp_host", "must not be empty".into());
        }
        if !(s.timeout_secs > 0.0 && s.timeout_secs <= 300.0) {
            return fail("timeout_secs", "must be between 0 and 300 seconds".into());
        }
        let from: Mailbox = match s.from.parse() {
            Ok(from) => from,
            Err(e) => return fail("from", format!("not an address: {e}")),
        };
        let lines = match (s.recipients, &s.recipients_file) {
            (Some(list), None) => list,
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) => text.lines().map(str::to_owned).collect(),
                Err(e) => {
                    return fail(
                        "recipients_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                }
            },
            _ => {
                return fail(
                    "(email)",
                    "give exactly one of `recipients` or `recipients_file`".into(),
                );
            }
        };
        let mut recipients: Vec<Address> = Vec::new();
        for line in &lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let address: Address = match line.parse() {
                Ok(address) => address,
                Err(e) => return fail("recipients", format!("`{line}` is not an address: {e}")),
            };
            // A duplicate would share the delivery mark anyway; dropping it
            // keeps the counts in messages right.
            if !recipients.contains(&address) {
                recipients.push(address);
            }
        }
        if recipients.is_empty() {
            return fail("recipients", "no recipient addresses".into());
        }
        let unsubscribe = s.list_unsubscribe.trim().to_owned();
        let one_click = match url::Url::parse(&unsubscribe) {
            Ok(u) if u.scheme() == "https" => true,
            Ok(u) if matches!(u.scheme(), "http" | "mailto") => false,
            _ => {
                return fail(
                    "list_unsubscribe",
                    "must be an https, http or mailto URL".into(),
                );
            }
        };
        let port = s.smtp_port.unwrap_or(match s.tls {
            TlsMode::Tls => 465,
            TlsMode::Starttls | TlsMode::None => 587,
        });
        let timeout = Duration::from_secs_f64(s.timeout_secs);
        let builder = match s.tls {
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host),
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&host),
            TlsMode::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &host,
            )),
        };
        let mut transport = match builder {
            Ok(builder) => builder.port(port).timeout(Some(timeout)),
            Err(e) => return fail("tls", format!("cannot set up TLS for {host}: {e}")),
        };
        match (s.username, s.password) {
            (Some(user), Some(password)) => {
                let password = password.resolve(&what("password"))?;
                transport =
                    transport.credentials(Credentials::new(user, password.expose().to_owned()));
            }
            (None, None) => {}
            _ => {
                return fail(
                    "(email)",
                    "give both `username` and `password`, or neither".into(),
                );
            }
        }
        Ok(Arc::new(EmailAdapter {
            channel: config.name.clone(),
            host,
            port,
            transport,
            from,
            recipients,
            subject_template: s.subject_template,
            list_unsubscribe: unsubscribe,
            one_click,
            timeout,
            state: context.state.clone(),
        }))
    }
}

/// What one publish did, recipient by recipient.
#[derive(Debug, Default)]
struct Delivery {
    /// Accepted now or by an earlier attempt, in recipient order.
    delivered: Vec<String>,
    /// Refused for good (5xx); skipped.
    rejected: Vec<(String, String)>,
    /// Refused for now (4xx); a retry sends to them.
    deferred: Vec<(String, String)>,
}

fn list(entries: &[(String, String)]) -> String {
    entries
        .iter()
        .map(|(who, why)| format!("{who} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Delivery {
    fn summary(&self) -> String {
        let mut parts = vec![format!("{} delivered", self.delivered.len())];
        if !self.rejected.is_empty() {
            parts.push(format!("rejected by the server: {}", list(&self.rejected)));
        }
        if !self.deferred.is_empty() {
            parts.push(format!("deferred: {}", list(&self.deferred)));
        }
        parts.join("; ")
    }
}

/// How one SMTP failure affects the run.
enum Failure {
    /// This recipient is refused for good: skip it.
    Rejected(String),
    /// This recipient is refused for now: leave it for the retry.
    Deferred(String),
    /// Every further recipient would fail the same way: stop here.
    Stop(PublishError),
}

impl EmailAdapter {
    fn scope(&self, key: &str) -> String {
        format!("{}/sent/{key}", self.channel)
    }

    fn subject(&self, request: &PublishRequest<'_>) -> String {
        let plain = plain_text(&request.post.text);
        let first = plain
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("(no subject)");
        let first = truncate_graphemes(first, SUBJECT_MAX);
        let subject = match &self.subject_template {
            None => first,
            Some(template) => template
                .replace("{first_line}", &first)
                .replace("{campaign}", request.post.campaign.as_deref().unwrap_or("")),
        };
        // A header is one line, whatever the template holds.
        subject.replace(['\r', '\n'], " ").trim().to_owned()
    }

    fn message(
        &self,
        request: &PublishRequest<'_>,
        subject: &str,
        to: &Address,
    ) -> Result<Message, PublishError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
            .subject(subject)
            .date_now()
            .message_id(Some(message_id(request.idempotency_key, to)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{}>", self.list_unsubscribe),
            ));
        if self.one_click {
            // RFC 8058: mailbox providers unsubscribe with one POST.
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                plain_text(&request.post.text),
                html(&request.post.text),
            ))
            .map_err(|e| {
                PublishError::new(
                    ErrorClass::Permanent,
                    format!("cannot build the message: {e}"),
                )
            })
    }

    fn classify(&self, error: &SmtpError) -> Failure {
        let server = format!("SMTP {}:{}", self.host, self.port);
        let detail = std::error::Error::source(error)
            .map(|s| s.to_string())
            .unwrap_or_default();
        if let Some(code) = error.status() {
            let code = u16::from(code);
            let said = format!("{code} {detail}").trim().to_owned();
            return match code {
                // Authentication refused or required: every recipient would
                // hit the same wall, and only new credentials help.
                530 | 534 | 535 => Failure::Stop(PublishError::new(
                    ErrorClass::AuthExpired,
                    format!("{server} refused the credentials: {said}"),
                )),
                500..=599 => Failure::Rejected(said),
                _ => Failure::Deferred(said),
            };
        }
        // lettre offers no `is_connection()`; its Display names the kind.
        // Connection errors (refused, DNS, connect timeout, TLS setup)
        // happen before anything is sent.
        let text = error.to_string();
        if text.starts_with("Connection error") || error.is_timeout() || error.is_tls() {
            return Failure::Stop(PublishError::new(
                ErrorClass::Transient,
                format!("could not connect to {server}: {text}"),
            ));
        }
        if error.is_client() {
            return Failure::Stop(PublishError::new(
                ErrorClass::Permanent,
                format!("{server}: {text}"),
            ));
        }
        // A network or protocol error mid-conversation: the message may have
        // been accepted without us hearing so.
        Failure::Stop(PublishError::new(
            ErrorClass::OutcomeUnknown,
            format!("{server}: {text}"),
        ))
    }

    async fn deliver(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        request: &PublishRequest<'_>,
        delivery: &mut Delivery,
    ) -> Result<(), PublishError> {
        let scope = self.scope(request.idempotency_key);
        let subject = self.subject(request);
        for to in &self.recipients {
            let name = to.to_string();
            let marked = self.state.load(&scope, &name).await.map_err(|e| {
                // Without the mark we cannot know it is safe to send.
                PublishError::new(ErrorClass::Transient, e.to_string())
            })?;
            if marked.is_some() {
                delivery.delivered.push(name);
                continue;
            }
            let message = self.message(request, &subject, to)?;
            let sent = tokio::time::timeout(self.timeout, transport.send(message)).await;
            match sent {
                Err(_) => {
                    return Err(PublishError::new(
                        ErrorClass::OutcomeUnknown,
                        format!(
                            "SMTP {}:{} did not answer within {:?} while sending to {name} ({})",
                            self.host,
                            self.port,
                            self.timeout,
                            delivery.summary()
                        ),
                    ));
                }
                Ok(Ok(_)) => {
                    self.state
                        .save(&scope, &name, &Secret::new("1"))
                        .await
                        .map_err(|e| {
                            // Sent, but a retry would send it again.
                            PublishError::new(
                                ErrorClass::OutcomeUnknown,
                                format!("sent to {name} but could not record it: {e}"),
                            )
                        })?;
                    delivery.delivered.push(name);
                }
                Ok(Err(error)) => match self.classify(&error) {
                    Failure::Rejected(why) => {
                        tracing::warn!(channel = %self.channel, "{name} rejected: {why}");
                        delivery.rejected.push((name, why));
                    }
                    Failure::Deferred(why) => delivery.deferred.push((name, why)),
                    Failure::Stop(mut e) => {
                        e.message = format!("{} ({})", e.message, delivery.summary());
                        return Err(e);
                    }
                },
            }
        }
        Ok(())
    }
}

/// `<key.hash@clarion>`: the same for every attempt to one recipient, so
/// receivers and archives can spot a duplicate.
fn message_id(key: &str, to: &Address) -> String {
    let key: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let key = key.trim_matches('.');
    // FNV-1a: stable across processes and Rust versions, unlike DefaultHasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in to.to_string().to_lowercase().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("<{key}.{hash:016x}@clarion>")
}

/// A Markdown link `[label](url)` or image `![alt](url)` at the start of `s`:
/// (label, url, bytes consumed).
fn md_link(s: &str) -> Option<(&str, &str, usize)> {
    let open = if s.starts_with("![") {
        2
    } else if s.starts_with('[') {
        1
    } else {
        return None;
    };
    let close = s[open..].find("](")? + open;
    let url_start = close + 2;
    let url_end = s[url_start..].find(')')? + url_start;
    let url = s[url_start..url_end].trim();
    let label = &s[open..close];
    if label.contains(['[', ']']) || !linkable(url) {
        return None;
    }
    Some((label, url, url_end + 1))
}

/// Only these schemes become links: no `javascript:` in a newsletter.
fn linkable(url: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|p| url.len() > p.len() && url[..p.len()].eq_ignore_ascii_case(p))
}

/// A bare URL at the start of `s`, without trailing punctuation.
fn bare_url(s: &str) -> Option<&str> {
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    let url = s[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
    linkable(url).then_some(url)
}

/// Drops block markers (headings, quotes) a reader should not see.
fn strip_block(line: &str) -> &str {
    let trimmed = line.trim_start();
    let unheaded = trimmed.trim_start_matches('#');
    if unheaded.len() < trimmed.len() && (unheaded.is_empty() || unheaded.starts_with(' ')) {
        return unheaded.trim_start();
    }
    trimmed
        .strip_prefix("> ")
        .or_else(|| trimmed.strip_prefix('>'))
        .unwrap_or(line)
}

/// The text part: Markdown markers dropped, links as `label (url)`.
fn plain_text(markdown: &str) -> String {
    let mut out = String::new();
    for (i, line) in markdown.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut rest = strip_block(line);
        while let Some(c) = rest.chars().next() {
            if let Some((label, url, len)) = md_link(rest) {
                if label.is_empty() || label == url {
                    out.push_str(url);
                } else {
                    out.push_str(&format!("{label} ({url})"));
                }
                rest = &rest[len..];
            } else if rest.starts_with("**") {
                rest = &rest[2..];
            } else if c == '`' {
                rest = &rest[1..];
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn link(url: &str, label: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(url), escape(label))
}

/// One line of HTML: escaped, links clickable, balanced `**` bold.
fn inline_html(line: &str) -> String {
    let bold = line.matches("**").count().is_multiple_of(2);
    let mut open = false;
    let mut out = String::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if let Some((label, url, len)) = md_link(rest) {
            out.push_str(&link(url, if label.is_empty() { url } else { label }));
            rest = &rest[len..];
        } else if let Some(url) = bare_url(rest) {
            out.push_str(&link(url, url));
            rest = &rest[url.len()..];
        } else if bold && rest.starts_with("**") {
            out.push_str(if open { "</strong>" } else { "<strong>" });
            open = !open;
            rest = &rest[2..];
        } else if c == '`' {
            rest = &rest[1..];
        } else {
            out.push_str(&escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The HTML part: a paragraph per blank-line-separated block, line breaks kept.
fn html(markdown: &str) -> String {
    let mut paragraphs: Vec<Vec<&str>> = vec![Vec::new()];
    for line in markdown.lines() {
        if line.trim().is_empty() {
            paragraphs.push(Vec::new());
        } else if let Some(last) = paragraphs.last_mut() {
            last.push(strip_block(line));
        }
    }
    let body: Vec<String> = paragraphs
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            let lines: Vec<String> = p.iter().map(|l| inline_html(l)).collect();
            format!("<p>{}</p>", lines.join("<br>\n"))
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html>\n<body>\n{}\n</body>\n</html>\n",
        body.join("\n")
    )
}

#[async_trait]
impl ChannelAdapter for EmailAdapter {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn length_rule(&self) -> LengthRule {
        // Mail has no real limit; this only catches a runaway template.
        LengthRule::new(100_000, LengthUnit::Chars)
    }

    fn markup(&self) -> Markup {
        Markup::Markdown
    }

    fn idempotency(&self) -> Idempotency {
        // Per-recipient delivery marks make a resend skip whoever has it.
        Idempotency::Honoured
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Joined
    }

    // media_rule(): the default NONE. Attachments are not supported yet.

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let transport = self.transport.clone().build::<Tokio1Executor>();
        let mut delivery = Delivery::default();
        let result = self.deliver(&transport, &request, &mut delivery).await;
        // QUIT politely; the pool would otherwise hold the connection idle.
        transport.shutdown().await;
        result?;
        if !delivery.deferred.is_empty() {
            return Err(PublishError::new(ErrorClass::Transient, delivery.summary()));
        }
        let Some(first) = delivery.delivered.first() else {
            return Err(PublishError::new(ErrorClass::Permanent, delivery.summary()));
        };
        if !delivery.rejected.is_empty() {
            tracing::warn!(channel = %self.channel, "{}", delivery.summary());
        }
        let first = first.parse::<Address>().map_err(|e| {
            PublishError::new(ErrorClass::Permanent, format!("recipient {first}: {e}"))
        })?;
        Ok(PublishReceipt {
            platform_post_id: Some(message_id(request.idempotency_key, &first)),
            url: None,
        })
    }

    async fn check(&self) -> Result<ChannelCheck, PublishError> {
        let transport = self.transport.clone().build::<Tokio1Executor>();
        let result = tokio::time::timeout(self.timeout, transport.test_connection()).await;
        transport.shutdown().await;
        let server = format!("SMTP {}:{}", self.host, self.port);
        match result {
            Err(_) => Err(PublishError::new(
                ErrorClass::Transient,
                format!("{server} did not answer within {:?}", self.timeout),
            )),
            Ok(Ok(true)) => Ok(ChannelCheck {
                detail: format!("{server} accepts connections"),
            }),
            Ok(Ok(false)) => Err(PublishError::new(
                ErrorClass::Transient,
                format!("{server} connected but did not answer NOOP"),
            )),
            Ok(Err(error)) => Err(match self.classify(&error) {
                Failure::Stop(e) => e,
                Failure::Rejected(why) => {
                    PublishError::new(ErrorClass::Permanent, format!("{server}: {why}"))
                }
                Failure::Deferred(why) => {
                    PublishError::new(ErrorClass::Transient, format!("{server}: {why}"))
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::process::{Child, Command, Stdio};

    use clarion_core::{MemoryAdapterStore, OutboundPost};
    use serde_json::{Value, json};

    use super::*;

    /// aiosmtpd on a free port, killed on drop.
    struct Sink {
        child: Child,
        port: u16,
        out: PathBuf,
    }

    impl Drop for Sink {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.out);
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn sink(test: &str, reject: Option<&str>) -> Sink {
        let port = free_port();
        let out =
            std::env::temp_dir().join(format!("clarion-smtp-{}-{test}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(reject) = reject {
            command.arg(reject);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("the email tests need python3 with aiosmtpd (pip install aiosmtpd): {e}")
        });
        let mut sink = Sink { child, port, out };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = sink.child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = sink.child.stderr.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
                }
                panic!(
                    "the SMTP sink exited ({status}); the email tests need python3 with aiosmtpd (pip install aiosmtpd):\n{stderr}"
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the SMTP sink did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    /// (recipients, raw message) per accepted message.
    fn received(sink: &Sink) -> Vec<(Vec<String>, String)> {
        let text = std::fs::read_to_string(&sink.out).unwrap_or_default();
        text.lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                let rcpt = v["rcpt"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect();
                (rcpt, v["data"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    fn adapter(
        port: u16,
        recipients: &[&str],
        store: Arc<MemoryAdapterStore>,
    ) -> Arc<dyn ChannelAdapter> {
        let config = json!({
            "name": "newsletter",
            "kind": "email",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "tls": "none",
            "from": "Clarion <news@example.org>",
            "recipients": recipients,
            "list_unsubscribe": "https://example.org/unsubscribe",
            "timeout_secs": 10,
        });
        Factory
            .build(
                &serde_json::from_value(config).unwrap(),
                &AdapterContext { state: store },
            )
            .unwrap()
    }

    const TEXT: &str = "Spring release is out\n\nRead the **notes** at [our blog](https://example.org/blog) or https://example.org/x.\nThanks & see you";

    async fn publish(adapter: &dyn ChannelAdapter) -> Result<PublishReceipt, PublishError> {
        let post = OutboundPost {
            text: TEXT.into(),
            campaign: None,
            media: vec![],
        };
        adapter
            .publish(PublishRequest {
                post: &post,
                idempotency_key: "post-7-target-9",
                reply_to: None,
                post_id: 7,
                target_id: 9,
                scheduled_at_ms: 1_764_158_400_000,
            })
            .await
    }

    /// Undoes quoted-printable: soft line breaks and `=XX` escapes.
    fn decode_qp(data: &str) -> String {
        let bytes = data.replace("=\r\n", "").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| {
                    h.chars()
                        .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
                })
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn id_for(address: &str) -> String {
        message_id("post-7-target-9", &address.parse().unwrap())
    }

    #[tokio::test]
    async fn email_sends_one_message_per_recipient_and_never_twice() {
        let sink = sink("each", None);
        let store = Arc::new(MemoryAdapterStore::default());
        let to = ["a@example.org", "b@example.org", "c@example.org"];
        let adapter = adapter(sink.port, &to, store.clone());
        let receipt = publish(adapter.as_ref()).await.unwrap();
        assert_eq!(
            receipt,
            PublishReceipt {
                platform_post_id: Some(id_for("a@example.org")),
                url: None,
            }
        );
        let got = received(&sink);
        assert_eq!(got.len(), 3, "{got:#?}");
        for address in to {
            let mine: Vec<_> = got.iter().filter(|(r, _)| r == &[address]).collect();
            assert_eq!(mine.len(), 1, "{address}: {got:#?}");
            let data = &mine[0].1;
            // Bodies with long lines arrive quoted-printable.
            let decoded = decode_qp(data);
            for expected in [
                "Subject: Spring release is out\r\n".to_owned(),
                format!("To: {address}\r\n"),
                "From: Clarion <news@example.org>\r\n".to_owned(),
                format!("Message-ID: {}\r\n", id_for(address)),
                "List-Unsubscribe: <https://example.org/unsubscribe>\r\n".to_owned(),
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n".to_owned(),
                "Content-Type: multipart/alternative;".to_owned(),
                "Content-Type: text/plain; charset=utf-8\r\n".to_owned(),
                "Content-Type: text/html; charset=utf-8\r\n".to_owned(),
                "Read the notes at our blog (https://example.org/blog) or https://example.org/x.\r\nThanks & see you".to_owned(),
                "<p>Read the <strong>notes</strong> at <a href=\"https://example.org/blog\">our blog</a> or <a href=\"https://example.org/x\">https://example.org/x</a>.<br>\r\nThanks &amp; see you</p>".to_owned(),
            ] {
                assert!(
                    data.contains(&expected) || decoded.contains(&expected),
                    "{address}: missing {expected:?} in\n{decoded}"
                );
            }
        }
        for address in to {
            let mark = store
                .load("newsletter/sent/post-7-target-9", address)
                .await
                .unwrap();
            assert_eq!(mark, Some(Secret::new("1")), "{address}");
        }

        // The retry (same key, same store) finds every mark and sends nothing.
        let again = publish(adapter.as_ref()).await.unwrap();
        assert_eq!(again, receipt);
        assert_eq!(received(&sink).len(), 3);
    }

    #[tokio::test]
    async fn email_a_rejected_recipient_is_skipped_and_named() {
        let sink = sink("reject", Some("nobody@example.org"));
        let store = Arc::new(MemoryAdapterStore::default());
        let adapter = adapter(
            sink.port,
            &["nobody@example.org", "a@example.org"],
            store.clone(),
        );
        let receipt = publish(adapter.as_ref()).await.unwrap();
        assert_eq!(receipt.platform_post_id, Some(id_for("a@example.org")));
        let got = received(&sink);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(got[0].0, ["a@example.org"]);
        assert_eq!(
            store
                .load("newsletter/sent/post-7-target-9", "nobody@example.org")
                .await
                .unwrap(),
            None
        );

        // When nobody takes it, the post fails for good, naming who refused.
        let alone = self::adapter(sink.port, &["nobody@example.org"], Arc::default());
        let error = publish(alone.as_ref()).await.unwrap_err();
        assert_eq!(
            (error.class, error.message.as_str()),
            (
                ErrorClass::Permanent,
                "0 delivered; rejected by the server: nobody@example.org (550 5.1.1 no such user)"
            )
        );
    }

    #[tokio::test]
    async fn email_a_server_that_is_down_is_transient() {
        let port = free_port();
        let adapter = adapter(port, &["a@example.org"], Arc::default());
        let error = publish(adapter.as_ref()).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::Transient, "{error}");
        assert!(
            error.message.starts_with(&format!(
                "could not connect to SMTP 127.0.0.1:{port}: Connection error"
            )),
            "{error}"
        );
        let check = adapter.check().await.unwrap_err();
        assert_eq!(check.class, ErrorClass::Transient, "{check}");
    }

    #[tokio::test]
    async fn email_check_connects_and_greets() {
        let sink = sink("check", None);
        let adapter = adapter(sink.port, &["a@example.org"], Arc::default());
        assert_eq!(
            adapter.check().await.unwrap().detail,
            format!("SMTP 127.0.0.1:{} accepts connections", sink.port)
        );
        assert!(received(&sink).is_empty());
    }

    #[test]
    fn email_delivery_summary_names_each_recipient() {
        let delivery = Delivery {
            delivered: vec!["a@example.org".into()],
            rejected: vec![("x@example.org".into(), "550 5.1.1 no such user".into())],
            deferred: vec![("y@example.org".into(), "451 4.3.0 try later".into())],
        };
        assert_eq!(
            delivery.summary(),
            "1 delivered; rejected by the server: x@example.org (550 5.1.1 no such user); deferred: y@example.org (451 4.3.0 try later)"
        );
    }

    #[test]
    fn email_markdown_renders_to_text_and_html() {
        let md = "# Title\n\n> quoted <b>\n[x](javascript:alert(1)) ![pic](https://e.org/p.png)";
        assert_eq!(
            plain_text(md),
            "Title\n\nquoted <b>\n[x](javascript:alert(1)) pic (https://e.org/p.png)"
        );
        assert_eq!(
            html(md),
            "<!DOCTYPE html>\n<html>\n<body>\n<p>Title</p>\n<p>quoted &lt;b&gt;<br>\n[x](javascript:alert(1)) <a href=\"https://e.org/p.png\">pic</a></p>\n</body>\n</html>\n"
        );
        assert_eq!(
            message_id("post 7/2", &"A@Example.org".parse().unwrap()),
            message_id("post 7/2", &"a@example.org".parse().unwrap())
        );
        assert!(
            message_id("post 7/2", &"a@example.org".parse().unwrap()).starts_with("<post-7-2.")
        );
    }

    #[test]
    fn email_subject_defaults_to_the_first_line_within_78_chars() {
        let adapter = adapter(25, &["a@example.org"], Arc::default());
        assert_eq!(adapter.markup(), Markup::Markdown);
        assert_eq!(adapter.idempotency(), Idempotency::Honoured);
        assert_eq!(adapter.media_rule(), clarion_core::MediaRule::NONE);
        let long = "word ".repeat(30);
        let post = OutboundPost {
            text: format!("\n**{long}**\nbody"),
            campaign: None,
            media: vec![],
        };
        let request = PublishRequest {
            post: &post,
            idempotency_key: "k",
            reply_to: None,
            post_id: 1,
            target_id: 1,
            scheduled_at_ms: 1_764_158_400_000,
        };
        let email = EmailAdapter {
            subject_template: None,
            ..build_concrete(25)
        };
        let subject = email.subject(&request);
        assert_eq!(subject.chars().count(), 78);
        assert!(
            subject.ends_with('…') && subject.starts_with("word word"),
            "{subject}"
        );
        let templated = EmailAdapter {
            subject_template: Some("News: {first_line}".into()),
            ..build_concrete(25)
        };
        let short = OutboundPost {
            text: "Hello\nrest".into(),
            campaign: None,
            media: vec![],
        };
        assert_eq!(
            templated.subject(&PublishRequest {
                post: &short,
                ..request
            }),
            "News: Hello"
        );
    }

    fn build_concrete(port: u16) -> EmailAdapter {
        EmailAdapter {
            channel: "newsletter".into(),
            host: "127.0.0.1".into(),
            port,
            transport: AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1"),
            from: "news@example.org".parse().unwrap(),
            recipients: vec!["a@example.org".parse().unwrap()],
            subject_template: None,
            list_unsubscribe: "mailto:unsub@example.org".into(),
            one_click: false,
            timeout: Duration::from_secs(1),
            state: Arc::new(MemoryAdapterStore::default()),
        }
    }

    #[test]
    fn email_bad_settings_name_the_channel_and_the_field() {
        let build = |extra: Value| {
            let mut config = json!({"name": "newsletter", "kind": "email", "smtp_host": "h", "tls": "none", "from": "news@example.org", "list_unsubscribe": "https://e.org/u"});
            config
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            Factory
                .build(
                    &serde_json::from_value(config).unwrap(),
                    &AdapterContext::default(),
                )
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            build(json!({})),
            "channel `newsletter` (email): give exactly one of `recipients` or `recipients_file`"
        );
        assert_eq!(
            build(json!({"recipients": ["not an address"]})),
            "channel `newsletter` recipients: `not an address` is not an address: Missing domain or user"
        );
        assert_eq!(
            build(json!({"recipients": ["a@e.org"], "list_unsubscribe": "javascript:x"})),
            "channel `newsletter` list_unsubscribe: must be an https, http or mailto URL"
        );
        assert_eq!(
            build(json!({"recipients": ["a@e.org"], "username": "u"})),
            "channel `newsletter` (email): give both `username` and `password`, or neither"
        );
    }
}
