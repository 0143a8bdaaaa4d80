//! Clarion's third job: which post, channel and creator brought which
//! orders. The services here are the one implementation the CLI, the HTTP
//! API and the redirect share:
//!
//! - [`Links`]: registers tracked links (`/r/{code}`), by hand or when a
//!   campaign post's links are rewritten.
//! - [`Redirector`]: resolves a code to its destination (cached), tags it
//!   with UTM and a click id, and hands the click to the [`ClickRecorder`],
//!   which writes clicks in batches so recording never delays a redirect.
//! - [`Orders`]: takes orders and refunds (webhooks, the JSON API, CSV),
//!   deduped on the shop's ids, and credits each order under the default
//!   model at once.
//! - [`Attributor`]: credits orders to touches under any model and window,
//!   stored per model, recomputed on demand.
//! - [`MetricsPoller`]: snapshots of published posts' public counts.
//! - [`report`]: campaign reports from the stored credits.
//!
//! Invariants: calls a platform only through `ChannelAdapter::post_counts`
//! (the metrics poller); all money is integer minor units;
//! the pure rules live in `clarion-attribution`.

mod attributor;
pub mod best_times;
mod config;
mod error;
mod links;
mod metrics_poller;
mod orders;
mod recorder;
mod redirect;
pub mod report;
pub mod report_output;
#[cfg(test)]
mod tests;

pub use attributor::{Attributor, ModelKey};
pub use config::{Analytics, AttributionConfig, link_base};
pub use error::AnalyticsError;
pub use links::{LinkRequest, Links};
pub use metrics_poller::MetricsPoller;
pub use orders::{OrderOutcome, Orders};
pub use recorder::ClickRecorder;
pub use redirect::{Redirector, Visit};
