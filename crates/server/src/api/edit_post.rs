//! `PATCH /api/v1/posts/{id}`: change a post's text, variables, channels or
//! time. Re-rendered and re-validated like a create; only targets not yet
//! handed to a platform change, and the answer says which were left alone.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use clarion_scheduler::PostChanges;
use serde::{Deserialize, Serialize};

use super::{parse_json, parse_time, post_view};
use crate::{ApiError, AppState, PostView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    body: Option<String>,
    /// Merged into the post's variables.
    #[serde(default)]
    vars: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    add_channels: Vec<String>,
    #[serde(default)]
    remove_channels: Vec<String>,
    /// RFC 3339.
    at: Option<String>,
}

/// The post as it is now and what the edit did, target by target.
#[derive(Debug, Serialize)]
pub struct EditAnswer {
    pub post: PostView,
    pub changed: Vec<i32>,
    pub added: Vec<i32>,
    pub cancelled: Vec<i32>,
    pub unchanged: Vec<i32>,
    pub left_alone: Vec<LeftAloneView>,
}

#[derive(Debug, Serialize)]
pub struct LeftAloneView {
    pub target: i32,
    pub channel: String,
    pub status: String,
    pub reason: String,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<EditAnswer>, ApiError> {
    let request: Edit = parse_json(&body)?;
    let at = request
        .at
        .as_deref()
        .map(|at| parse_time("at", at, state.timezone))
        .transpose()?;
    let report = state
        .service
        .edit(
            id,
            PostChanges {
                body: request.body,
                vars: request.vars,
                add_channels: request.add_channels,
                remove_channels: request.remove_channels,
                at,
            },
        )
        .await?;
    let outcome = report.outcome;
    Ok(Json(EditAnswer {
        post: post_view(&state, outcome.detail).await?,
        changed: outcome.changed,
        added: outcome.added,
        cancelled: outcome.cancelled,
        unchanged: report.unchanged,
        left_alone: outcome
            .left_alone
            .into_iter()
            .map(|l| LeftAloneView {
                target: l.target_id,
                channel: l.channel,
                status: l.status,
                reason: l.reason,
            })
            .collect(),
    }))
}
