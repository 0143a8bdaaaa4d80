//! `/compose`: write a post once for many channels (being built).

use axum::Extension;
use maud::html;

use super::{PageResult, layout};
use crate::team::Actor;

pub async fn page(Extension(actor): Extension<Actor>) -> PageResult {
    Ok(layout(
        "Compose",
        &actor,
        "/compose",
        &["compose.js"],
        html! { p { "Compose" } },
    ))
}
