//! The post service: the one path by which the CLI, the HTTP API and
//! `content sync` create, schedule and cancel posts. Content is rendered and
//! validated for every channel first; nothing is stored or queued unless all
//! of it is valid.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use clarion_content::MediaDir;
use clarion_content::{
    ContentError, ContentLibrary, PlannedTarget, PostSource, RenderStep, render_targets_by_step,
};
use clarion_core::AdapterRegistry;
use clarion_store::{NewPost, NewTarget, PostDetail, ReplyRef, Store, StoreError, now_ms};

use crate::create_writer::{CreateWriter, queue_or_leave_to_sweeper};
use crate::{ItemError, PublishQueue, ServiceError};

mod approval;
pub(crate) mod content_sync;
pub(crate) mod edit;
pub(crate) mod import;
mod preview;
pub(crate) mod retry;
mod tracking;

pub use content_sync::SyncReport;
pub use import::{ImportPost, import_key};
pub use tracking::KnownLinks;

/// How far in the past an explicit `at` may be (clock skew between the
/// author's machine and the server) before it is refused.
pub(crate) const PAST_TOLERANCE_MS: i64 = 60_000;

/// A post as the CLI or API describes it.
#[derive(Debug, Clone, Default)]
pub struct PostInput {
    pub body: String,
    pub template: Option<String>,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub campaign: Option<String>,
    pub author: Option<String>,
    pub channels: Vec<String>,
    /// Per-channel body replacing `body` on that channel.
    pub overrides: BTreeMap<String, String>,
    /// When to publish; None with `draft = false` means now.
    pub at: Option<DateTime<Utc>>,
    pub draft: bool,
    /// Split into thread parts at lines that are exactly `---`.
    pub thread: bool,
    /// Attachments (local files), sent with the first part.
    pub media: Vec<clarion_core::Media>,
    /// The platform message this post answers (an inbox reply): it goes out
    /// as a threaded reply on its one channel.
    pub reply_to: Option<ReplyRef>,
    /// Keep a campaign post's links as written (not tracked).
    pub untracked: bool,
    /// A/B variants: `(name, text)`. Channel i carries variant i mod n (as
    /// its text, unless it has an override); reports compare variants.
    pub variants: Vec<(String, String)>,
    /// The whole post is this A/B variant (a test over time slots: one
    /// post per variant, see [`PostService::create_variants_in_slots`]).
    pub variant: Option<String>,
    /// Tracked links the post already has, per channel: destination ->
    /// code. An edit or a re-synced file keeps its codes (links already
    /// shared keep working and counting); only new destinations get new ones.
    pub known_links: tracking::KnownLinks,
}

/// A post that passed every check of [`PostService::check_many`], ready to
/// store. Only the service makes one, so nothing unchecked is stored.
#[derive(Debug, Clone)]
pub struct ValidPost(NewPost);

#[derive(Debug, Clone)]
pub struct PostService {
    store: Store,
    queue: PublishQueue,
    registry: Arc<AdapterRegistry>,
    library: Arc<ContentLibrary>,
    /// Started on the first create, shared by every clone (one per process).
    writer: Arc<OnceLock<CreateWriter>>,
    group_commit: bool,
    /// Where media named in a request must be (see [`MediaDir`]).
    media: MediaDir,
    /// `{base}/r/`: campaign posts' links are rewritten into tracked links.
    link_base: Option<String>,
}

impl PostService {
    pub fn new(
        store: Store,
        queue: PublishQueue,
        registry: Arc<AdapterRegistry>,
        library: Arc<ContentLibrary>,
    ) -> Self {
        Self {
            store,
            queue,
            registry,
            library,
            writer: Arc::default(),
            group_commit: true,
            media: MediaDir::default(),
            link_base: None,
        }
    }

    /// Campaign posts' links become `{base_url}/r/{code}` tracked links.
    pub fn with_link_tracking(mut self, base_url: &str) -> Self {
        self.link_base = Some(base_url.trim_end_matches('/').to_owned());
        self
    }

    /// With `false`, every create is its own transaction (how it was before
    /// group commit; `clarion bench create --no-group-commit` compares).
    pub fn with_group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// The configured channels.
    pub fn registry(&self) -> &AdapterRegistry {
        &self.registry
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Media in requests must name files inside `media` (`media_dir`).
    pub fn with_media_dir(mut self, media: MediaDir) -> Self {
        self.media = media;
        self
    }

    pub fn media_dir(&self) -> &MediaDir {
        &self.media
    }

    /// Validates, stores and queues a new post; returns after its commit.
    /// The same path as [`Self::create_many`] with one post.
    pub async fn create(&self, input: PostInput) -> Result<PostDetail, ServiceError> {
        let post = self.prepare(input, None).map_err(Refusal::into_single)?;
        self.store_valid(vec![ValidPost(post)])
            .await?
            .pop()
            .ok_or_else(|| {
                StoreError::Inconsistent("a created post was not returned".into()).into()
            })
    }

    /// An A/B test over time slots: one post per variant on all of
    /// `input`'s channels, the first at `input.at` (or now), each next one
    /// `every` later; each post's targets carry its variant, so reports
    /// compare them. All or nothing, like [`Self::create_many`].
    pub async fn create_variants_in_slots(
        &self,
        mut input: PostInput,
        every: chrono::Duration,
    ) -> Result<Vec<PostDetail>, ServiceError> {
        let variants = std::mem::take(&mut input.variants);
        check_variants(&variants).map_err(Refusal::into_single)?;
        if every <= chrono::Duration::zero() {
            return Err(ServiceError::BadRequest(
                "variant_every: the time between slots must be positive".into(),
            ));
        }
        if input.draft {
            return Err(ServiceError::BadRequest(
                "variant_every: time slots need a schedule; a draft has none".into(),
            ));
        }
        let first = input.at.unwrap_or_else(Utc::now);
        let mut slot = first;
        let mut inputs = Vec::with_capacity(variants.len());
        for (name, text) in variants {
            inputs.push(PostInput {
                body: text,
                at: Some(slot),
                variant: Some(name),
                ..input.clone()
            });
            slot += every;
        }
        self.create_many(inputs).await
    }

    /// Validates every post first: if any is invalid nothing is stored and
    /// the error names each bad one by index and field. Otherwise all are
    /// stored in one transaction and queued. Details come back in order.
    pub async fn create_many(
        &self,
        inputs: Vec<PostInput>,
    ) -> Result<Vec<PostDetail>, ServiceError> {
        let valid = self
            .check_many(inputs)
            .map_err(ServiceError::InvalidItems)?;
        self.store_valid(valid).await
    }

    /// Renders and validates posts without storing anything: every post
    /// ready to store, or every problem, by index (into `inputs`) and field.
    pub fn check_many(&self, inputs: Vec<PostInput>) -> Result<Vec<ValidPost>, Vec<ItemError>> {
        self.check_each(inputs.into_iter().map(|input| (input, None)))
    }

    /// [`Self::check_many`] of posts with their import keys (None: not an import).
    fn check_each(
        &self,
        inputs: impl ExactSizeIterator<Item = (PostInput, Option<String>)>,
    ) -> Result<Vec<ValidPost>, Vec<ItemError>> {
        let mut valid = Vec::with_capacity(inputs.len());
        let mut errors = Vec::new();
        for (index, (input, import_key)) in inputs.enumerate() {
            match self.prepare(input, import_key) {
                Ok(post) => valid.push(ValidPost(post)),
                Err(refusal) => errors.extend(refusal.into_items(index)),
            }
        }
        if errors.is_empty() {
            Ok(valid)
        } else {
            Err(errors)
        }
    }

    /// Stores checked posts (all or none) and queues them; returns after
    /// the commit. Concurrent calls share one transaction (group commit, see
    /// `create_writer`). Posts from [`Self::check_import`] go through
    /// [`Self::store_import`], which says which were skipped.
    pub async fn store_valid(
        &self,
        posts: Vec<ValidPost>,
    ) -> Result<Vec<PostDetail>, ServiceError> {
        Ok(self.write(posts).await?.into_iter().flatten().collect())
    }

    /// Each post's details, or None where its import key was already stored.
    async fn write(&self, posts: Vec<ValidPost>) -> Result<Vec<Option<PostDetail>>, ServiceError> {
        let posts: Vec<NewPost> = posts.into_iter().map(|ValidPost(p)| p).collect();
        if !self.group_commit {
            let (details, jobs) = self.store.create_posts(&posts).await?;
            queue_or_leave_to_sweeper(&self.queue, &jobs).await;
            return Ok(details);
        }
        let writer = self
            .writer
            .get_or_init(|| CreateWriter::spawn(self.store.clone(), self.queue.clone()));
        Ok(writer.write(posts).await?)
    }

    /// Checks one post and renders it for each of its channels.
    fn prepare(&self, input: PostInput, import_key: Option<String>) -> Result<NewPost, Refusal> {
        if input.channels.is_empty() {
            return Err(Refusal::field("channels", "give at least one channel"));
        }
        // One target per post and channel (the store enforces it too).
        if let Some(twice) = input
            .channels
            .iter()
            .enumerate()
            .find_map(|(i, c)| input.channels[..i].contains(c).then_some(c))
        {
            return Err(Refusal::field(
                "channels",
                format!("channel `{twice}` is listed twice"),
            ));
        }
        if let Some(channel) = input.overrides.keys().find(|c| !input.channels.contains(c)) {
            return Err(Refusal::field(
                "overrides",
                format!("channel `{channel}` is not one of this post's channels"),
            ));
        }
        let (input, variant_of) = spread_variants(input)?;
        refuse_empty_text(&input)?;
        // Media only from the media folder: canonical paths, sizes measured.
        let input = PostInput {
            media: (input.media.iter().enumerate())
                .map(|(i, m)| self.media.resolve(m).map_err(|e| format!("[{i}] {e}")))
                .collect::<Result<_, _>>()
                .map_err(|m| Refusal::field("media", m))?,
            ..input
        };
        let at = scheduled_time(input.at, input.draft).map_err(|m| Refusal::field("at", m))?;
        let source_for = |channel: &str| PostSource {
            body: input
                .overrides
                .get(channel)
                .cloned()
                .unwrap_or_else(|| input.body.clone()),
            template: input.template.clone(),
            vars: input.vars.clone(),
            campaign: input.campaign.clone(),
            thread: input.thread,
            media: input.media.clone(),
            reply: input.reply_to.is_some(),
        };
        let planned =
            render_targets_by_step(&self.library, source_for, &input.channels, &self.registry)
                .map_err(|problems| {
                    Refusal::Content(
                        problems
                            .into_iter()
                            .map(|(step, error)| (field_of(step, &error, &input), error))
                            .collect(),
                    )
                })?;
        // A template or a thread made of `---` lines alone may render nothing.
        if let Some(empty) = planned
            .iter()
            .find(|p| p.parts.iter().all(|x| x.trim().is_empty()))
        {
            let field = if input.overrides.contains_key(&empty.channel) {
                "overrides"
            } else {
                "body"
            };
            return Err(Refusal::field(
                field,
                format!("channel `{}`: the text renders empty", empty.channel),
            ));
        }
        if input.reply_to.is_some() && input.channels.len() > 1 {
            return Err(Refusal::field(
                "channels",
                "a reply goes to the one channel of the message it answers",
            ));
        }
        let links = match (&self.link_base, &input.campaign) {
            (Some(base), Some(campaign)) if !input.untracked && input.reply_to.is_none() => {
                let mut planned = planned;
                let links = tracking::track_links(
                    &mut planned,
                    base,
                    campaign,
                    &self.registry,
                    &input.known_links,
                )
                .map_err(|m| Refusal::field("body", m))?;
                (planned, links)
            }
            _ => {
                let none = vec![Vec::new(); planned.len()];
                (planned, none)
            }
        };
        let (planned, links) = links;
        let mut targets = new_targets(planned, &input.overrides, input.reply_to.as_ref());
        for (target, links) in targets.iter_mut().zip(links) {
            target.links = links;
            target.variant = variant_of.get(&target.channel).cloned();
        }
        Ok(NewPost {
            source_key: None,
            import_key,
            body: input.body,
            template: input.template,
            vars: serde_json::Value::Object(input.vars),
            campaign: input.campaign,
            author: input.author,
            scheduled_at_ms: at,
            content_hash: String::new(),
            targets,
        })
    }

    /// Schedules a draft, or moves a scheduled post, to `at`.
    pub async fn schedule(&self, id: i32, at: DateTime<Utc>) -> Result<PostDetail, ServiceError> {
        let at_ms = scheduled_time(Some(at), false)
            .map_err(|m| ServiceError::BadRequest(format!("at: {m}")))?
            .unwrap_or(at.timestamp_millis());
        let post = self.store.post_detail(id).await?.post;
        if post.approval.as_deref() == Some(clarion_store::team::PENDING_APPROVAL) {
            return Err(StoreError::Conflict {
                id,
                reason: "it waits for approval: approve it (which schedules it) instead".into(),
            }
            .into());
        }
        let (detail, jobs) = self.store.schedule_post(id, at_ms).await?;
        self.queue_or_leave_to_sweeper(&jobs).await;
        Ok(detail)
    }

    pub async fn cancel(&self, id: i32) -> Result<PostDetail, ServiceError> {
        Ok(self.store.cancel_post(id).await?)
    }

    /// The targets are stored; if the queue write fails the sweeper re-queues
    /// them once due, so the post is late at worst, never lost.
    async fn queue_or_leave_to_sweeper(&self, jobs: &[clarion_store::Enqueue]) {
        queue_or_leave_to_sweeper(&self.queue, jobs).await;
    }
}

/// Why one post was refused.
enum Refusal {
    /// A field of the request itself (`channels`, `overrides`, `at`).
    Field {
        field: &'static str,
        message: String,
    },
    /// Rendering or a platform's rules, per channel, with the field at fault.
    Content(Vec<(String, ContentError)>),
}

impl Refusal {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Field {
            field,
            message: message.into(),
        }
    }

    /// As a single create reports it: `field: message`, or the content errors.
    fn into_single(self) -> ServiceError {
        match self {
            Self::Field { field, message } => {
                ServiceError::BadRequest(format!("{field}: {message}"))
            }
            Self::Content(errors) => {
                ServiceError::Invalid(errors.into_iter().map(|(_, e)| e).collect())
            }
        }
    }

    fn into_items(self, index: usize) -> Vec<ItemError> {
        match self {
            Self::Field { field, message } => vec![ItemError {
                index,
                field: field.to_owned(),
                message,
            }],
            Self::Content(errors) => errors
                .into_iter()
                .map(|(field, error)| ItemError {
                    index,
                    field,
                    message: error.to_string(),
                })
                .collect(),
        }
    }
}

/// The input field a content error is about: an unknown channel is in
/// `channels`; a failure inside a named template is the `template`'s; the
/// rest is the text of the body (or of the channel's override).
fn field_of(step: RenderStep, error: &ContentError, input: &PostInput) -> String {
    let text_field = || match error.channel.as_deref() {
        Some(channel) if input.overrides.contains_key(channel) => format!("overrides.{channel}"),
        _ => "body".to_owned(),
    };
    match step {
        RenderStep::Channel => "channels".to_owned(),
        RenderStep::Render
            if error.file.is_some() || error.message.starts_with("unknown template") =>
        {
            "template".to_owned()
        }
        RenderStep::Render | RenderStep::Validate => text_field(),
    }
}

/// A variant name: 1 to 32 letters, digits, `-` or `_`.
fn check_variant_name(name: &str, field: &'static str) -> Result<(), Refusal> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Refusal::field(
            field,
            format!("`{name}`: a variant name is 1 to 32 letters, digits, - or _"),
        ))
    }
}

/// Two or more variants, each named once, none empty.
fn check_variants(variants: &[(String, String)]) -> Result<(), Refusal> {
    if variants.len() < 2 {
        return Err(Refusal::field("variants", "give at least two variants"));
    }
    for (i, (name, text)) in variants.iter().enumerate() {
        check_variant_name(name, "variants")?;
        if variants[..i].iter().any(|(other, _)| other == name) {
            return Err(Refusal::field(
                "variants",
                format!("`{name}` is named twice"),
            ));
        }
        if text.trim().is_empty() {
            return Err(Refusal::field(
                "variants",
                format!("`{name}`: the text is empty"),
            ));
        }
    }
    Ok(())
}

/// Gives each channel its variant's text (as an override, unless it has
/// its own) and says which variant each channel carries.
fn spread_variants(mut input: PostInput) -> Result<(PostInput, BTreeMap<String, String>), Refusal> {
    let mut variant_of = BTreeMap::new();
    if let Some(name) = &input.variant {
        if !input.variants.is_empty() {
            return Err(Refusal::field(
                "variant",
                "give either `variants` (spread across channels) or `variant` (this whole post), not both",
            ));
        }
        check_variant_name(name, "variant")?;
        for channel in &input.channels {
            variant_of.insert(channel.clone(), name.clone());
        }
        return Ok((input, variant_of));
    }
    if input.variants.is_empty() {
        return Ok((input, variant_of));
    }
    let variants = std::mem::take(&mut input.variants);
    check_variants(&variants)?;
    if input.channels.len() < variants.len() {
        return Err(Refusal::field(
            "variants",
            format!(
                "{} variants need at least {} channels: each channel carries one",
                variants.len(),
                variants.len()
            ),
        ));
    }
    for (i, channel) in input.channels.iter().enumerate() {
        let (name, text) = &variants[i % variants.len()];
        variant_of.insert(channel.clone(), name.clone());
        input
            .overrides
            .entry(channel.clone())
            .or_insert_with(|| text.clone());
    }
    if input.body.trim().is_empty() {
        input.body = variants[0].1.clone();
    }
    Ok((input, variant_of))
}

/// Empty or whitespace-only text is refused, naming the field: there is
/// nothing to publish. (With a template the body may be empty.)
fn refuse_empty_text(input: &PostInput) -> Result<(), Refusal> {
    if input.template.is_none() && input.body.trim().is_empty() {
        return Err(Refusal::field(
            "body",
            "the text is empty; give the text of the post",
        ));
    }
    if let Some(channel) = input
        .overrides
        .iter()
        .find_map(|(channel, body)| body.trim().is_empty().then_some(channel))
    {
        return Err(Refusal::field(
            "overrides",
            format!("channel `{channel}`: the text is empty"),
        ));
    }
    Ok(())
}

/// The moment a post is due, or None for a draft; the error says why `at`
/// is refused.
fn scheduled_time(at: Option<DateTime<Utc>>, draft: bool) -> Result<Option<i64>, String> {
    if draft {
        // A draft has no time until `post schedule` gives it one.
        return Ok(None);
    }
    let now = now_ms();
    match at {
        None => Ok(Some(now)),
        Some(t) if t.timestamp_millis() < now - PAST_TOLERANCE_MS => Err(format!(
            "{} is in the past; give a future time, or leave it out to publish now",
            t.to_rfc3339()
        )),
        Some(t) => Ok(Some(t.timestamp_millis())),
    }
}

fn new_targets(
    planned: Vec<PlannedTarget>,
    overrides: &BTreeMap<String, String>,
    reply: Option<&ReplyRef>,
) -> Vec<NewTarget> {
    planned
        .into_iter()
        .map(|p| NewTarget {
            override_body: overrides.get(&p.channel).cloned(),
            channel: p.channel,
            rendered_text: p.text,
            parts: p.parts,
            media: p.media,
            reply: reply.cloned(),
            links: Vec::new(),
            variant: None,
        })
        .collect()
}

/// A hash that is stable across Rust releases (unlike `DefaultHasher`):
/// stored hashes must still compare equal after an upgrade.
fn fnv1a64(bytes: &[u8]) -> String {
    format!("{:016x}", clarion_core::hash::fnv1a64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_go_round_the_channels_and_bad_ones_are_named() {
        let input = |variants: &[(&str, &str)], channels: &[&str]| PostInput {
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            variants: variants
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
            ..PostInput::default()
        };
        let Ok((spread, of)) = spread_variants(input(&[("A", "a"), ("B", "b")], &["x", "y", "z"]))
        else {
            panic!("refused");
        };
        assert_eq!(of["x"], "A");
        assert_eq!(of["y"], "B");
        assert_eq!(of["z"], "A");
        assert_eq!(spread.overrides["y"], "b");
        assert_eq!(
            spread.body, "a",
            "the post's own text is the first variant's"
        );
        let error = |variants: &[(&str, &str)], channels: &[&str]| match spread_variants(input(
            variants, channels,
        )) {
            Err(Refusal::Field { field, message }) => {
                assert_eq!(field, "variants");
                message
            }
            Err(_) => panic!("not a field error"),
            Ok(_) => panic!("accepted"),
        };
        assert!(error(&[("A", "a")], &["x"]).contains("at least two"));
        assert!(error(&[("A", "a"), ("A", "b")], &["x", "y"]).contains("named twice"));
        assert!(error(&[("A", "a"), ("B c", "b")], &["x", "y"]).contains("variant name"));
        assert!(error(&[("A", "a"), ("B", " ")], &["x", "y"]).contains("empty"));
        assert!(error(&[("A", "a"), ("B", "b")], &["x"]).contains("need at least 2 channels"));
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), "cbf29ce484222325");
        assert_eq!(fnv1a64(b"a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn past_times_are_refused_and_drafts_have_no_time() {
        let past = Utc::now() - chrono::Duration::hours(2);
        let err = scheduled_time(Some(past), false).unwrap_err();
        assert!(err.contains("is in the past"), "{err}");
        assert_eq!(scheduled_time(Some(past), true).unwrap(), None);
        let soon = Utc::now() + chrono::Duration::minutes(5);
        assert_eq!(
            scheduled_time(Some(soon), false).unwrap(),
            Some(soon.timestamp_millis())
        );
    }
}
