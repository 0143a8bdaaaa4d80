//! Clarion's core: the words every other crate shares.
//!
//! Invariants: this crate never touches the network, the database or the
//! clock. It defines what a channel adapter is ([`ChannelAdapter`]), how a
//! publish can fail ([`PublishError`], [`ErrorClass`]), the target status
//! machine ([`TargetStatus`]), how text length is counted per platform
//! ([`LengthRule`]), and how secrets are read ([`Secret`]).

mod adapter;
mod adapter_store;
mod error;
pub mod hash;
mod listen;
mod registry;
mod secret;
mod status;
pub mod team;
mod text;
pub mod time;

pub use adapter::{
    ChannelAdapter, ChannelCheck, Idempotency, Markup, Media, MediaRule, OutboundPost, PostCounts,
    PublishReceipt, PublishRequest, RateWindow, ReplyTo, StartedThread, ThreadStyle,
};
pub use adapter_store::{AdapterStore, AdapterStoreError, MemoryAdapterStore};
pub use error::{ErrorClass, PublishError, ValidationError};
pub use listen::{Engagement, EngagementAuthor, EngagementKind, ListenBatch, Listener, PushError};
pub use registry::{
    AdapterContext, AdapterFactory, AdapterRegistry, ChannelConfig, ConfigError, ListenerRegistry,
};
pub use secret::{Secret, SecretRef};
pub use status::{StatusError, TargetStatus};
pub use team::{Action, Role};
pub use text::{LengthRule, LengthUnit, truncate_graphemes};
