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
//! batch_size = 200                                 # recipients per publish call
//! ```
//!
//! Delivery marks make a retry safe: after the server accepts a message for
//! a recipient, `<channel>/sent/<idempotency key>` / `<recipient>` is saved
//! in the adapter store, and recipients with a mark are skipped next time.
//! A recipient the server refuses for good (5xx) gets a mark too, so it is
//! not tried again.
//!
//! A large list goes out in batches: one publish call stops starting new
//! recipients after `batch_size` sends (default 200) or two thirds of the
//! call's budget, and answers `unfinished`; the scheduler calls again at
//! once and the next call skips whoever has a mark. Each recipient's send
//! and its mark run as one spawned task, so a call cancelled by the
//! scheduler's timeout never leaves a recipient mailed but unmarked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Recipients one publish call sends to before it lets the scheduler call
/// again, unless `batch_size` says otherwise.
const DEFAULT_BATCH_SIZE: usize = 200;

/// The mark of a recipient the server accepted the message for.
const DELIVERED: &str = "1";
/// The mark of a recipient the server refused for good: `rejected: <why>`.
const REJECTED: &str = "rejected: ";

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
    #[serde(default = "default_batch_size")]
    batch_size: usize,
}

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
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
    batch_size: usize,
    /// Held by each recipient's send-and-mark task, taken before its mark is
    /// read: a call that follows a cancelled one waits for the send still
    /// in flight and then sees its mark, instead of sending again.
    sending: Arc<tokio::sync::Mutex<()>>,
    /// Per idempotency key, how far this process knows every recipient has
    /// a mark: later batches start there instead of re-reading each mark.
    resume: Mutex<HashMap<String, Resume>>,
}

/// The leading recipients that all have a mark, and what they came to.
#[derive(Debug, Default, Clone)]
struct Resume {
    next: usize,
    done: Delivery,
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
        if !(1..=100_000).contains(&s.batch_size) {
            return fail("batch_size", "must be between 1 and 100000".into());
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
            batch_size: s.batch_size,
            sending: Arc::default(),
            resume: Mutex::default(),
        }))
    }
}

/// What one publish did, recipient by recipient.
#[derive(Debug, Default, Clone)]
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

    fn resume_point(&self, key: &str) -> Resume {
        let resume = self.resume.lock().unwrap_or_else(|e| e.into_inner());
        resume.get(key).cloned().unwrap_or_default()
    }

    fn set_resume_point(&self, key: &str, point: Option<Resume>) {
        let mut resume = self.resume.lock().unwrap_or_else(|e| e.into_inner());
        match point {
            Some(point) => resume.insert(key.to_owned(), point),
            None => resume.remove(key),
        };
    }

    /// Sends to every recipient without a mark, in order, until the batch
    /// or two thirds of the budget is used up (`Paused`) or the list ends.
    async fn deliver(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        request: &PublishRequest<'_>,
        started: Instant,
        delivery: &mut Delivery,
    ) -> Result<Progress, PublishError> {
        let start = self.resume_point(request.idempotency_key);
        *delivery = start.done.clone();
        // Recipients before `marked_up_to` all have a mark; with the lengths
        // of `delivered` and `rejected` then, that is the next resume point.
        let mut marked_up_to = (
            start.next,
            delivery.delivered.len(),
            delivery.rejected.len(),
        );
        let result = self
            .deliver_from(
                transport,
                request,
                started,
                start.next,
                delivery,
                &mut marked_up_to,
            )
            .await;
        let (next, delivered, rejected) = marked_up_to;
        self.set_resume_point(
            request.idempotency_key,
            Some(Resume {
                next,
                done: Delivery {
                    delivered: delivery.delivered[..delivered].to_vec(),
                    rejected: delivery.rejected[..rejected].to_vec(),
                    deferred: Vec::new(),
                },
            }),
        );
        result
    }

    async fn deliver_from(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        request: &PublishRequest<'_>,
        started: Instant,
        first: usize,
        delivery: &mut Delivery,
        marked_up_to: &mut (usize, usize, usize),
    ) -> Result<Progress, PublishError> {
        let scope = self.scope(request.idempotency_key);
        let subject = self.subject(request);
        let soft_limit = request.budget.saturating_mul(2) / 3;
        // Sends started and marks saved by this call.
        let (mut attempted, mut recorded) = (0_usize, 0_usize);
        for (index, to) in self.recipients.iter().enumerate().skip(first) {
            let name = to.to_string();
            let contiguous = marked_up_to.0 == index;
            let guard = self.sending.clone().lock_owned().await;
            let mark = self.state.load(&scope, &name).await.map_err(|e| {
                // Without the mark we cannot know it is safe to send.
                PublishError::new(ErrorClass::Transient, e.to_string())
            })?;
            if let Some(mark) = mark {
                drop(guard);
                match mark.expose().strip_prefix(REJECTED) {
                    Some(why) => delivery.rejected.push((name, why.to_owned())),
                    None => delivery.delivered.push(name),
                }
                if contiguous {
                    *marked_up_to = (index + 1, delivery.delivered.len(), delivery.rejected.len());
                }
                continue;
            }
            if attempted >= self.batch_size || (attempted > 0 && started.elapsed() >= soft_limit) {
                drop(guard);
                if recorded > 0 {
                    return Ok(Progress::Paused);
                }
                // Every attempt of this call was deferred (4xx), nothing
                // recorded: not progress, so try again later.
                return Err(PublishError::new(ErrorClass::Transient, delivery.summary()));
            }
            let message = self.message(request, &subject, to)?;
            attempted += 1;
            // One task for the send and its mark: cancelling this call (the
            // scheduler's timeout) cannot land between the two.
            let task = tokio::spawn(send_and_mark(
                transport.clone(),
                message,
                self.timeout,
                self.state.clone(),
                scope.clone(),
                name.clone(),
                guard,
            ));
            let sent = task.await.unwrap_or_else(|e| Sent::Lost(e.to_string()));
            let mut now_marked = false;
            match sent {
                Sent::TimedOut => {
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
                Sent::Lost(why) => {
                    return Err(PublishError::new(
                        ErrorClass::OutcomeUnknown,
                        format!("sending to {name} stopped: {why} ({})", delivery.summary()),
                    ));
                }
                Sent::Unmarked(e) => {
                    // Sent, but a retry would send it again.
                    return Err(PublishError::new(
                        ErrorClass::OutcomeUnknown,
                        format!("sent to {name} but could not record it: {e}"),
                    ));
                }
                Sent::Marked => {
                    recorded += 1;
                    now_marked = true;
                    delivery.delivered.push(name);
                }
                Sent::Failed(error) => match self.classify(&error) {
                    Failure::Rejected(why) => {
                        tracing::warn!(channel = %self.channel, "{name} rejected: {why}");
                        let mark = Secret::new(format!("{REJECTED}{why}"));
                        match self.state.save(&scope, &name, &mark).await {
                            Ok(()) => {
                                recorded += 1;
                                now_marked = true;
                            }
                            // Only costs trying this recipient again.
                            Err(e) => {
                                tracing::warn!(channel = %self.channel, "cannot record that {name} was rejected: {e}")
                            }
                        }
                        delivery.rejected.push((name, why));
                    }
                    Failure::Deferred(why) => delivery.deferred.push((name, why)),
                    Failure::Stop(mut e) => {
                        e.message = format!("{} ({})", e.message, delivery.summary());
                        return Err(e);
                    }
                },
            }
            if contiguous && now_marked {
                *marked_up_to = (index + 1, delivery.delivered.len(), delivery.rejected.len());
            }
        }
        Ok(Progress::Done)
    }
}

/// Whether a publish call went through the whole list.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Done,
    /// Stopped starting new recipients (batch or budget used up) after
    /// recording progress; the next call continues.
    Paused,
}

/// What became of one recipient's send.
enum Sent {
    /// Accepted, and the delivery mark saved.
    Marked,
    /// Accepted, but the mark could not be saved.
    Unmarked(String),
    /// The server refused or the conversation failed.
    Failed(SmtpError),
    /// No answer within the timeout: it may have been accepted.
    TimedOut,
    /// The task itself failed (panic, runtime shutting down).
    Lost(String),
}

/// Sends one message and saves its delivery mark, as one spawned task: the
/// publish future awaiting it may be cancelled, this never is. Holds the
/// `sending` guard until the mark is saved.
async fn send_and_mark(
    transport: AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
    timeout: Duration,
    state: Arc<dyn AdapterStore>,
    scope: String,
    name: String,
    _sending: tokio::sync::OwnedMutexGuard<()>,
) -> Sent {
    match tokio::time::timeout(timeout, transport.send(message)).await {
        Err(_) => Sent::TimedOut,
        Ok(Err(error)) => Sent::Failed(error),
        Ok(Ok(_)) => match state.save(&scope, &name, &Secret::new(DELIVERED)).await {
            Ok(()) => Sent::Marked,
            Err(e) => Sent::Unmarked(e.to_string()),
        },
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
    let hash = clarion_core::hash::fnv1a64(to.to_string().to_lowercase().as_bytes());
    format!("<{key}.{hash:016x}@clarion>")
}

/// The text part: the Markdown as plain text, links as `label (url)`.
/// One converter for every channel (`clarion_content`), with its one list
/// of allowed link schemes: no `javascript:` in a newsletter.
fn plain_text(markdown: &str) -> String {
    clarion_content::markdown_to_plain(markdown)
}

/// The HTML part: the Markdown as block HTML (paragraphs, line breaks,
/// `<strong>`, `<em>`, lists; raw HTML escaped) in a minimal document.
fn html(markdown: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<body>\n{}\n</body>\n</html>\n",
        clarion_content::markdown_to_html_blocks(markdown)
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
        // Per-recipient delivery marks in the adapter store make a resend
        // skip whoever has it, however late it comes.
        Idempotency::honoured_for(Idempotency::FOREVER)
    }

    fn thread_style(&self) -> ThreadStyle {
        ThreadStyle::Joined
    }

    // media_rule(): the default NONE. Attachments are not supported yet.

    async fn publish(&self, request: PublishRequest<'_>) -> Result<PublishReceipt, PublishError> {
        let started = Instant::now();
        let transport = self.transport.clone().build::<Tokio1Executor>();
        let mut delivery = Delivery::default();
        let result = self
            .deliver(&transport, &request, started, &mut delivery)
            .await;
        // QUIT politely; the pool would otherwise hold the connection idle.
        transport.shutdown().await;
        if result? == Progress::Paused {
            let mut message = format!(
                "sent {} of {} recipients; continuing",
                delivery.delivered.len(),
                self.recipients.len()
            );
            if !delivery.rejected.is_empty() || !delivery.deferred.is_empty() {
                message = format!("{message} ({})", delivery.summary());
            }
            return Err(PublishError::new(ErrorClass::Unfinished, message));
        }
        self.set_resume_point(request.idempotency_key, None);
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
            Ok(Ok(true)) => Ok(ChannelCheck::ok(format!("{server} accepts connections"))),
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
        adapter_with(port, recipients, store, json!({}))
    }

    fn adapter_with(
        port: u16,
        recipients: &[&str],
        store: Arc<MemoryAdapterStore>,
        extra: Value,
    ) -> Arc<dyn ChannelAdapter> {
        let mut config = json!({
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
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Factory
            .build(
                &serde_json::from_value(config).unwrap(),
                &AdapterContext { state: store },
            )
            .unwrap()
    }

    const TEXT: &str = "Spring release is out\n\nRead the **notes** at [our blog](https://example.org/blog) or https://example.org/x.\nThanks & see you";

    async fn publish(adapter: &dyn ChannelAdapter) -> Result<PublishReceipt, PublishError> {
        publish_within(adapter, Duration::from_secs(30)).await
    }

    async fn publish_within(
        adapter: &dyn ChannelAdapter,
        budget: Duration,
    ) -> Result<PublishReceipt, PublishError> {
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
                budget,
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

    fn addresses(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}@example.org")).collect()
    }

    /// How many messages each address got.
    fn counts(sink: &Sink) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (rcpt, _) in received(sink) {
            for r in rcpt {
                *counts.entry(r).or_insert(0) += 1;
            }
        }
        counts
    }

    async fn marked(store: &MemoryAdapterStore, address: &str) -> bool {
        store
            .load("newsletter/sent/post-7-target-9", address)
            .await
            .unwrap()
            == Some(Secret::new("1"))
    }

    #[tokio::test]
    async fn email_a_list_bigger_than_a_batch_goes_out_over_several_calls_exactly_once() {
        let sink = sink("batches", None);
        let store = Arc::new(MemoryAdapterStore::default());
        let to = addresses(5);
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        let adapter = adapter_with(sink.port, &to, store.clone(), json!({"batch_size": 2}));
        let first = publish(adapter.as_ref()).await.unwrap_err();
        assert_eq!(
            (first.class, first.message.as_str()),
            (ErrorClass::Unfinished, "sent 2 of 5 recipients; continuing")
        );
        assert_eq!(received(&sink).len(), 2);
        let second = publish(adapter.as_ref()).await.unwrap_err();
        assert_eq!(
            (second.class, second.message.as_str()),
            (ErrorClass::Unfinished, "sent 4 of 5 recipients; continuing")
        );
        let receipt = publish(adapter.as_ref()).await.unwrap();
        assert_eq!(receipt.platform_post_id, Some(id_for("r0@example.org")));
        let counts = counts(&sink);
        for address in &to {
            assert_eq!(counts.get(*address), Some(&1), "{address}: {counts:?}");
            assert!(marked(&store, address).await, "{address}");
        }
        assert_eq!(counts.len(), 5);

        // Another process (a new adapter on the same store) finds every mark.
        let other = adapter_with(sink.port, &to, store.clone(), json!({"batch_size": 2}));
        assert_eq!(publish(other.as_ref()).await.unwrap(), receipt);
        assert_eq!(received(&sink).len(), 5);
    }

    #[tokio::test]
    async fn email_a_call_stops_starting_recipients_when_two_thirds_of_its_budget_is_used() {
        let sink = sink("budget", None);
        let store = Arc::new(MemoryAdapterStore::default());
        let to = addresses(3);
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        let adapter = adapter(sink.port, &to, store.clone());
        // Any send takes longer than 2/3 ms: one recipient per call, never
        // none (a call that made no progress may not say unfinished).
        let tiny = Duration::from_millis(1);
        for sent in 1..=2 {
            let error = publish_within(adapter.as_ref(), tiny).await.unwrap_err();
            assert_eq!(
                (error.class, error.message),
                (
                    ErrorClass::Unfinished,
                    format!("sent {sent} of 3 recipients; continuing")
                )
            );
            assert_eq!(received(&sink).len(), sent);
        }
        publish_within(adapter.as_ref(), tiny).await.unwrap();
        assert_eq!(
            counts(&sink).values().copied().collect::<Vec<_>>(),
            [1, 1, 1]
        );
    }

    #[tokio::test]
    async fn email_a_cancelled_call_never_leaves_a_recipient_mailed_without_a_mark() {
        let sink = sink("cancel", None);
        let store = Arc::new(MemoryAdapterStore::default());
        let to = addresses(12);
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        let adapter = adapter(sink.port, &to, store.clone());
        // The scheduler cancels a publish that overruns its budget: cut
        // calls off at many points, mid-conversation included.
        for ms in [1, 2, 3, 4, 6, 8, 11, 15, 20, 30] {
            let _ =
                tokio::time::timeout(Duration::from_millis(ms), publish(adapter.as_ref())).await;
            // Whoever the server accepted a message for gets a mark, even
            // though the call that sent it is gone.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let mut unmarked = Vec::new();
                for address in counts(&sink).keys() {
                    if !marked(&store, address).await {
                        unmarked.push(address.clone());
                    }
                }
                if unmarked.is_empty() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "mailed without a mark after a cancel at {ms} ms: {unmarked:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        loop {
            match publish(adapter.as_ref()).await {
                Ok(_) => break,
                Err(e) if e.class == ErrorClass::Unfinished => continue,
                Err(e) => panic!("{e}"),
            }
        }
        let counts = counts(&sink);
        for address in &to {
            assert_eq!(counts.get(*address), Some(&1), "{address}: {counts:?}");
        }
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
        // Marked as refused for good, so no later batch or retry tries again.
        assert_eq!(
            store
                .load("newsletter/sent/post-7-target-9", "nobody@example.org")
                .await
                .unwrap(),
            Some(Secret::new("rejected: 550 5.1.1 no such user"))
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
        // The `javascript:` link goes, its text stays; raw HTML is escaped;
        // the second line continues the quote (CommonMark's lazy line).
        assert_eq!(
            plain_text(md),
            "Title\n\n> quoted <b>\n> x pic (https://e.org/p.png)"
        );
        assert_eq!(
            html(md),
            "<!DOCTYPE html>\n<html>\n<body>\n<h1>Title</h1>\n<blockquote>\n<p>quoted &lt;b&gt;<br>\nx <a href=\"https://e.org/p.png\">pic</a></p>\n</blockquote>\n</body>\n</html>\n"
        );
        // `_italic_` and `*italic*` both render.
        assert_eq!(
            html("an _italic_ and *another* word"),
            "<!DOCTYPE html>\n<html>\n<body>\n<p>an <em>italic</em> and <em>another</em> word</p>\n</body>\n</html>\n"
        );
        assert_eq!(plain_text("an _italic_ word"), "an italic word");
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
        assert_eq!(
            adapter.idempotency(),
            Idempotency::honoured_for(Idempotency::FOREVER)
        );
        assert_eq!(adapter.media_rule(), clarion_core::MediaRule::NONE);
        let long = "word ".repeat(30);
        let post = OutboundPost {
            // CommonMark: `**` before a space does not close, so trim.
            text: format!("\n**{}**\nbody", long.trim_end()),
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
            budget: std::time::Duration::from_secs(30),
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
            batch_size: DEFAULT_BATCH_SIZE,
            sending: Arc::default(),
            resume: Mutex::default(),
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
