//! Clarion's HTTP server: `/healthz`, `/readyz`, `/metrics` and the JSON API
//! under `/api/v1`. One file per API action under `api/`.
//!
//! Invariants: handlers never talk to a platform or the queue directly;
//! every write goes through `PostService`, which validates before storing.

mod api;
pub mod calendar;
mod error;
mod health;
pub mod import;
mod inbox_view;
mod openapi;
pub mod pages;
pub mod team;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::middleware::from_fn;
use axum::routing::{MethodRouter, delete, get, patch, post};
use clarion_core::Secret;
use clarion_scheduler::{Health, Metrics, PostService, SchedulerConfig};
use serde::Deserialize;

pub use api::create_post::{FieldError, MediaRequest, PostRequest, json_field_error};
pub use api::create_posts_bulk::MAX_BULK_POSTS;
pub use error::ApiError;
pub use view::{AttemptView, PostView, TargetView, format_time};

/// `[server]` in clarion.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address `clarion run` listens on.
    pub bind: String,
    /// Where the API bearer token comes from (never the config file itself).
    pub api_token: clarion_core::SecretRef,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            api_token: clarion_core::SecretRef::env("CLARION_API_TOKEN"),
        }
    }
}

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: PostService,
    pub metrics: Arc<Metrics>,
    /// None when no scheduler runs in this process (then `/readyz` skips the loop check).
    pub health: Option<Arc<Health>>,
    pub scheduler: SchedulerConfig,
    /// None: the API answers 503 and says how to enable it.
    pub api_token: Option<Secret>,
    /// `timezone` from the config: an API `at` without offset is read in it.
    pub timezone: clarion_core::time::Tz,
    /// The inbox operations (the same service as the CLI and the bridge).
    pub inbox: clarion_engage::InboxService,
    /// `[listen]`: `/readyz` names listeners failing longer than its threshold.
    pub listen: clarion_engage::ListenConfig,
    /// The listeners of this process, for pushed events (`/hooks/<channel>`).
    pub listening: Option<clarion_engage::ListenerRuntime>,
    /// Tracked links, orders and reports.
    pub analytics: clarion_analytics::Analytics,
    /// Sign-in throttle, approval notices, links.
    pub team: team::TeamState,
}

impl axum::extract::FromRef<AppState> for clarion_analytics::Analytics {
    fn from_ref(state: &AppState) -> Self {
        state.analytics.clone()
    }
}

/// Only the tracked-link redirect, for measuring it alone.
pub fn redirect_router(analytics: clarion_analytics::Analytics) -> Router {
    Router::new()
        .route("/r/{code}", get(api::follow_link::handler))
        .with_state(analytics)
}

/// A tracked link as the API and the CLI show it.
pub fn link_view(
    links: &clarion_analytics::Links,
    link: &clarion_store::link::Model,
    clicks: i64,
    bots: i64,
) -> serde_json::Value {
    serde_json::json!({
        "code": link.code,
        "short_url": links.short_url(&link.code),
        "destination": link.destination,
        "campaign": link.campaign,
        "creator": link.creator,
        "channel": link.channel,
        "medium": link.medium,
        "post_id": link.post_id,
        "target_id": link.target_id,
        "clicks": clicks,
        "bot_fetches": bots,
        "created_at": format_time(link.created_at_ms),
    })
}

/// A write route open to contributors and up.
fn drafting<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    post(handler).route_layer(from_fn(api::auth::need_draft))
}

/// A write route for editors and owners.
fn publishing<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    post(handler).route_layer(from_fn(api::auth::need_publish))
}

pub fn router(state: AppState) -> Router {
    let owner = from_fn(api::auth::need_owner);
    let api = Router::new()
        .route(
            "/posts",
            drafting(api::create_post::handler).get(api::list_posts::handler),
        )
        .route(
            "/posts/bulk",
            publishing(api::create_posts_bulk::handler).layer(
                axum::extract::DefaultBodyLimit::max(api::create_posts_bulk::MAX_BULK_BYTES),
            ),
        )
        // `:import` is part of the path (no slash): it never meets `/posts/{id}`.
        .route(
            "/posts:import",
            publishing(api::import_posts::handler).layer(axum::extract::DefaultBodyLimit::max(
                api::create_posts_bulk::MAX_BULK_BYTES,
            )),
        )
        // Reads only: renders and checks, stores nothing.
        .route("/posts:preview", post(api::preview_post::handler))
        .route(
            "/posts/{id}",
            get(api::show_post::handler).merge(
                patch(api::edit_post::handler).route_layer(from_fn(api::auth::need_publish)),
            ),
        )
        .route("/posts/{id}/retry", publishing(api::retry_post::handler))
        .route("/posts/{id}/settle", publishing(api::settle_post::handler))
        .route(
            "/posts/{id}/schedule",
            publishing(api::schedule_post::handler),
        )
        .route("/posts/{id}/cancel", publishing(api::cancel_post::handler))
        .route(
            "/posts/{id}/approve",
            publishing(api::approve_post::handler),
        )
        .route("/posts/{id}/reject", publishing(api::reject_post::handler))
        .route("/posts/{id}/submit", drafting(api::submit_post::handler))
        .route("/queue", get(api::queue_status::handler))
        .route("/inbox", get(api::list_conversations::handler))
        .route("/inbox/{id}", get(api::show_conversation::handler))
        .route(
            "/inbox/{id}/reply",
            publishing(api::reply_conversation::handler),
        )
        .route(
            "/inbox/{id}/note",
            drafting(api::note_conversation::handler),
        )
        .route(
            "/inbox/{id}/status",
            publishing(api::set_conversation_status::handler),
        )
        .route(
            "/inbox/{id}/assign",
            publishing(api::assign_conversation::handler),
        )
        .route(
            "/inbox/{id}/labels",
            publishing(api::label_conversation::handler),
        )
        .route("/listeners", get(api::list_listeners::handler))
        .route("/channels", get(api::list_channels::handler))
        .route(
            "/channels/{name}/check",
            publishing(api::check_channel::handler),
        )
        .route(
            "/links",
            publishing(api::create_link::handler).get(api::list_links::handler),
        )
        .route("/orders", publishing(api::create_order::handler))
        .route("/campaigns", get(api::list_campaigns::handler))
        .route(
            "/campaigns/{name}/report",
            get(api::campaign_report::handler),
        )
        .route(
            "/media",
            drafting(api::upload_media::handler).layer(axum::extract::DefaultBodyLimit::max(
                api::upload_media::MAX_UPLOAD_BYTES,
            )),
        )
        .route("/audit", get(api::list_audit::handler))
        .route("/tokens", get(api::tokens::list).post(api::tokens::create))
        .route("/tokens/{id}", delete(api::tokens::revoke))
        .route(
            "/users",
            get(api::users::list)
                .post(api::users::add)
                .route_layer(owner.clone()),
        )
        .route(
            "/users/{id}",
            patch(api::users::change)
                .delete(api::users::remove)
                .route_layer(owner),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::audit_layer::record,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::auth::require_token,
        ));
    let pages = pages::signed_in_routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        api::auth::require_session,
    ));
    let feed = Router::new()
        .route("/calendar.ics", get(calendar::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::auth::require_token_or_query,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(openapi::handler))
        .route("/hooks/{channel}", post(api::receive_push::handler))
        .route("/r/{code}", get(api::follow_link::handler))
        .route("/webhooks/shopify", post(api::shop_webhook::shopify))
        .route(
            "/webhooks/woocommerce",
            post(api::shop_webhook::woocommerce),
        )
        .nest("/api/v1", api)
        .merge(feed)
        .merge(pages)
        .merge(pages::public_routes())
        .with_state(state)
}
