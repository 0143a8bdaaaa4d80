//! `/queue`: what is due, publishing, stuck; channel health (being built).

use axum::Extension;
use maud::html;

use super::{PageResult, layout};
use crate::team::Actor;

pub async fn page(Extension(actor): Extension<Actor>) -> PageResult {
    Ok(layout(
        "Queue & channels",
        &actor,
        "/queue",
        &["queue.js"],
        html! { p { "Queue" } },
    ))
}
