//! `/approvals`: posts waiting for an editor, each with its rendered text
//! per channel; approve (schedules it) or reject with a comment. Both are
//! forms posting to the API (`/api/v1/posts/{id}/approve|reject`).

use axum::Extension;
use axum::extract::State;
use clarion_core::Action;
use maud::html;

use super::{PageResult, layout, local_time};
use crate::AppState;
use crate::team::Actor;

pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> PageResult {
    let store = state.service.store();
    let pending = store.pending_approvals().await?;
    let mut details = Vec::with_capacity(pending.len());
    for p in &pending {
        details.push(store.post_detail(p.id).await?);
    }
    let can_decide = actor.role.may(Action::Publish);
    let body = html! {
        @if details.is_empty() {
            p { "Nothing waits for approval." }
        }
        @for d in &details {
            section.card aria-labelledby=(format!("post-{}", d.post.id)) {
                h2 #(format!("post-{}", d.post.id)) {
                    "Post " (d.post.id)
                    " " span.badge.status-pending_approval { "pending approval" }
                }
                p.muted {
                    "By " (d.post.author.as_deref().unwrap_or("?")) ". "
                    @match d.post.requested_at_ms {
                        Some(ms) => { "Asks for " (local_time(ms, state.timezone)) "." }
                        None => { "As soon as approved." }
                    }
                    @if let Some(c) = &d.post.campaign { " Campaign " (c) "." }
                }
                table {
                    thead { tr { th scope="col" { "Channel" } th scope="col" { "Text as it will be sent" } } }
                    tbody {
                        @for t in &d.targets {
                            tr { td { (t.channel) } td { pre style="white-space:pre-wrap;margin:0" { (t.rendered_text) } } }
                        }
                    }
                }
                @if can_decide {
                    div.grid2 {
                        form data-api-path=(format!("/api/v1/posts/{}/approve", d.post.id)) data-done="Approved and scheduled." {
                            label for=(format!("approve-comment-{}", d.post.id)) { "Comment (optional)" }
                            input type="text" name="comment" id=(format!("approve-comment-{}", d.post.id));
                            p { button type="submit" { "Approve and schedule" } }
                        }
                        form data-api-path=(format!("/api/v1/posts/{}/reject", d.post.id)) data-done="Rejected; the author sees your comment." {
                            label for=(format!("reject-comment-{}", d.post.id)) { "Why it is rejected" }
                            input type="text" name="comment" id=(format!("reject-comment-{}", d.post.id)) required;
                            p { button.danger type="submit" { "Reject" } }
                        }
                    }
                } @else {
                    p.muted { "An editor or owner approves posts." }
                }
            }
        }
    };
    Ok(layout("Approvals", &actor, "/approvals", &[], body))
}
