//! Orders and refunds from shops, in one normalized shape.
//!
//! Each parser reads the body a shop sends (Shopify and WooCommerce
//! webhooks, Clarion's own generic JSON, a CSV export) and returns an
//! [`Order`] or an error that names the offending field, so a shop owner can
//! see what to fix. Bodies must already have passed the signature check.

use std::fmt;
use std::io::Read;

use chrono::{DateTime, NaiveDateTime};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use url::Url;

use crate::model::OrderFacts;
use crate::money::{Currency, parse_decimal};
use crate::utm::{CLICK_ID_PARAM, Utm};

/// Where an order came from; with `order_id` it is the idempotency key
/// (the same order delivered twice counts once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderSource {
    Shopify,
    #[serde(rename = "woocommerce")]
    WooCommerce,
    Generic,
    Csv,
}

impl OrderSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::WooCommerce => "woocommerce",
            Self::Generic => "generic",
            Self::Csv => "csv",
        }
    }
}

impl fmt::Display for OrderSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order, whatever shop sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub source: OrderSource,
    pub order_id: String,
    /// The order total as the shop states it (Shopify `total_price`,
    /// WooCommerce `total`: taxes and shipping included).
    pub amount_minor: i64,
    pub currency: Currency,
    pub at_ms: i64,
    /// The shop's customer id, for matching an already known customer;
    /// `None` for guest checkouts.
    pub customer_key: Option<String>,
    /// Clarion's click id (`clarion_cid`) as the shop recorded it.
    pub click_id: Option<String>,
    /// In the order the shop lists them.
    pub discount_codes: Vec<String>,
    pub utm: Utm,
    /// The customer's social accounts as `platform:handle` (see
    /// [`social_handle`]): their engagements with campaign posts are touches.
    pub social_handles: Vec<String>,
}

/// The note attribute (Shopify) or meta key (WooCommerce) that carries the
/// customer's social accounts, `platform:handle`, several separated by
/// spaces or commas (a shop asks for them at checkout, or a loyalty app
/// fills them in).
pub const SOCIAL_PARAM: &str = "clarion_social";

/// `platform:handle` normalised: the platform in lower case, the handle
/// without a leading `@` and in lower case (`Mastodon:@Fan@masto.test` ->
/// `mastodon:fan@masto.test`), so it compares equal to a captured author.
pub fn social_handle(text: &str) -> Result<String, String> {
    let text = text.trim();
    let example = "write PLATFORM:HANDLE, for example mastodon:@fan@example.social or bluesky:fan.bsky.social";
    let Some((platform, handle)) = text.split_once(':') else {
        return Err(format!("`{text}`: {example}"));
    };
    let platform = platform.trim().to_ascii_lowercase();
    let handle = handle.trim().trim_start_matches('@').to_lowercase();
    if platform.is_empty()
        || !platform.chars().all(|c| c.is_ascii_lowercase())
        || handle.is_empty()
        || handle.chars().any(char::is_whitespace)
    {
        return Err(format!("`{text}`: {example}"));
    }
    Ok(format!("{platform}:{handle}"))
}

/// Every handle of a list separated by spaces, commas or `;`.
fn social_handles(text: &str, field: &str) -> Result<Vec<String>, OrderError> {
    text.split([' ', ',', ';', '\n'])
        .filter(|h| !h.trim().is_empty())
        .map(|h| social_handle(h).map_err(|e| field_error(field, e)))
        .collect()
}

impl Order {
    /// What [`crate::attribute`] needs of this order.
    pub fn facts(&self) -> OrderFacts {
        OrderFacts {
            at_ms: self.at_ms,
            amount_minor: self.amount_minor,
            currency: self.currency,
            discount_codes: self.discount_codes.clone(),
        }
    }
}

/// Money given back on an order; see [`crate::net_amount`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub source: OrderSource,
    pub order_id: String,
    pub refund_id: String,
    /// Positive: the amount returned.
    pub amount_minor: i64,
    pub currency: Currency,
    pub at_ms: i64,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OrderError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("field `{field}`: {reason}")]
    Field { field: String, reason: String },
}

fn field_error(field: impl Into<String>, reason: impl fmt::Display) -> OrderError {
    OrderError::Field {
        field: field.into(),
        reason: reason.to_string(),
    }
}

/// Deserializes a JSON object, naming the path of a field of the wrong type
/// (`customer.id`, `discount_codes[0].code`). Anything but an object is
/// refused first: serde would otherwise read an array as the struct's fields
/// in order.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, OrderError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| OrderError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(field_error("body", "expected a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        field_error(field, error.into_inner())
    })
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, OrderError> {
    value.ok_or_else(|| field_error(field, "missing"))
}

fn required_text(value: Option<String>, field: &str) -> Result<String, OrderError> {
    let text = required(value, field)?;
    if text.trim().is_empty() {
        return Err(field_error(field, "empty"));
    }
    Ok(text)
}

fn currency_field(value: Option<String>, field: &str) -> Result<Currency, OrderError> {
    Currency::new(&required(value, field)?).map_err(|e| field_error(field, e))
}

fn amount_field(value: Option<String>, currency: Currency, field: &str) -> Result<i64, OrderError> {
    parse_decimal(&required(value, field)?, currency).map_err(|e| field_error(field, e))
}

fn rfc3339_ms(text: &str, field: &str) -> Result<i64, OrderError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.timestamp_millis())
        .map_err(|e| field_error(field, format!("{text:?} is not an RFC 3339 time: {e}")))
}

/// Non-empty text of a JSON string or number (custom attributes arrive as
/// either); anything else is no value.
fn text_value(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

// --- Shopify ---------------------------------------------------------------

#[derive(Deserialize)]
struct ShopifyOrder {
    id: Option<u64>,
    total_price: Option<String>,
    currency: Option<String>,
    created_at: Option<String>,
    customer: Option<ShopifyCustomer>,
    discount_codes: Option<Vec<ShopifyDiscountCode>>,
    landing_site: Option<String>,
    note_attributes: Option<Vec<ShopifyNoteAttribute>>,
}

#[derive(Deserialize)]
struct ShopifyCustomer {
    id: Option<u64>,
}

#[derive(Deserialize)]
struct ShopifyDiscountCode {
    code: String,
}

#[derive(Deserialize)]
struct ShopifyNoteAttribute {
    name: String,
    value: Value,
}

/// Click id and UTM parameters from a landing page, as Shopify stores it
/// (path and query, sometimes a full URL). A landing page that does not
/// parse yields nothing: it is evidence, not part of the order.
fn landing_page_tracking(landing_site: &str) -> (Option<String>, Utm) {
    let mut click_id = None;
    let mut utm = Utm::default();
    let page = Url::parse("https://shop.invalid/").and_then(|base| base.join(landing_site));
    if let Ok(page) = page {
        for (name, value) in page.query_pairs() {
            if name == CLICK_ID_PARAM {
                if click_id.is_none() && !value.is_empty() {
                    click_id = Some(value.into_owned());
                }
            } else {
                utm.set_param(&name, &value);
            }
        }
    }
    (click_id, utm)
}

/// A Shopify `orders/create` or `orders/paid` webhook body (the REST Order).
///
/// The click id comes from a `clarion_cid` note attribute (set by the shop's
/// theme from the cookie) or else from `landing_site`; UTM parameters from
/// `landing_site`.
pub fn shopify_order(body: &[u8]) -> Result<Order, OrderError> {
    let raw: ShopifyOrder = decode(body)?;
    let order_id = required(raw.id, "id")?.to_string();
    let currency = currency_field(raw.currency, "currency")?;
    let amount_minor = amount_field(raw.total_price, currency, "total_price")?;
    let at_ms = rfc3339_ms(&required(raw.created_at, "created_at")?, "created_at")?;
    let (landing_click_id, utm) = raw
        .landing_site
        .as_deref()
        .map(landing_page_tracking)
        .unwrap_or_default();
    let notes = raw.note_attributes.unwrap_or_default();
    let noted_click_id = notes
        .iter()
        .find(|attribute| attribute.name == CLICK_ID_PARAM)
        .and_then(|attribute| text_value(&attribute.value));
    let mut handles = Vec::new();
    for note in notes.iter().filter(|a| a.name == SOCIAL_PARAM) {
        if let Some(value) = text_value(&note.value) {
            handles.extend(social_handles(&value, "note_attributes.clarion_social")?);
        }
    }
    Ok(Order {
        source: OrderSource::Shopify,
        order_id,
        amount_minor,
        currency,
        at_ms,
        customer_key: raw.customer.and_then(|c| c.id).map(|id| id.to_string()),
        click_id: noted_click_id.or(landing_click_id),
        discount_codes: raw
            .discount_codes
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.code)
            .collect(),
        utm,
        social_handles: handles,
    })
}

#[derive(Deserialize)]
struct ShopifyRefund {
    id: Option<u64>,
    order_id: Option<u64>,
    created_at: Option<String>,
    transactions: Option<Vec<ShopifyTransaction>>,
    refund_line_items: Option<Vec<ShopifyRefundLine>>,
}

#[derive(Deserialize)]
struct ShopifyTransaction {
    kind: Option<String>,
    status: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
}

#[derive(Deserialize)]
struct ShopifyRefundLine {
    subtotal_set: Option<ShopifyMoneySet>,
}

#[derive(Deserialize)]
struct ShopifyMoneySet {
    shop_money: ShopifyMoney,
}

#[derive(Deserialize)]
struct ShopifyMoney {
    amount: String,
    currency_code: String,
}

/// One amount of a refund and where in the body it was read.
struct RefundPart {
    currency: Currency,
    amount_minor: i64,
    /// Prefix of the fields it came from, for errors.
    at: String,
}

/// Adds the parts, refusing a mix of currencies.
fn sum_in_one_currency(
    parts: impl Iterator<Item = Result<RefundPart, OrderError>>,
) -> Result<Option<(Currency, i64)>, OrderError> {
    let mut total: Option<(Currency, i64)> = None;
    for part in parts {
        let part = part?;
        total = Some(match total {
            None => (part.currency, part.amount_minor),
            Some((first, _)) if first != part.currency => {
                return Err(field_error(
                    part.at,
                    format!(
                        "currency {} differs from {first} earlier in the refund",
                        part.currency
                    ),
                ));
            }
            Some((first, sum)) => (
                first,
                sum.checked_add(part.amount_minor)
                    .ok_or_else(|| field_error(part.at, "refund total is too large"))?,
            ),
        });
    }
    Ok(total)
}

/// A Shopify `refunds/create` webhook body.
///
/// The amount is the sum of the `transactions` of kind `refund` that did not
/// fail (status absent or `success`), in their currency. A refund without
/// such a transaction falls back to `refund_line_items[].subtotal_set.shop_money`
/// (`subtotal` itself is a JSON float; money is never read from a float).
pub fn shopify_refund(body: &[u8]) -> Result<Refund, OrderError> {
    let raw: ShopifyRefund = decode(body)?;
    let refund_id = required(raw.id, "id")?.to_string();
    let order_id = required(raw.order_id, "order_id")?.to_string();
    let at_ms = rfc3339_ms(&required(raw.created_at, "created_at")?, "created_at")?;

    let transactions = raw.transactions.unwrap_or_default();
    let refunds = transactions.into_iter().enumerate().filter(|(_, t)| {
        t.kind.as_deref() == Some("refund") && t.status.as_deref().is_none_or(|s| s == "success")
    });
    let from_transactions = sum_in_one_currency(refunds.map(|(i, t)| {
        let at = format!("transactions[{i}]");
        let currency = currency_field(t.currency, &format!("{at}.currency"))?;
        let amount_minor = amount_field(t.amount, currency, &format!("{at}.amount"))?;
        Ok(RefundPart {
            currency,
            amount_minor,
            at,
        })
    }))?;
    let total = match from_transactions {
        Some(total) => Some(total),
        None => {
            let lines = raw.refund_line_items.unwrap_or_default();
            let subtotals = lines.into_iter().enumerate().filter_map(|(i, line)| {
                line.subtotal_set.map(|set| {
                    let at = format!("refund_line_items[{i}].subtotal_set.shop_money");
                    let money = set.shop_money;
                    let currency =
                        currency_field(Some(money.currency_code), &format!("{at}.currency_code"))?;
                    let amount_minor =
                        amount_field(Some(money.amount), currency, &format!("{at}.amount"))?;
                    Ok(RefundPart {
                        currency,
                        amount_minor,
                        at,
                    })
                })
            });
            sum_in_one_currency(subtotals)?
        }
    };
    let (currency, amount_minor) = total.ok_or_else(|| {
        field_error(
            "transactions",
            "no successful refund transaction and no refund_line_items[].subtotal_set to take the amount from",
        )
    })?;
    Ok(Refund {
        source: OrderSource::Shopify,
        order_id,
        refund_id,
        amount_minor,
        currency,
        at_ms,
    })
}

// --- WooCommerce -----------------------------------------------------------

#[derive(Deserialize)]
struct WooOrder {
    id: Option<u64>,
    total: Option<String>,
    currency: Option<String>,
    date_created_gmt: Option<String>,
    date_created: Option<String>,
    customer_id: Option<u64>,
    coupon_lines: Option<Vec<WooCoupon>>,
    meta_data: Option<Vec<WooMeta>>,
}

#[derive(Deserialize)]
struct WooCoupon {
    code: String,
}

#[derive(Deserialize)]
struct WooMeta {
    key: String,
    value: Value,
}

/// Prefix of the meta keys of WooCommerce's own order attribution (8.5+),
/// e.g. `_wc_order_attribution_utm_source`.
const WOO_ATTRIBUTION_PREFIX: &str = "_wc_order_attribution_";

/// WooCommerce's `date_created_gmt` is UTC without an offset
/// ("2024-01-15T10:00:00"); an offset, if present, is honoured too.
fn woo_gmt_ms(text: &str, field: &str) -> Result<i64, OrderError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .map(|at| at.and_utc().timestamp_millis())
        .map_err(|e| {
            field_error(
                field,
                format!("{text:?} is not a time like 2024-01-15T10:00:00: {e}"),
            )
        })
}

/// A WooCommerce `order.created` / `order.updated` webhook body.
///
/// The time is `date_created_gmt`; `date_created` is used only when it
/// carries an offset, since without one it is the site's local time in a
/// zone the body does not name. The click id is the `clarion_cid` meta
/// entry; UTM parameters come from WooCommerce's own order attribution meta.
pub fn woocommerce_order(body: &[u8]) -> Result<Order, OrderError> {
    let raw: WooOrder = decode(body)?;
    let order_id = required(raw.id, "id")?.to_string();
    let currency = currency_field(raw.currency, "currency")?;
    let amount_minor = amount_field(raw.total, currency, "total")?;
    let at_ms = match (raw.date_created_gmt, raw.date_created) {
        (Some(gmt), _) => woo_gmt_ms(&gmt, "date_created_gmt")?,
        (None, Some(local)) => DateTime::parse_from_rfc3339(&local)
            .map(|at| at.timestamp_millis())
            .map_err(|_| {
                field_error(
                    "date_created",
                    format!("{local:?} has no UTC offset and date_created_gmt is missing: the shop's time zone is unknown"),
                )
            })?,
        (None, None) => return Err(field_error("date_created_gmt", "missing")),
    };
    let mut click_id = None;
    let mut utm = Utm::default();
    let mut handles = Vec::new();
    for meta in raw.meta_data.unwrap_or_default() {
        let Some(value) = text_value(&meta.value) else {
            continue;
        };
        if meta.key == CLICK_ID_PARAM {
            click_id.get_or_insert(value);
        } else if meta.key == SOCIAL_PARAM {
            handles.extend(social_handles(&value, "meta_data.clarion_social")?);
        } else if let Some(name) = meta.key.strip_prefix(WOO_ATTRIBUTION_PREFIX) {
            utm.set_param(name, &value);
        }
    }
    Ok(Order {
        source: OrderSource::WooCommerce,
        order_id,
        amount_minor,
        currency,
        at_ms,
        // 0 is WooCommerce's guest customer.
        customer_key: raw
            .customer_id
            .filter(|id| *id != 0)
            .map(|id| id.to_string()),
        click_id,
        discount_codes: raw
            .coupon_lines
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.code)
            .collect(),
        utm,
        social_handles: handles,
    })
}

// --- Generic JSON ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericOrder {
    order_id: Option<String>,
    amount_minor: Option<i64>,
    currency: Option<String>,
    at: Option<String>,
    customer_key: Option<String>,
    click_id: Option<String>,
    discount_codes: Option<Vec<String>>,
    utm_source: Option<String>,
    utm_medium: Option<String>,
    utm_campaign: Option<String>,
    utm_content: Option<String>,
    utm_term: Option<String>,
    social_handles: Option<Vec<String>>,
}

/// Clarion's own order format, for shops without a built-in parser:
/// `{"order_id", "amount_minor", "currency", "at" (RFC 3339)}` plus optional
/// `customer_key`, `click_id`, `discount_codes`, `utm_*`, `social_handles`
/// (`["mastodon:@fan@example.social"]`). Unknown fields are
/// refused so a misspelt optional field is not silently lost.
pub fn generic_order(body: &[u8]) -> Result<Order, OrderError> {
    let raw: GenericOrder = decode(body)?;
    let order_id = required_text(raw.order_id, "order_id")?;
    let amount_minor = required(raw.amount_minor, "amount_minor")?;
    let currency = currency_field(raw.currency, "currency")?;
    let at_ms = rfc3339_ms(&required(raw.at, "at")?, "at")?;
    let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    let social_handles = raw
        .social_handles
        .unwrap_or_default()
        .iter()
        .map(|h| social_handle(h).map_err(|e| field_error("social_handles", e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Order {
        source: OrderSource::Generic,
        order_id,
        amount_minor,
        currency,
        at_ms,
        customer_key: non_empty(raw.customer_key),
        click_id: non_empty(raw.click_id),
        discount_codes: raw.discount_codes.unwrap_or_default(),
        utm: Utm {
            source: non_empty(raw.utm_source),
            medium: non_empty(raw.utm_medium),
            campaign: non_empty(raw.utm_campaign),
            content: non_empty(raw.utm_content),
            term: non_empty(raw.utm_term),
        },
        social_handles,
    })
}

// --- CSV -------------------------------------------------------------------

/// A CSV row that could not be read; `line` is 1-based (the header is 1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

const CSV_COLUMNS: [&str; 13] = [
    "order_id",
    "amount",
    "currency",
    "at",
    "customer_key",
    "click_id",
    "discount_codes",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "social_handles",
];
const CSV_REQUIRED: [&str; 4] = ["order_id", "amount", "currency", "at"];

/// Orders from a CSV export with the header
/// `order_id,amount,currency,at,customer_key,click_id,discount_codes,utm_source,utm_medium,utm_campaign,utm_content`.
///
/// Optional `utm_term` and `social_handles` (`;`-separated
/// `platform:handle`) columns are read too. Columns may come in any
/// order and the optional ones may be left out; an unknown or missing
/// required column fails the whole file (one error, line 1). `amount` is a decimal ("12.30"), `at` RFC 3339, codes are
/// separated by `;`, cells are trimmed. Each row succeeds or fails on its
/// own, so one bad row does not hide the good ones.
pub fn csv_orders(reader: impl Read) -> Vec<Result<Order, RowError>> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header_error = |reason: String| vec![Err(RowError { line: 1, reason })];
    let headers = match csv.headers() {
        Ok(headers) => headers.clone(),
        Err(e) => return header_error(e.to_string()),
    };
    if let Some(unknown) = headers.iter().find(|h| !CSV_COLUMNS.contains(h)) {
        return header_error(format!(
            "unknown column `{unknown}` (known: {})",
            CSV_COLUMNS.join(", ")
        ));
    }
    if let Some(missing) = CSV_REQUIRED
        .iter()
        .find(|r| !headers.iter().any(|h| h == **r))
    {
        return header_error(format!("missing column `{missing}`"));
    }
    csv.records()
        .map(|record| {
            let record = record.map_err(|e| RowError {
                line: e.position().map_or(0, |p| p.line()),
                reason: e.to_string(),
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let cell = |name: &str| {
                headers
                    .iter()
                    .position(|h| h == name)
                    .and_then(|i| record.get(i))
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            csv_order(&cell).map_err(|e| RowError {
                line,
                reason: e.to_string(),
            })
        })
        .collect()
}

fn csv_order(cell: &dyn Fn(&str) -> Option<String>) -> Result<Order, OrderError> {
    let order_id = required(cell("order_id"), "order_id")?;
    let currency = currency_field(cell("currency"), "currency")?;
    let amount_minor = amount_field(cell("amount"), currency, "amount")?;
    let at_ms = rfc3339_ms(&required(cell("at"), "at")?, "at")?;
    let discount_codes = cell("discount_codes")
        .map(|codes| {
            codes
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Order {
        source: OrderSource::Csv,
        order_id,
        amount_minor,
        currency,
        at_ms,
        customer_key: cell("customer_key"),
        click_id: cell("click_id"),
        discount_codes,
        utm: Utm {
            source: cell("utm_source"),
            medium: cell("utm_medium"),
            campaign: cell("utm_campaign"),
            content: cell("utm_content"),
            term: cell("utm_term"),
        },
        social_handles: match cell("social_handles") {
            Some(text) => social_handles(&text, "social_handles")?,
            None => Vec::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: OrderError) -> String {
        match error {
            OrderError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    // A trimmed orders/create body in Shopify's REST Order shape.
    const SHOPIFY_ORDER: &str = r##"{
        "id": 820982911946154508,
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "name": "#9999",
        "email": "jon@example.com",
        "created_at": "2024-01-15T10:00:00-05:00",
        "currency": "USD",
        "presentment_currency": "USD",
        "subtotal_price": "398.00",
        "total_price": "403.00",
        "total_tax": "0.00",
        "source_name": "web",
        "checkout_token": "bd5a8aa1ecd019dd3520ff791ee3a24c",
        "cart_token": "68778783ad298f1c80c3bafcddeea02f",
        "landing_site": "/products/mug?utm_source=bluesky&utm_medium=kol&utm_campaign=spring&clarion_cid=landing-cid",
        "referring_site": "https://bsky.app/",
        "customer": {"id": 115310627314723954, "email": "john@example.com"},
        "discount_codes": [{"code": "ANA10", "amount": "10.00", "type": "percentage"}],
        "note_attributes": [{"name": "gift", "value": "yes"}, {"name": "clarion_cid", "value": "note-cid"},
            {"name": "clarion_social", "value": "Mastodon:@John@masto.example, bluesky:john.bsky.social"}],
        "line_items": [{"id": 866550311766439020, "price": "199.00", "quantity": 2}]
    }"##;

    #[test]
    fn reads_a_shopify_order() {
        let order = shopify_order(SHOPIFY_ORDER.as_bytes()).unwrap();
        assert_eq!(
            order,
            Order {
                source: OrderSource::Shopify,
                order_id: "820982911946154508".into(),
                amount_minor: 40_300,
                currency: Currency::new("USD").unwrap(),
                // 2024-01-15T15:00:00Z
                at_ms: 1_705_330_800_000,
                customer_key: Some("115310627314723954".into()),
                click_id: Some("note-cid".into()),
                discount_codes: vec!["ANA10".into()],
                utm: Utm {
                    source: Some("bluesky".into()),
                    medium: Some("kol".into()),
                    campaign: Some("spring".into()),
                    content: None,
                    term: None,
                },
                social_handles: vec![
                    "mastodon:john@masto.example".into(),
                    "bluesky:john.bsky.social".into()
                ],
            }
        );
        assert_eq!(order.facts().amount_minor, 40_300);
    }

    #[test]
    fn shopify_click_id_falls_back_to_the_landing_site() {
        let body = r#"{"id": 1, "total_price": "5.00", "currency": "EUR", "created_at": "2024-01-15T10:00:00Z",
            "customer": null, "discount_codes": [], "note_attributes": [],
            "landing_site": "https://shop.example/?clarion_cid=abc&utm_source=x%20y"}"#;
        let order = shopify_order(body.as_bytes()).unwrap();
        assert_eq!(order.click_id.as_deref(), Some("abc"));
        assert_eq!(order.utm.source.as_deref(), Some("x y"));
        assert_eq!(order.customer_key, None);

        let bare = r#"{"id": 1, "total_price": "5.00", "currency": "EUR", "created_at": "2024-01-15T10:00:00Z", "landing_site": null}"#;
        let order = shopify_order(bare.as_bytes()).unwrap();
        assert_eq!(order.click_id, None);
        assert!(order.utm.is_empty());
        assert!(order.discount_codes.is_empty());
    }

    #[test]
    fn malformed_shopify_orders_name_the_field() {
        let cases = [
            (
                r#"{"total_price": "5.00", "currency": "USD", "created_at": "2024-01-15T10:00:00Z"}"#,
                "id",
            ),
            (
                r#"{"id": "12", "total_price": "5.00", "currency": "USD", "created_at": "2024-01-15T10:00:00Z"}"#,
                "id",
            ),
            (
                r#"{"id": 1, "total_price": "abc", "currency": "USD", "created_at": "2024-01-15T10:00:00Z"}"#,
                "total_price",
            ),
            (
                r#"{"id": 1, "total_price": 5.0, "currency": "USD", "created_at": "2024-01-15T10:00:00Z"}"#,
                "total_price",
            ),
            (
                r#"{"id": 1, "total_price": "5.00", "currency": "usd", "created_at": "2024-01-15T10:00:00Z"}"#,
                "currency",
            ),
            (
                r#"{"id": 1, "total_price": "5.00", "currency": "USD", "created_at": "yesterday"}"#,
                "created_at",
            ),
            (
                r#"{"id": 1, "total_price": "5.00", "currency": "USD", "created_at": "2024-01-15T10:00:00Z", "customer": {"id": "x"}}"#,
                "customer.id",
            ),
            (
                r#"{"id": 1, "total_price": "5.00", "currency": "USD", "created_at": "2024-01-15T10:00:00Z", "discount_codes": [{"amount": "1.00"}]}"#,
                "discount_codes[0]",
            ),
            (r#"[1, 2]"#, "body"),
        ];
        for (body, field) in cases {
            assert_eq!(
                field_of(shopify_order(body.as_bytes()).unwrap_err()),
                field,
                "{body}"
            );
        }
        let error = shopify_order(br#"{"id": 1, "total_price": "abc", "currency": "USD", "created_at": "2024-01-15T10:00:00Z"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "field `total_price`: amount \"abc\": unexpected character 'a' (digits and one '.' only)"
        );
        assert!(matches!(
            shopify_order(b"{\"id\": "),
            Err(OrderError::Json(_))
        ));
        assert!(matches!(
            shopify_order(b"not json"),
            Err(OrderError::Json(_))
        ));
    }

    // A trimmed refunds/create body.
    const SHOPIFY_REFUND: &str = r#"{
        "id": 509562969,
        "order_id": 450789469,
        "created_at": "2024-01-20T12:00:00+00:00",
        "note": "damaged",
        "restock": true,
        "refund_line_items": [{"id": 104689539, "quantity": 1, "line_item_id": 703073504, "subtotal": 195.67,
            "subtotal_set": {"shop_money": {"amount": "195.67", "currency_code": "USD"}}}],
        "transactions": [
            {"id": 179259969, "kind": "refund", "status": "success", "amount": "41.94", "currency": "USD", "gateway": "bogus"},
            {"id": 179259970, "kind": "refund", "status": "failure", "amount": "99.00", "currency": "USD"},
            {"id": 179259971, "kind": "refund", "status": "success", "amount": "8.06", "currency": "USD"}
        ]
    }"#;

    #[test]
    fn reads_a_shopify_refund() {
        let refund = shopify_refund(SHOPIFY_REFUND.as_bytes()).unwrap();
        // 41.94 + 8.06; the failed 99.00 does not count.
        assert_eq!(
            refund,
            Refund {
                source: OrderSource::Shopify,
                order_id: "450789469".into(),
                refund_id: "509562969".into(),
                amount_minor: 5_000,
                currency: Currency::new("USD").unwrap(),
                at_ms: 1_705_752_000_000,
            }
        );
    }

    #[test]
    fn a_shopify_refund_without_transactions_uses_line_subtotals() {
        let body = r#"{"id": 2, "order_id": 1, "created_at": "2024-01-20T12:00:00Z", "transactions": [],
            "refund_line_items": [
                {"subtotal": 10.5, "subtotal_set": {"shop_money": {"amount": "10.50", "currency_code": "EUR"}}},
                {"subtotal": 4.5, "subtotal_set": {"shop_money": {"amount": "4.50", "currency_code": "EUR"}}}]}"#;
        let refund = shopify_refund(body.as_bytes()).unwrap();
        assert_eq!(refund.amount_minor, 1_500);
        assert_eq!(refund.currency, Currency::new("EUR").unwrap());
    }

    #[test]
    fn malformed_shopify_refunds_name_the_field() {
        let cases = [
            (
                r#"{"order_id": 1, "created_at": "2024-01-20T12:00:00Z"}"#,
                "id",
            ),
            (
                r#"{"id": 2, "created_at": "2024-01-20T12:00:00Z"}"#,
                "order_id",
            ),
            (
                r#"{"id": 2, "order_id": 1, "created_at": "2024-01-20T12:00:00Z", "transactions": []}"#,
                "transactions",
            ),
            (
                r#"{"id": 2, "order_id": 1, "created_at": "2024-01-20T12:00:00Z", "transactions": [{"kind": "refund", "amount": "1.00", "currency": "USD"}, {"kind": "refund", "amount": "1.00", "currency": "EUR"}]}"#,
                "transactions[1]",
            ),
            (
                r#"{"id": 2, "order_id": 1, "created_at": "2024-01-20T12:00:00Z", "transactions": [{"kind": "refund", "amount": "x", "currency": "USD"}]}"#,
                "transactions[0].amount",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                field_of(shopify_refund(body.as_bytes()).unwrap_err()),
                field,
                "{body}"
            );
        }
    }

    // A trimmed order.created body in WooCommerce's REST v3 shape.
    const WOO_ORDER: &str = r#"{
        "id": 727,
        "parent_id": 0,
        "status": "processing",
        "currency": "EUR",
        "date_created": "2024-01-15T11:00:00",
        "date_created_gmt": "2024-01-15T10:00:00",
        "discount_total": "3.00",
        "total": "29.99",
        "customer_id": 26,
        "billing": {"first_name": "John", "email": "john.doe@example.com"},
        "payment_method": "bacs",
        "meta_data": [
            {"id": 13106, "key": "_wc_order_attribution_source_type", "value": "utm"},
            {"id": 13107, "key": "_wc_order_attribution_utm_source", "value": "mastodon"},
            {"id": 13108, "key": "_wc_order_attribution_utm_medium", "value": "social"},
            {"id": 13109, "key": "some_plugin", "value": {"nested": [1, 2]}},
            {"id": 13110, "key": "clarion_cid", "value": "woo-cid"},
            {"id": 13111, "key": "clarion_social", "value": "x:@JohnDoe"}
        ],
        "line_items": [{"id": 315, "name": "Woo Single #1", "quantity": 2, "total": "6.00"}],
        "coupon_lines": [{"id": 320, "code": "bo15", "discount": "3.00"}]
    }"#;

    #[test]
    fn reads_a_woocommerce_order() {
        let order = woocommerce_order(WOO_ORDER.as_bytes()).unwrap();
        assert_eq!(
            order,
            Order {
                source: OrderSource::WooCommerce,
                order_id: "727".into(),
                amount_minor: 2_999,
                currency: Currency::new("EUR").unwrap(),
                // 2024-01-15T10:00:00Z (the GMT field, not the local one)
                at_ms: 1_705_312_800_000,
                customer_key: Some("26".into()),
                click_id: Some("woo-cid".into()),
                discount_codes: vec!["bo15".into()],
                utm: Utm {
                    source: Some("mastodon".into()),
                    medium: Some("social".into()),
                    ..Utm::default()
                },
                social_handles: vec!["x:johndoe".into()],
            }
        );
    }

    #[test]
    fn social_handles_are_normalised_and_bad_ones_refused() {
        assert_eq!(
            social_handle(" Bluesky:@Fan.BSKY.social ").unwrap(),
            "bluesky:fan.bsky.social"
        );
        for bad in [
            "fan@masto.test",
            ":fan",
            "mastodon:",
            "mast0don:fan",
            "x:two words",
        ] {
            assert!(social_handle(bad).is_err(), "{bad}");
        }
        let generic = br#"{"order_id": "g1", "amount_minor": 100, "currency": "USD",
            "at": "2024-01-15T10:00:00Z", "social_handles": ["mastodon:@Fan@masto.test"]}"#;
        assert_eq!(
            generic_order(generic).unwrap().social_handles,
            ["mastodon:fan@masto.test"]
        );
        let bad = br#"{"order_id": "g1", "amount_minor": 100, "currency": "USD",
            "at": "2024-01-15T10:00:00Z", "social_handles": ["fan"]}"#;
        let e = generic_order(bad).unwrap_err().to_string();
        assert!(
            e.contains("social_handles") && e.contains("PLATFORM:HANDLE"),
            "{e}"
        );
        let rows = csv_orders(
            "order_id,amount,currency,at,social_handles\n\
             c1,1.00,USD,2024-01-15T10:00:00Z,mastodon:@a@m.test;x:b\n\
             c2,1.00,USD,2024-01-15T10:00:00Z,nohandle\n"
                .as_bytes(),
        );
        assert_eq!(
            rows[0].as_ref().unwrap().social_handles,
            ["mastodon:a@m.test", "x:b"]
        );
        assert!(
            rows[1]
                .as_ref()
                .unwrap_err()
                .reason
                .contains("social_handles")
        );
    }

    #[test]
    fn woocommerce_guest_and_offset_dates() {
        let body = r#"{"id": 5, "total": "1000", "currency": "JPY", "customer_id": 0,
            "date_created": "2024-01-15T19:00:00+09:00"}"#;
        let order = woocommerce_order(body.as_bytes()).unwrap();
        assert_eq!(order.customer_key, None);
        assert_eq!(order.amount_minor, 1_000);
        assert_eq!(order.at_ms, 1_705_312_800_000);
    }

    #[test]
    fn malformed_woocommerce_orders_name_the_field() {
        let cases = [
            (
                r#"{"total": "1.00", "currency": "EUR", "date_created_gmt": "2024-01-15T10:00:00"}"#,
                "id",
            ),
            (
                r#"{"id": 5, "total": "abc", "currency": "EUR", "date_created_gmt": "2024-01-15T10:00:00"}"#,
                "total",
            ),
            (
                r#"{"id": 5, "currency": "EUR", "date_created_gmt": "2024-01-15T10:00:00"}"#,
                "total",
            ),
            (
                r#"{"id": 5, "total": "1.00", "currency": "EURO", "date_created_gmt": "2024-01-15T10:00:00"}"#,
                "currency",
            ),
            (
                r#"{"id": 5, "total": "1.00", "currency": "EUR", "date_created_gmt": "15/01/2024"}"#,
                "date_created_gmt",
            ),
            (
                r#"{"id": 5, "total": "1.00", "currency": "EUR", "date_created": "2024-01-15T10:00:00"}"#,
                "date_created",
            ),
            (
                r#"{"id": 5, "total": "1.00", "currency": "EUR"}"#,
                "date_created_gmt",
            ),
            (
                r#"{"id": 5, "total": "1.00", "currency": "EUR", "date_created_gmt": "2024-01-15T10:00:00", "coupon_lines": [{"code": 7}]}"#,
                "coupon_lines[0].code",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                field_of(woocommerce_order(body.as_bytes()).unwrap_err()),
                field,
                "{body}"
            );
        }
    }

    #[test]
    fn reads_a_generic_order() {
        let body = r#"{"order_id": "inv-2024-001", "amount_minor": 12345, "currency": "GBP",
            "at": "2024-01-15T10:00:00Z", "click_id": "c-9", "discount_codes": ["ANA10"],
            "utm_source": "newsletter", "utm_medium": ""}"#;
        let order = generic_order(body.as_bytes()).unwrap();
        assert_eq!(order.source, OrderSource::Generic);
        assert_eq!(order.order_id, "inv-2024-001");
        assert_eq!(order.amount_minor, 12_345);
        assert_eq!(order.at_ms, 1_705_312_800_000);
        assert_eq!(order.click_id.as_deref(), Some("c-9"));
        assert_eq!(order.customer_key, None);
        assert_eq!(order.discount_codes, vec!["ANA10".to_owned()]);
        assert_eq!(order.utm.source.as_deref(), Some("newsletter"));
        assert_eq!(order.utm.medium, None);
    }

    #[test]
    fn malformed_generic_orders_name_the_field() {
        let cases = [
            (
                r#"{"amount_minor": 1, "currency": "USD", "at": "2024-01-15T10:00:00Z"}"#,
                "order_id",
            ),
            (
                r#"{"order_id": " ", "amount_minor": 1, "currency": "USD", "at": "2024-01-15T10:00:00Z"}"#,
                "order_id",
            ),
            (
                r#"{"order_id": "a", "amount_minor": "1.00", "currency": "USD", "at": "2024-01-15T10:00:00Z"}"#,
                "amount_minor",
            ),
            (
                r#"{"order_id": "a", "amount_minor": 1.5, "currency": "USD", "at": "2024-01-15T10:00:00Z"}"#,
                "amount_minor",
            ),
            (
                r#"{"order_id": "a", "amount_minor": 1, "currency": "US", "at": "2024-01-15T10:00:00Z"}"#,
                "currency",
            ),
            (
                r#"{"order_id": "a", "amount_minor": 1, "currency": "USD", "at": "2024-01-15 10:00"}"#,
                "at",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                field_of(generic_order(body.as_bytes()).unwrap_err()),
                field,
                "{body}"
            );
        }
        let unknown = generic_order(
            br#"{"order_id": "a", "amount_minor": 1, "currency": "USD", "at": "2024-01-15T10:00:00Z", "utm_sorce": "x"}"#,
        )
        .unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `utm_sorce`"),
            "{unknown}"
        );
    }

    #[test]
    fn reads_csv_orders_row_by_row() {
        let csv = "\
order_id,amount,currency,at,customer_key,click_id,discount_codes,utm_source,utm_medium,utm_campaign,utm_content
1001, 12.30 ,USD,2024-01-15T10:00:00Z,cust-1,c-1,ANA10;  WELCOME ,bluesky,kol,spring,post-1
1002,abc,USD,2024-01-15T10:00:00Z,,,,,,,
1003,5,usd,2024-01-15T10:00:00Z,,,,,,,
1004,1500,JPY,2024-01-15T19:00:00+09:00,,,,,,,
1005,1.00,USD,2024-01-15T10:00:00Z,,,
";
        let rows = csv_orders(csv.as_bytes());
        assert_eq!(rows.len(), 5);
        let first = rows[0].as_ref().unwrap();
        assert_eq!(first.source, OrderSource::Csv);
        assert_eq!(first.order_id, "1001");
        assert_eq!(first.amount_minor, 1_230);
        assert_eq!(first.customer_key.as_deref(), Some("cust-1"));
        assert_eq!(first.click_id.as_deref(), Some("c-1"));
        assert_eq!(
            first.discount_codes,
            vec!["ANA10".to_owned(), "WELCOME".to_owned()]
        );
        assert_eq!(first.utm.content.as_deref(), Some("post-1"));

        let second = rows[1].as_ref().unwrap_err();
        assert_eq!(second.line, 3);
        assert!(second.reason.starts_with("field `amount`"), "{second}");
        let third = rows[2].as_ref().unwrap_err();
        assert_eq!(third.line, 4);
        assert!(third.reason.starts_with("field `currency`"), "{third}");
        let fourth = rows[3].as_ref().unwrap();
        assert_eq!(
            (fourth.amount_minor, fourth.at_ms),
            (1_500, 1_705_312_800_000)
        );
        // Too few cells.
        assert_eq!(rows[4].as_ref().unwrap_err().line, 6);
    }

    #[test]
    fn csv_columns_may_be_reordered_or_left_out() {
        let csv = "at,currency,order_id,amount,utm_term\n2024-01-15T10:00:00Z,EUR,9,0.5,mugs\n";
        let rows = csv_orders(csv.as_bytes());
        let order = rows[0].as_ref().unwrap();
        assert_eq!((order.order_id.as_str(), order.amount_minor), ("9", 50));
        assert_eq!(order.utm.term.as_deref(), Some("mugs"));
        assert!(order.discount_codes.is_empty());
    }

    #[test]
    fn bad_csv_headers_fail_the_file() {
        let unknown = csv_orders(
            "order_id,amount,currency,at,coupon\n1,1.00,USD,2024-01-15T10:00:00Z,X\n".as_bytes(),
        );
        assert_eq!(unknown.len(), 1);
        let error = unknown[0].as_ref().unwrap_err();
        assert_eq!(error.line, 1);
        assert!(
            error.reason.starts_with("unknown column `coupon`"),
            "{error}"
        );

        let missing = csv_orders("order_id,amount,at\n".as_bytes());
        assert_eq!(
            missing[0].as_ref().unwrap_err().reason,
            "missing column `currency`"
        );
    }
}
