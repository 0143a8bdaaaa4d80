//! `/inbox`: conversations, and one conversation (being built).

use axum::Extension;
use axum::extract::Path;
use axum::response::IntoResponse;
use maud::html;

use super::{PageResult, layout};
use crate::team::Actor;

pub async fn page(Extension(actor): Extension<Actor>) -> PageResult {
    Ok(layout(
        "Inbox",
        &actor,
        "/inbox",
        &["inbox.js"],
        html! { p { "Inbox" } },
    ))
}

pub async fn conversation_page(
    Extension(actor): Extension<Actor>,
    Path(id): Path<i32>,
) -> PageResult {
    Ok(layout(
        &format!("Conversation {id}"),
        &actor,
        "/inbox",
        &["inbox.js"],
        html! { p { "Conversation" } },
    ))
}

pub async fn events() -> axum::response::Response {
    axum::http::StatusCode::NOT_IMPLEMENTED.into_response()
}
