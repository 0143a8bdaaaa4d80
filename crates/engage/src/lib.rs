//! Clarion's second job: engagement.
//!
//! - [`runtime`]: runs one listener per listening channel (`listen = true`),
//!   owning its lease, storing each batch with its cursor in one
//!   transaction, and backing off on failures the way the publish path does.
//! - [`inbox`]: the inbox operations the CLI, the HTTP API and the bridge
//!   share (list, show, reply, note, resolve, snooze, assign, label). A
//!   reply is a post with one target and reply refs: it goes out through the
//!   same durable queue and claim as a scheduled post.
//! - [`bridge`]: shows new items in a Discord or Telegram chat and turns a
//!   manager's reply there into an inbox reply, note or command.
//! - [`rules`]: auto-rules evaluated on each new item.
//!
//! Invariants: this crate never calls a platform API itself (it goes through
//! `dyn Listener` and `dyn ChannelAdapter`) and never names a platform.

pub mod bridge;
pub mod config;
mod error;
pub mod inbox;
pub mod rules;
pub mod runtime;

pub use config::{BridgeConfig, ListenConfig};
pub use error::InboxError;
pub use inbox::{InboxQuery, InboxService, ReplyVia};
pub use runtime::ListenerRuntime;
