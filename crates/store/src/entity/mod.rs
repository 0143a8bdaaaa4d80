//! sea-orm entities, one file per table. Times are epoch milliseconds.

pub mod adapter_state;
pub mod bridge_message;
pub mod bridge_thread;
pub mod channel;
pub mod click;
pub mod click_rollup;
pub mod conversation;
pub mod conversation_note;
pub mod creator_post_metric;
pub mod credit_rollup;
pub mod engagement;
pub mod inbox_reply;
pub mod link;
pub mod listener;
pub mod order_credit;
pub mod post;
pub mod post_metric;
pub mod publish_attempt;
pub mod refund;
pub mod shop_order;
pub mod target;
pub mod webhook_delivery;
