//! Channel adapters. Each platform is one module with one factory, listed
//! once in [`builtin_factories`]; the scheduler only ever sees
//! `dyn ChannelAdapter`.
//!
//! Invariants: adapters never touch the database or the queue, never retry
//! on their own (the scheduler owns retries), and never put a credential in
//! an error message.

mod bluesky;
mod dingtalk;
mod discord;
mod email;
mod facebook;
mod feishu;
mod file;
mod group_robot;
pub mod http;
mod instagram;
mod linkedin;
mod mastodon;
mod matrix;
mod meta_graph;
mod stdout;
mod telegram;
mod threads;
mod webhook;
mod wechat_oa;
mod wecom;
mod weibo;
mod x;

use clarion_core::AdapterFactory;

pub use file::FileAdapter;
pub use stdout::StdoutAdapter;
pub use webhook::{WebhookAdapter, WebhookFormat};

/// Every platform Clarion can publish to. Adding one is a line here.
pub fn builtin_factories(client: reqwest::Client) -> Vec<Box<dyn AdapterFactory>> {
    vec![
        Box::new(webhook::Factory::new(client.clone())),
        Box::new(stdout::Factory),
        Box::new(file::Factory),
        Box::new(mastodon::Factory),
        Box::new(bluesky::Factory),
        Box::new(matrix::Factory),
        Box::new(x::Factory),
        Box::new(discord::Factory),
        Box::new(telegram::Factory),
        Box::new(email::Factory),
        Box::new(wecom::Factory),
        Box::new(feishu::Factory),
        Box::new(dingtalk::Factory),
        Box::new(weibo::Factory),
        Box::new(wechat_oa::Factory),
        Box::new(linkedin::Factory),
        Box::new(facebook::Factory),
        Box::new(threads::Factory),
        Box::new(instagram::Factory),
    ]
}

/// The HTTP client every adapter shares: one connection pool per process.
/// (Timeouts are set per request, so one client suits every platform.)
pub fn http_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("clarion/", env!("CARGO_PKG_VERSION")))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap_or_default()
        })
        .clone()
}
