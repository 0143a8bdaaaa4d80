//! Click-to-order attribution for Clarion.
//!
//! This crate decides which clicks and creators earned an order, and by how
//! much: it tags links (UTM parameters, the `clarion_cid` click id), tells
//! link-preview bots from people, keys visitors without keeping their IP,
//! checks shop webhook signatures, reads Shopify, WooCommerce, generic JSON
//! and CSV orders into one shape, spreads an order's amount over its touches
//! by an attribution model, reads KOL campaign files and derives their
//! metrics, and draws the SVG charts that reports show.
//!
//! Invariant: it never touches the database or the network (and never reads
//! the clock: times are passed in), so every rule here is a pure function
//! that tests can pin down. The one file access is [`load_dir`], which reads
//! the campaign config files it is pointed at. Money is always integer minor units; shares are
//! split by largest remainder so they sum exactly to the amount.

mod bots;
mod campaigns;
mod chart;
mod metrics;
mod model;
mod money;
mod orders;
mod signature;
mod utm;
mod visitor;

pub use bots::is_preview_bot;
pub use campaigns::{
    Campaign, CampaignError, Campaigns, Creator, DEFAULT_WINDOW_DAYS, MAX_WINDOW_DAYS, load_dir,
};
pub use chart::{Series, bar_and_line, escape_xml, heatmap, horizontal_bars, nice_ticks};
pub use metrics::{Totals, emv_minor};
pub use model::{
    Attribution, Credit, DEFAULT_HALF_LIFE_MS, DecidedBy, Model, ModelError, OrderFacts, Touch,
    attribute, net_amount, scale,
};
pub use money::{Currency, Money, MoneyError, parse_decimal, split};
pub use orders::{
    Order, OrderError, OrderSource, Refund, RowError, SOCIAL_PARAM, csv_orders, generic_order,
    shopify_order, shopify_refund, social_handle, woocommerce_order,
};
pub use signature::{
    SHOPIFY_SIGNATURE_HEADER, SignatureError, WOOCOMMERCE_SIGNATURE_HEADER,
    verify_hmac_sha256_base64,
};
pub use utm::{
    CLICK_ID_PARAM, LinkError, Utm, find_links, random_id, rewrite_links, tag, with_click_id,
};
pub use visitor::{utc_day, visitor_key};
