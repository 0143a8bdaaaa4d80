//! The post service: the one path by which the CLI, the HTTP API and
//! `content sync` create, schedule and cancel posts. Content is rendered and
//! validated for every channel first; nothing is stored or queued unless all
//! of it is valid.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clarion_content::{
    ContentError, ContentLibrary, PlannedTarget, PostFile, PostSource, plan_file, render_targets,
};
use clarion_core::AdapterRegistry;
use clarion_store::{NewPost, NewTarget, PostDetail, Store, SyncOutcome, now_ms};
use tracing::warn;

use crate::{PublishQueue, ServiceError};

/// How far in the past an explicit `at` may be (clock skew between the
/// author's machine and the server) before it is refused.
const PAST_TOLERANCE_MS: i64 = 60_000;

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
}

/// What `content sync` did with one file.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub path: String,
    pub post_id: i32,
    pub outcome: SyncOutcome,
    pub queued: usize,
    pub locked_channels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PostService {
    store: Store,
    queue: PublishQueue,
    registry: Arc<AdapterRegistry>,
    library: Arc<ContentLibrary>,
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
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Validates, stores and queues a new post.
    pub async fn create(&self, input: PostInput) -> Result<PostDetail, ServiceError> {
        if input.channels.is_empty() {
            return Err(ServiceError::BadRequest(
                "channels: give at least one channel".into(),
            ));
        }
        for channel in input.overrides.keys() {
            if !input.channels.contains(channel) {
                return Err(ServiceError::BadRequest(format!(
                    "overrides: channel `{channel}` is not one of this post's channels"
                )));
            }
        }
        let at = scheduled_time(input.at, input.draft)?;
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
        };
        let planned = render_targets(&self.library, source_for, &input.channels, &self.registry)
            .map_err(ServiceError::Invalid)?;
        let new = NewPost {
            source_key: None,
            body: input.body.clone(),
            template: input.template.clone(),
            vars: serde_json::Value::Object(input.vars.clone()),
            campaign: input.campaign.clone(),
            author: input.author.clone(),
            scheduled_at_ms: at,
            content_hash: String::new(),
            targets: new_targets(planned, &input.overrides),
        };
        let (detail, jobs) = self.store.create_post(new).await?;
        self.queue_or_leave_to_sweeper(&jobs).await;
        Ok(detail)
    }

    /// Schedules a draft, or moves a scheduled post, to `at`.
    pub async fn schedule(&self, id: i32, at: DateTime<Utc>) -> Result<PostDetail, ServiceError> {
        let at_ms = scheduled_time(Some(at), false)?.unwrap_or(at.timestamp_millis());
        let (detail, jobs) = self.store.schedule_post(id, at_ms).await?;
        self.queue_or_leave_to_sweeper(&jobs).await;
        Ok(detail)
    }

    pub async fn cancel(&self, id: i32) -> Result<PostDetail, ServiceError> {
        Ok(self.store.cancel_post(id).await?)
    }

    /// Renders and validates every file for every channel. Pure: nothing is stored.
    pub fn plan(&self, files: &[PostFile]) -> Result<Vec<Vec<PlannedTarget>>, Vec<ContentError>> {
        let mut plans = Vec::with_capacity(files.len());
        let mut errors = Vec::new();
        for file in files {
            match plan_file(&self.library, file, &self.registry) {
                Ok(plan) => plans.push(plan),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(plans)
        } else {
            Err(errors)
        }
    }

    /// Upserts post files: all are validated first, and if any is invalid
    /// nothing is written. The same file twice creates no duplicate; an
    /// edited file updates its targets that have not gone out yet.
    pub async fn sync(
        &self,
        files: &[PostFile],
        mut progress: impl FnMut(&str),
    ) -> Result<Vec<SyncReport>, ServiceError> {
        let plans = self.plan(files).map_err(ServiceError::Invalid)?;
        let mut posts = Vec::with_capacity(files.len());
        let mut errors = Vec::new();
        for (file, plan) in files.iter().zip(plans) {
            let new = file_post(file, plan);
            // A new or edited post must be in the future; an unchanged one
            // (already synced, maybe already published) is fine as it is.
            let unchanged = self
                .store
                .source_hash(&file.source_key)
                .await?
                .is_some_and(|hash| hash == new.content_hash);
            if !unchanged && file.at.timestamp_millis() < now_ms() - PAST_TOLERANCE_MS {
                errors.push(
                    ContentError::new(format!("`at` {} is in the past", file.at.to_rfc3339()))
                        .in_file(file.path.clone())
                        .at_line(1),
                );
            }
            posts.push(new);
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        let mut reports = Vec::with_capacity(files.len());
        for (file, new) in files.iter().zip(posts) {
            let result = self.store.sync_post(new).await?;
            self.queue_or_leave_to_sweeper(&result.enqueue).await;
            progress(&file.path);
            reports.push(SyncReport {
                path: file.path.clone(),
                post_id: result.post_id,
                outcome: result.outcome,
                queued: result.enqueue.len(),
                locked_channels: result.locked_channels,
            });
        }
        Ok(reports)
    }

    /// The targets are stored; if the queue write fails the sweeper re-queues
    /// them once due, so the post is late at worst, never lost.
    async fn queue_or_leave_to_sweeper(&self, jobs: &[clarion_store::Enqueue]) {
        if let Err(e) = self.queue.enqueue(jobs).await {
            warn!(error = %e, count = jobs.len(), "could not queue publish jobs; the sweeper will re-queue them when due");
        }
    }
}

fn scheduled_time(at: Option<DateTime<Utc>>, draft: bool) -> Result<Option<i64>, ServiceError> {
    if draft {
        // A draft has no time until `post schedule` gives it one.
        return Ok(None);
    }
    let now = now_ms();
    match at {
        None => Ok(Some(now)),
        Some(t) if t.timestamp_millis() < now - PAST_TOLERANCE_MS => {
            Err(ServiceError::BadRequest(format!(
                "at: {} is in the past; give a future time, or leave it out to publish now",
                t.to_rfc3339()
            )))
        }
        Some(t) => Ok(Some(t.timestamp_millis())),
    }
}

fn new_targets(
    planned: Vec<PlannedTarget>,
    overrides: &BTreeMap<String, String>,
) -> Vec<NewTarget> {
    planned
        .into_iter()
        .map(|p| NewTarget {
            override_body: overrides.get(&p.channel).cloned(),
            channel: p.channel,
            rendered_text: p.text,
            parts: p.parts,
            media: p.media,
        })
        .collect()
}

fn file_post(file: &PostFile, plan: Vec<PlannedTarget>) -> NewPost {
    let targets = new_targets(plan, &file.overrides);
    let vars = serde_json::Value::Object(file.vars.clone());
    let fingerprint = serde_json::json!({
        "body": file.body, "template": file.template, "vars": vars,
        "campaign": file.campaign, "author": file.author, "at": file.at.timestamp_millis(),
        "targets": targets.iter().map(|t| (&t.channel, &t.parts, &t.media, &t.override_body)).collect::<Vec<_>>(),
    });
    NewPost {
        source_key: Some(file.source_key.clone()),
        body: file.body.clone(),
        template: file.template.clone(),
        vars,
        campaign: file.campaign.clone(),
        author: file.author.clone(),
        scheduled_at_ms: Some(file.at.timestamp_millis()),
        content_hash: fnv1a64(fingerprint.to_string().as_bytes()),
        targets,
    }
}

/// A hash that is stable across Rust releases (unlike `DefaultHasher`):
/// stored hashes must still compare equal after an upgrade.
fn fnv1a64(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), "cbf29ce484222325");
        assert_eq!(fnv1a64(b"a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn past_times_are_refused_and_drafts_have_no_time() {
        let past = Utc::now() - chrono::Duration::hours(2);
        let err = scheduled_time(Some(past), false).unwrap_err();
        assert!(err.to_string().starts_with("at: "), "{err}");
        assert_eq!(scheduled_time(Some(past), true).unwrap(), None);
        let soon = Utc::now() + chrono::Duration::minutes(5);
        assert_eq!(
            scheduled_time(Some(soon), false).unwrap(),
            Some(soon.timestamp_millis())
        );
    }
}
