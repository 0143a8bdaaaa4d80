//! `content plan` and `content sync`: the posts folder as the truth, like a
//! Terraform plan and apply.
//!
//! A post file is found by the `id` in its front matter, so a renamed or
//! moved file updates the same post; the path is only where the file is now.
//! [`plan_content`] is the one validation both commands run: every file
//! parsed, rendered and checked for every channel, ids unique, a new or
//! changed post in the future. It compares the files with the stored posts
//! and says what a sync would do: create, update (which channels change),
//! cancel (a post whose file is gone) or leave alone. [`PostService::sync`]
//! makes that plan, writes an id into each file that has none, then applies
//! it. Posts created through the CLI or API are never part of it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use clarion_content::{
    ContentError, ContentLibrary, PlannedTarget, PostFile, check_ids, is_valid_id, plan_file,
    write_id,
};
use clarion_core::{AdapterRegistry, TargetStatus};
use clarion_store::{NewPost, NewTargetLink, PostDetail, Store, SyncOutcome, now_ms};

use super::{PAST_TOLERANCE_MS, PostService, fnv1a64, new_targets, tracking};
use crate::ServiceError;

/// What a sync does with one file's post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// No post has this file's id yet: one is created.
    Create,
    /// The file changed (or moved): the post is updated.
    Update,
    /// Nothing to do.
    Unchanged,
}

/// What a sync does with one channel of an updated post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetChange {
    /// A channel new to the post: a target is created.
    Add,
    /// The target is rewritten; what differs: `text`, `time`, `media`, or
    /// `scheduled again` for a cancelled one.
    Change(Vec<&'static str>),
    /// Rewritten as it is.
    Same,
    /// Already handed to a platform, or final: left as it is.
    Locked(TargetStatus),
    /// Dropped from the file: cancelled if it has not gone out.
    Remove,
}

/// One channel of a file's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlan {
    pub channel: String,
    pub change: TargetChange,
    /// The rendered text (empty for a removed channel).
    pub text: String,
    /// Tracked links this sync registers (a link already tracked keeps
    /// its code and is not listed).
    pub new_links: Vec<NewTargetLink>,
}

/// What a sync does with one file.
#[derive(Debug, Clone)]
pub struct FilePlan {
    /// The file, as shown in messages.
    pub path: String,
    /// Where it is under the posts folder.
    pub relative_path: String,
    /// The id in the file; None: the sync writes a new one into it.
    pub id: Option<String>,
    /// The stored post it is, if any.
    pub post_id: Option<i32>,
    pub action: FileAction,
    /// The post's previous file, when the file was renamed or moved.
    pub moved_from: Option<String>,
    pub at: DateTime<Utc>,
    /// Per channel: for a create every one is `Add`.
    pub targets: Vec<TargetPlan>,
    /// The stored post's key and path (they change on a rename or adoption).
    stored_source: Option<(Option<String>, Option<String>)>,
    new: NewPost,
}

/// A post whose file is gone, with targets that have not gone out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelPlan {
    pub post_id: i32,
    /// Its id (`source_key`).
    pub id: String,
    /// Where its file was at the last sync, under the posts folder.
    pub relative_path: String,
    /// Channels whose targets are `draft` or `scheduled`.
    pub channels: Vec<String>,
}

/// What `content sync` would do; `content plan` prints it.
#[derive(Debug, Clone)]
pub struct ContentPlan {
    /// One per file, in the order given (sorted by path).
    pub files: Vec<FilePlan>,
    pub cancels: Vec<CancelPlan>,
    /// Posts whose file is gone with nothing left to cancel: their path is forgotten.
    forget: Vec<i32>,
}

impl ContentPlan {
    pub fn count(&self, action: FileAction) -> usize {
        self.files.iter().filter(|f| f.action == action).count()
    }

    /// Files without an id, into which a sync writes one.
    pub fn files_without_id(&self) -> usize {
        self.files.iter().filter(|f| f.id.is_none()).count()
    }
}

/// What `content sync` did with one file.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub path: String,
    pub post_id: i32,
    pub action: FileAction,
    pub moved_from: Option<String>,
    pub queued: usize,
    /// Channels left alone: already publishing or published.
    pub locked_channels: Vec<String>,
}

/// A post whose file is gone, as `content sync` left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelReport {
    pub post_id: i32,
    pub relative_path: String,
    /// The channels actually cancelled (a target claimed meanwhile is not).
    pub channels: Vec<String>,
}

/// What `content sync` did.
#[derive(Debug, Clone)]
pub struct ContentSync {
    pub files: Vec<SyncReport>,
    pub cancelled: Vec<CancelReport>,
    /// Files an id was written into (commit them).
    pub ids_written: Vec<String>,
}

/// Validates every file and compares the files with the stored posts. The
/// one validation `content plan` and `content sync` share; writes nothing.
/// Every problem is returned (`ServiceError::Invalid`), each with its file
/// and line.
///
/// With `link_base`, a campaign post's links are tracked as on every other
/// path (see `tracking`); a stored post's links keep their codes, so an
/// unchanged file plans no change and the plan shows the links as sent.
pub async fn plan_content(
    store: &Store,
    library: &ContentLibrary,
    registry: &AdapterRegistry,
    link_base: Option<&str>,
    files: &[PostFile],
) -> Result<ContentPlan, ServiceError> {
    let mut errors = check_ids(files);
    let keys: Vec<String> = files.iter().filter_map(|f| f.id.clone()).collect();
    let stored = store.file_posts(&keys).await?;
    let mut links_of_post: HashMap<i32, Vec<clarion_store::link::Model>> = HashMap::new();
    if link_base.is_some() {
        let ids: Vec<i32> = stored.iter().map(|d| d.post.id).collect();
        for link in store.post_links(&ids).await? {
            if let Some(post) = link.post_id {
                links_of_post.entry(post).or_default().push(link);
            }
        }
    }
    let by_key: HashMap<&str, &PostDetail> = stored
        .iter()
        .filter_map(|d| d.post.source_key.as_deref().map(|key| (key, d)))
        .collect();
    let claimed: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let mut matched = HashSet::new();
    let now = now_ms();
    let mut plans = Vec::with_capacity(files.len());
    for file in files {
        let found = find_post(file, &stored, &by_key, &claimed);
        let planned = plan_file(library, file, registry);
        let (found, planned) = match (found, planned) {
            (Ok(found), Ok(planned)) => (found, planned),
            (found, planned) => {
                errors.extend(found.err());
                errors.extend(planned.err().into_iter().flatten());
                continue;
            }
        };
        if let Some(post) = found {
            matched.insert(post.post.id);
        }
        let tracked = match (link_base, &file.campaign) {
            (Some(base), Some(campaign)) => {
                let known = found
                    .and_then(|d| links_of_post.get(&d.post.id))
                    .map(|links| tracking::known_links(links))
                    .unwrap_or_default();
                let mut tracked = planned.clone();
                match tracking::track_links(&mut tracked, base, campaign, registry, &known) {
                    Ok(links) => Some((tracked, links)),
                    Err(message) => {
                        errors.push(ContentError::new(message).in_file(&file.path));
                        continue;
                    }
                }
            }
            _ => None,
        };
        let plan = file_plan(file, planned, tracked, found);
        if plan.action != FileAction::Unchanged
            && file.at.timestamp_millis() < now - PAST_TOLERANCE_MS
        {
            errors.push(
                ContentError::new(format!(
                    "`at` = {} is in the past; a new or changed post needs a future time \
                     (an unchanged one is left as it is)",
                    file.at.to_rfc3339()
                ))
                .in_file(&file.path)
                .at_line(file.at_line),
            );
        }
        plans.push(plan);
    }
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    let mut cancels = Vec::new();
    let mut forget = Vec::new();
    for gone in stored
        .iter()
        .filter(|d| d.post.source_path.is_some() && !matched.contains(&d.post.id))
    {
        let channels: Vec<String> = gone
            .targets
            .iter()
            .filter(|t| t.status().is_ok_and(TargetStatus::is_editable))
            .map(|t| t.channel.clone())
            .collect();
        if channels.is_empty() {
            forget.push(gone.post.id);
        } else {
            cancels.push(CancelPlan {
                post_id: gone.post.id,
                id: gone.post.source_key.clone().unwrap_or_default(),
                relative_path: gone.post.source_path.clone().unwrap_or_default(),
                channels,
            });
        }
    }
    Ok(ContentPlan {
        files: plans,
        cancels,
        forget,
    })
}

/// The stored post a file is: the one with its id; failing that, one
/// synced before ids existed from the same path (its key is that path).
/// A file without an id where a post with an id was synced from is
/// ambiguous (the id line was lost, or ids were never committed): refused,
/// saying which id to add, rather than guessed into a duplicate.
fn find_post<'a>(
    file: &PostFile,
    stored: &'a [PostDetail],
    by_key: &HashMap<&str, &'a PostDetail>,
    claimed: &HashSet<&str>,
) -> Result<Option<&'a PostDetail>, ContentError> {
    if let Some(found) = file.id.as_deref().and_then(|id| by_key.get(id)) {
        return Ok(Some(found));
    }
    let mut same_path = stored.iter().filter(|d| {
        d.post.source_path.as_deref() == Some(file.relative_path.as_str())
            && d.post
                .source_key
                .as_deref()
                .is_some_and(|key| !claimed.contains(key))
    });
    let Some(found) = same_path.next() else {
        return Ok(None);
    };
    let key = found.post.source_key.as_deref().unwrap_or_default();
    if !is_valid_id(key) {
        // Synced before ids existed: this file is that post.
        return Ok(Some(found));
    }
    if file.id.is_some() {
        // A new id at an old path: a different post; the old one's file is gone.
        return Ok(None);
    }
    Err(ContentError::new(format!(
        "this file has no `id`, but post {} was synced from this path with id `{key}`: \
         add `id = \"{key}\"` to its front matter if it is the same post, or an id of \
         its own if it is a different one (and commit the ids `content sync` writes)",
        found.post.id
    ))
    .in_file(&file.path)
    .at_line(file.id_line))
}

fn file_plan(
    file: &PostFile,
    planned: Vec<PlannedTarget>,
    tracked: Option<(Vec<PlannedTarget>, Vec<Vec<NewTargetLink>>)>,
    found: Option<&PostDetail>,
) -> FilePlan {
    let new = file_post(file, planned, tracked);
    let (action, targets, moved_from) = match found {
        None => (
            FileAction::Create,
            new.targets
                .iter()
                .map(|t| TargetPlan {
                    channel: t.channel.clone(),
                    change: TargetChange::Add,
                    text: t.rendered_text.clone(),
                    new_links: t.links.clone(),
                })
                .collect(),
            None,
        ),
        Some(stored) => {
            let moved_from = stored
                .post
                .source_path
                .clone()
                .filter(|path| *path != file.relative_path);
            let action = if stored.post.content_hash != new.content_hash || moved_from.is_some() {
                FileAction::Update
            } else {
                FileAction::Unchanged
            };
            let targets = if stored.post.content_hash == new.content_hash {
                Vec::new()
            } else {
                target_changes(&new, stored)
            };
            (action, targets, moved_from)
        }
    };
    FilePlan {
        path: file.path.clone(),
        relative_path: file.relative_path.clone(),
        id: file.id.clone(),
        post_id: found.map(|d| d.post.id),
        action,
        moved_from,
        at: file.at,
        targets,
        stored_source: found.map(|d| (d.post.source_key.clone(), d.post.source_path.clone())),
        new,
    }
}

/// Per channel, what an update does: the rules of `Store::sync_post`.
fn target_changes(new: &NewPost, stored: &PostDetail) -> Vec<TargetPlan> {
    let mut plans: Vec<TargetPlan> = new
        .targets
        .iter()
        .map(|wanted| {
            let current = stored.targets.iter().find(|t| t.channel == wanted.channel);
            let change = match current.map(|t| (t, t.status())) {
                None => TargetChange::Add,
                Some((_, Ok(TargetStatus::Cancelled))) => {
                    TargetChange::Change(vec!["scheduled again"])
                }
                Some((t, Ok(status))) if status.is_editable() => {
                    let mut what = Vec::new();
                    if t.rendered_text != wanted.rendered_text
                        || t.parts != json(&wanted.parts)
                        || t.override_body != wanted.override_body
                    {
                        what.push("text");
                    }
                    if t.scheduled_at_ms != new.scheduled_at_ms {
                        what.push("time");
                    }
                    if t.media != json(&wanted.media) {
                        what.push("media");
                    }
                    if what.is_empty() {
                        TargetChange::Same
                    } else {
                        TargetChange::Change(what)
                    }
                }
                Some((_, Ok(status))) => TargetChange::Locked(status),
                Some((_, Err(_))) => TargetChange::Locked(TargetStatus::Failed),
            };
            TargetPlan {
                channel: wanted.channel.clone(),
                new_links: match change {
                    TargetChange::Add | TargetChange::Change(_) => wanted.links.clone(),
                    _ => Vec::new(),
                },
                change,
                text: wanted.rendered_text.clone(),
            }
        })
        .collect();
    plans.extend(
        stored
            .targets
            .iter()
            .filter(|t| !new.targets.iter().any(|w| w.channel == t.channel))
            .filter(|t| t.status().is_ok_and(TargetStatus::is_editable))
            .map(|t| TargetPlan {
                channel: t.channel.clone(),
                change: TargetChange::Remove,
                text: String::new(),
                new_links: Vec::new(),
            }),
    );
    plans
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The post a file describes. The content hash covers everything that is
/// published (not the id or the path): a renamed file is the same content.
/// It is taken before links are tracked, so new codes never make a file
/// look changed; `tracked` is what is stored and sent.
fn file_post(
    file: &PostFile,
    plan: Vec<PlannedTarget>,
    tracked: Option<(Vec<PlannedTarget>, Vec<Vec<NewTargetLink>>)>,
) -> NewPost {
    let mut targets = new_targets(plan, &file.overrides, None);
    let vars = serde_json::Value::Object(file.vars.clone());
    let fingerprint = serde_json::json!({
        "body": file.body, "template": file.template, "vars": vars,
        "campaign": file.campaign, "author": file.author, "at": file.at.timestamp_millis(),
        "targets": targets.iter().map(|t| (&t.channel, &t.parts, &t.media, &t.override_body)).collect::<Vec<_>>(),
    });
    if let Some((tracked, links)) = tracked {
        targets = new_targets(tracked, &file.overrides, None);
        for (target, links) in targets.iter_mut().zip(links) {
            target.links = links;
        }
    }
    NewPost {
        source_key: file.id.clone(),
        import_key: None,
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

/// A new post id: 12 characters of lower-case base32 (60 random bits).
pub fn new_post_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let bits: u64 = rand::random();
    (0..12)
        .map(|i| char::from(ALPHABET[((bits >> (i * 5)) & 31) as usize]))
        .collect()
}

impl PostService {
    /// [`plan_content`] with this service's templates and channels.
    pub async fn plan_content(&self, files: &[PostFile]) -> Result<ContentPlan, ServiceError> {
        plan_content(
            &self.store,
            &self.library,
            &self.registry,
            self.link_base.as_deref(),
            files,
        )
        .await
    }

    /// Makes the posts match the files. Everything is validated first
    /// ([`plan_content`]); if anything is invalid nothing is written. Then
    /// an id goes into each file without one (before the database, so no
    /// post is ever stored under an id its file lacks), each file's post is
    /// created or updated (targets already handed to a platform are left
    /// alone), and the posts whose files are gone have their targets that
    /// have not gone out cancelled.
    pub async fn sync(
        &self,
        files: &[PostFile],
        mut progress: impl FnMut(&str),
    ) -> Result<ContentSync, ServiceError> {
        let plan = self.plan_content(files).await?;
        let mut ids_written = Vec::new();
        let mut errors = Vec::new();
        let mut ids = Vec::with_capacity(files.len());
        for (file, file_plan) in files.iter().zip(&plan.files) {
            let id = match &file_plan.id {
                Some(id) => id.clone(),
                None => {
                    let id = new_post_id();
                    match write_id(file, &id) {
                        Ok(()) => ids_written.push(file.path.clone()),
                        Err(e) => errors.push(e),
                    }
                    id
                }
            };
            ids.push(id);
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        let mut reports = Vec::with_capacity(files.len());
        for (file_plan, id) in plan.files.into_iter().zip(ids) {
            let source = (Some(id.clone()), Some(file_plan.relative_path.clone()));
            if let (Some(post_id), Some(stored)) = (file_plan.post_id, &file_plan.stored_source)
                && *stored != source
            {
                // Renamed, or synced before ids existed: found by the new key from now on.
                self.store
                    .set_post_source(post_id, &id, &file_plan.relative_path)
                    .await?;
            }
            let mut new = file_plan.new;
            new.source_key = Some(id.clone());
            let result = self.store.sync_post(new).await?;
            if file_plan.post_id.is_none() {
                self.store
                    .set_post_source(result.post_id, &id, &file_plan.relative_path)
                    .await?;
            }
            self.queue_or_leave_to_sweeper(&result.enqueue).await;
            progress(&file_plan.path);
            let action = match result.outcome {
                SyncOutcome::Created => FileAction::Create,
                SyncOutcome::Updated => FileAction::Update,
                SyncOutcome::Unchanged if file_plan.moved_from.is_some() => FileAction::Update,
                SyncOutcome::Unchanged => FileAction::Unchanged,
            };
            reports.push(SyncReport {
                path: file_plan.path,
                post_id: result.post_id,
                action,
                moved_from: file_plan.moved_from,
                queued: result.enqueue.len(),
                locked_channels: result.locked_channels,
            });
        }
        let mut cancelled = Vec::new();
        for gone in plan.cancels {
            let channels = self.store.detach_file_post(gone.post_id).await?;
            cancelled.push(CancelReport {
                post_id: gone.post_id,
                relative_path: gone.relative_path,
                channels,
            });
        }
        for post_id in plan.forget {
            self.store.detach_file_post(post_id).await?;
        }
        Ok(ContentSync {
            files: reports,
            cancelled,
            ids_written,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_differ() {
        let a = new_post_id();
        assert_eq!(a.len(), 12);
        assert!(is_valid_id(&a), "{a}");
        assert_ne!(a, new_post_id());
    }
}
