//! sea-orm entities, one file per table. Times are epoch milliseconds.

pub mod adapter_state;
pub mod bridge_message;
pub mod bridge_thread;
pub mod channel;
pub mod conversation;
pub mod conversation_note;
pub mod engagement;
pub mod inbox_reply;
pub mod listener;
pub mod post;
pub mod publish_attempt;
pub mod target;
