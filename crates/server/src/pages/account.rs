//! `/account`: your role and your API tokens (made and revoked through
//! `/api/v1/tokens`; a new token is shown once).

use axum::Extension;
use axum::extract::State;
use maud::html;

use super::{PageResult, layout, local_time};
use crate::AppState;
use crate::team::Actor;

pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> PageResult {
    let tokens = match actor.user_id {
        Some(id) => state.service.store().api_tokens(id).await?,
        None => Vec::new(),
    };
    let body = html! {
        p { "Signed in as " strong { (actor.name) } ", " (actor.role) "." }
        h2 { "API tokens" }
        p.muted { "A token acts with your role. Send it as " code { "Authorization: Bearer <token>" } "." }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Made" } th scope="col" { "Last used" } th scope="col" { "Revoke" } } }
            tbody {
                @for t in &tokens {
                    tr {
                        td { (t.name) }
                        td { (local_time(t.created_at_ms, state.timezone)) }
                        td { (t.last_used_at_ms.map(|ms| local_time(ms, state.timezone)).unwrap_or_else(|| "never".into())) }
                        td { button.danger type="button" data-api-method="DELETE" data-api-path=(format!("/api/v1/tokens/{}", t.id)) data-confirm=(format!("Revoke {}?", t.name)) { "Revoke " span.sr-only { (t.name) } } }
                    }
                }
            }
        }
        form data-api-path="/api/v1/tokens" data-done="Copy your token now; it is not shown again:" data-show="token" {
            label for="token-name" { "What the token is for" }
            input #token-name type="text" name="name" required;
            p { button type="submit" { "Make a token" } }
        }
    };
    Ok(layout("Account", &actor, "/account", &["admin.js"], body))
}
