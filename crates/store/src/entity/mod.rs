//! sea-orm entities, one file per table. Times are epoch milliseconds.

pub mod adapter_state;
pub mod channel;
pub mod post;
pub mod publish_attempt;
pub mod target;
