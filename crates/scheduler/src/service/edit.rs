//! `PostService::edit`: change a post's text, variables, channels or time.
//! The edit goes through the same rendering and validation as a create; only
//! targets not yet handed to a platform change, each write guarded on the
//! row as read (see `clarion_store::edits`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use clarion_core::TargetStatus;
use clarion_store::{
    EditOutcome, LeftAlone, NewTarget, PostEdit, StoreError, TargetChange, now_ms,
};

use super::retry::status_of;
use super::{PostInput, PostService, Refusal, scheduled_time};
use crate::ServiceError;

/// What to change on a post; everything left empty stays as it is.
#[derive(Debug, Clone, Default)]
pub struct PostChanges {
    /// The new body (a handlebars template, like a create's).
    pub body: Option<String>,
    /// Merged into the post's variables (a key given replaces its value).
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub add_channels: Vec<String>,
    pub remove_channels: Vec<String>,
    /// Move the post (a draft becomes scheduled).
    pub at: Option<DateTime<Utc>>,
}

impl PostChanges {
    fn is_empty(&self) -> bool {
        self.body.is_none()
            && self.vars.is_empty()
            && self.add_channels.is_empty()
            && self.remove_channels.is_empty()
            && self.at.is_none()
    }
}

/// What an edit did: the post as it is now, the targets changed, added and
/// cancelled, the ones it left alone (and why) and the ones already as asked.
#[derive(Debug, Clone)]
pub struct EditReport {
    pub outcome: EditOutcome,
    pub unchanged: Vec<i32>,
}

impl PostService {
    /// Re-renders and re-validates the post with `changes` for every
    /// channel it keeps or gains; if anything is refused nothing changes.
    /// Targets still `draft`/`scheduled` are rewritten (guarded: a claim
    /// that lands meanwhile wins and is reported); the others are left
    /// alone and reported with the reason. A removed channel's unpublished
    /// target is cancelled. A changed time queues a wake-up.
    pub async fn edit(&self, id: i32, changes: PostChanges) -> Result<EditReport, ServiceError> {
        if changes.is_empty() {
            return Err(ServiceError::BadRequest(
                "nothing to change: give new text, a variable, a channel to add or remove, or a time"
                    .into(),
            ));
        }
        let detail = self.store.post_detail(id).await?;
        // A post kept in a file is changed there (a sync would undo an edit).
        if let Some(file) = &detail.post.source_path {
            return Err(StoreError::Conflict {
                id,
                reason: format!(
                    "it is kept in the file `{file}` of the posts folder: edit the file and run `clarion content sync`"
                ),
            }
            .into());
        }
        check_channel_changes(&detail.targets, &changes)?;
        let at_ms = match changes.at {
            Some(at) => scheduled_time(Some(at), false)
                .map_err(|m| ServiceError::BadRequest(format!("at: {m}")))?,
            None => None,
        };

        // Which targets this edit may rewrite; the others are reported.
        let mut left_alone = Vec::new();
        let mut keep = Vec::new();
        let mut cancels = Vec::new();
        for t in &detail.targets {
            let status = status_of(t)?;
            let removed = changes.remove_channels.contains(&t.channel);
            match (status.is_editable(), removed) {
                (true, true) => cancels.push(t.clone()),
                (true, false) => keep.push(t),
                (false, _) if status == TargetStatus::Cancelled && !removed => {}
                (false, _) => left_alone.push(LeftAlone {
                    target_id: t.id,
                    channel: t.channel.clone(),
                    status: t.status.clone(),
                    reason: not_editable(status).to_owned(),
                }),
            }
        }
        if keep.is_empty() && cancels.is_empty() && changes.add_channels.is_empty() {
            return Err(StoreError::Conflict {
                id,
                reason: format!(
                    "nothing to edit: every target is already publishing or final ({})",
                    describe(&left_alone)
                ),
            }
            .into());
        }

        // The same rendering and checks as a create, for every channel the
        // post keeps (not yet out) or gains.
        let channels: Vec<String> = keep
            .iter()
            .map(|t| t.channel.clone())
            .chain(changes.add_channels.iter().cloned())
            .collect();
        let body = changes
            .body
            .clone()
            .unwrap_or_else(|| detail.post.body.clone());
        let mut vars: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&detail.post.vars).unwrap_or_default();
        vars.extend(changes.vars.clone());
        let planned = if channels.is_empty() {
            Vec::new()
        } else {
            let overrides: BTreeMap<String, String> = keep
                .iter()
                .filter_map(|t| t.override_body.clone().map(|b| (t.channel.clone(), b)))
                .collect();
            let input = PostInput {
                body: body.clone(),
                template: detail.post.template.clone(),
                vars: vars.clone(),
                campaign: detail.post.campaign.clone(),
                author: detail.post.author.clone(),
                channels,
                overrides,
                // The time is checked above; a kept time may already have passed.
                at: None,
                draft: true,
                thread: detail.targets.iter().any(|t| t.parts().len() > 1),
                media: detail
                    .targets
                    .first()
                    .map(|t| t.media())
                    .unwrap_or_default(),
                reply_to: None,
                // Links already tracked keep their codes; new ones are
                // registered with the targets the edit writes.
                untracked: false,
                known_links: super::tracking::known_links(&self.store.post_links(&[id]).await?),
                // Each target keeps the variant it was created with.
                variants: Vec::new(),
                variant: None,
            };
            self.prepare(input, None)
                .map_err(Refusal::into_single)?
                .targets
        };
        let planned_for = |channel: &str| -> Result<NewTarget, ServiceError> {
            planned
                .iter()
                .find(|p| p.channel == channel)
                .cloned()
                .ok_or_else(|| {
                    StoreError::Inconsistent(format!("channel `{channel}` was not rendered")).into()
                })
        };

        let mut updates = Vec::new();
        let mut unchanged = Vec::new();
        for t in keep {
            let change = TargetChange::between(
                t,
                TargetChange {
                    status: at_ms.map(|_| TargetStatus::Scheduled),
                    at_ms: at_ms.map(Some),
                    content: Some(planned_for(&t.channel)?),
                    campaign: None,
                },
            );
            if change.is_empty() {
                unchanged.push(t.id);
            } else {
                updates.push((t.clone(), change));
            }
        }
        let inserts = changes
            .add_channels
            .iter()
            .map(|c| planned_for(c))
            .collect::<Result<Vec<_>, _>>()?;
        // A channel added after the post's moment goes out now.
        let insert_at_ms = at_ms.or(detail.post.scheduled_at_ms.map(|t| t.max(now_ms())));
        let mut outcome = self
            .store
            .edit_post(PostEdit {
                post_id: id,
                body,
                vars: serde_json::Value::Object(vars),
                at_ms,
                updates,
                cancels,
                inserts,
                insert_at_ms,
            })
            .await?;
        self.queue_or_leave_to_sweeper(&outcome.enqueue).await;
        left_alone.append(&mut outcome.left_alone);
        outcome.left_alone = left_alone;
        Ok(EditReport { outcome, unchanged })
    }
}

/// Channels to add must be new to the post, channels to remove on it.
fn check_channel_changes(
    targets: &[clarion_store::target::Model],
    changes: &PostChanges,
) -> Result<(), ServiceError> {
    let bad =
        |field: &str, message: String| ServiceError::BadRequest(format!("{field}: {message}"));
    for channel in &changes.remove_channels {
        if !targets.iter().any(|t| &t.channel == channel) {
            return Err(bad(
                "remove_channels",
                format!("channel `{channel}` is not one of this post's channels"),
            ));
        }
        if changes.add_channels.contains(channel) {
            return Err(bad(
                "remove_channels",
                format!("channel `{channel}` is both added and removed"),
            ));
        }
    }
    for channel in &changes.add_channels {
        match targets.iter().find(|t| &t.channel == channel) {
            None => {}
            Some(t) if t.status == TargetStatus::Cancelled.as_str() => {
                return Err(bad(
                    "add_channels",
                    format!(
                        "channel `{channel}` was cancelled on this post (target {}); create a new post for it",
                        t.id
                    ),
                ));
            }
            Some(t) => {
                return Err(bad(
                    "add_channels",
                    format!(
                        "channel `{channel}` is already on this post (target {}, {})",
                        t.id, t.status
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Why an edit leaves a target in `status` alone.
fn not_editable(status: TargetStatus) -> &'static str {
    match status {
        TargetStatus::Publishing => "it is being published right now",
        TargetStatus::Published => "it is already published",
        TargetStatus::Failed => "it failed; retry it with `post retry`",
        TargetStatus::OutcomeUnknown => {
            "its outcome is unknown; check the platform, then `post retry` or `post settle`"
        }
        TargetStatus::Cancelled => "it is cancelled",
        TargetStatus::Draft | TargetStatus::Scheduled => "it can be edited",
    }
}

fn describe(left: &[LeftAlone]) -> String {
    left.iter()
        .map(|l| format!("`{}` {}", l.channel, l.status))
        .collect::<Vec<_>>()
        .join(", ")
}
