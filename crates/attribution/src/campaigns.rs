//! KOL campaigns, one config file each: `content/campaigns/<name>.toml`.
//!
//! A campaign names its dates, currency and budget, the attribution model
//! and window to use, what counts as talking about it (hashtags, keywords,
//! the brand's own handles), the rates for earned media value, and its
//! creators with their handles, pay and discount codes:
//!
//! ```toml
//! name = "spring-sale"            # must equal the file stem
//! title = "Spring sale 2026"      # optional
//! starts = "2026-03-01"           # dates, inclusive; ends >= starts
//! ends = "2026-03-31"
//! currency = "USD"
//! budget = "5000.00"              # optional, decimal in currency
//! model = "last-click"            # optional default attribution model (Model::parse)
//! window_days = 7                 # optional, default 7, 1..=365
//! hashtags = ["#springsale"]      # optional; keywords = [...] optional
//! brand_handles = { bluesky = "shop.bsky.social" } # optional: handles that count as mentioning the brand
//! cpm = "8.00"                    # optional, for EMV
//! cost_per_engagement = "0.10"    # optional, for EMV
//!
//! [[creators]]
//! name = "ann"                    # unique within the campaign, [a-z0-9_-]+
//! handles = { bluesky = "ann.bsky.social", mastodon = "ann@masto.social", x = "ann" }
//! fee = "500.00"                  # flat fee, optional (default 0)
//! commission_percent = "10"       # optional decimal percent of attributed revenue (basis points internally: 10% = 1000 bp)
//! product_cost = "50.00"          # optional
//! codes = ["ANN10"]               # discount codes: unique across the campaign, compared case-insensitively
//! posts_contracted = 2            # optional, default 0
//! deadline = "2026-03-15"         # optional date by which the contracted posts are due
//! ```
//!
//! Rules beyond the comments above:
//!
//! - Unknown keys are refused (a typo must not silently drop a setting).
//! - The campaign name, like a creator's, is `[a-z0-9_-]+`: it is the file
//!   name and goes into links and commands.
//! - Dates are `YYYY-MM-DD`, quoted or as TOML dates (`starts = 2026-03-01`).
//! - Amounts are decimals in quotes (`"500.00"`) or whole numbers (`500`),
//!   never TOML floats (`500.00` unquoted): money is exact here. No more
//!   decimals than the currency has, never negative.
//! - A commission has at most two decimals (`"12.5"`, `"7.25"`) and is at
//!   most 100%.
//! - A hashtag starts with `#`; handles, hashtags, keywords and codes have no
//!   spaces. A leading `@` on a handle is dropped (`"@ann"` is `"ann"`), and
//!   two creators cannot share a handle on one platform.
//! - Discount codes are unique across every campaign (compared without
//!   case), so an order's code names exactly one creator; a code in two
//!   campaign files is an error naming both.
//! - A deadline cannot fall before the campaign starts.
//!
//! Errors name the file and the field, and for a creator its index and name:
//! `content/campaigns/spring.toml: creators[1] (ann): codes: "ANN10" is also
//! creator bob's code`.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::Model;
use crate::money::{Currency, parse_decimal};

/// The attribution window when a campaign names none.
pub const DEFAULT_WINDOW_DAYS: u32 = 7;

/// The longest attribution window a campaign may set.
pub const MAX_WINDOW_DAYS: u32 = 365;

/// Basis points in 100%.
const WHOLE_BP: u32 = 10_000;

/// Why a campaign file was refused.
#[derive(Debug, Error)]
pub enum CampaignError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Not TOML, a key that does not exist, or a value of the wrong type.
    #[error("{path}: line {line}: {message}")]
    Toml {
        path: String,
        line: usize,
        message: String,
    },
    /// A value that is there but wrong; `field` is e.g. `ends` or
    /// `creators[1] (ann): codes`.
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: String,
        field: String,
        reason: String,
    },
}

/// One KOL campaign, checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Campaign {
    pub name: String,
    pub title: Option<String>,
    /// First day, inclusive.
    pub starts: NaiveDate,
    /// Last day, inclusive; never before `starts`.
    pub ends: NaiveDate,
    pub currency: Currency,
    pub budget_minor: Option<i64>,
    /// The campaign's default attribution model.
    pub model: Model,
    /// Attribution window in days, 1..=365.
    pub window_days: u32,
    /// Each starting with `#`, as written.
    pub hashtags: Vec<String>,
    pub keywords: Vec<String>,
    /// Platform -> the brand's handle there (mentioning it counts).
    pub brand_handles: BTreeMap<String, String>,
    /// Cost per thousand impressions, for earned media value.
    pub cpm_minor: Option<i64>,
    pub cost_per_engagement_minor: Option<i64>,
    pub creators: Vec<Creator>,
}

/// A creator (KOL) hired for one campaign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Creator {
    pub name: String,
    /// Platform -> handle, without a leading `@`.
    pub handles: BTreeMap<String, String>,
    /// Flat fee; 0 when none.
    pub fee_minor: i64,
    /// Commission on attributed revenue in basis points (10% = 1000).
    pub commission_bp: u32,
    /// Value of the products sent; 0 when none.
    pub product_cost_minor: i64,
    /// Discount codes as written; compared without case.
    pub codes: Vec<String>,
    pub posts_contracted: u32,
    /// Day by which the contracted posts are due (inclusive).
    pub deadline: Option<NaiveDate>,
}

impl Campaign {
    /// Parses and checks one campaign file. `path_for_errors` only labels
    /// errors; `stem` is the file name without `.toml`, which `name` must
    /// equal.
    pub fn parse(path_for_errors: &str, stem: &str, text: &str) -> Result<Campaign, CampaignError> {
        let raw: RawCampaign = toml::from_str(text).map_err(|e| CampaignError::Toml {
            path: path_for_errors.to_owned(),
            line: e.span().map_or(1, |span| line_of(text, span.start)),
            message: e.message().trim_end().to_owned(),
        })?;
        raw.check(stem)
            .map_err(|(field, reason)| CampaignError::Invalid {
                path: path_for_errors.to_owned(),
                field,
                reason,
            })
    }

    /// Whether `day` is one of the campaign's days (both ends included).
    pub fn contains_day(&self, day: NaiveDate) -> bool {
        self.starts <= day && day <= self.ends
    }

    /// The creator called `name`.
    pub fn creator(&self, name: &str) -> Option<&Creator> {
        self.creators.iter().find(|c| c.name == name)
    }
}

impl Creator {
    /// What the creator costs given the revenue attributed to them: fee +
    /// product cost + commission, the commission rounded half up to a whole
    /// minor unit. Negative revenue (refunds past sales) earns no negative
    /// commission. Saturates instead of overflowing.
    pub fn cost_minor(&self, attributed_revenue_minor: i64) -> i64 {
        let revenue = i128::from(attributed_revenue_minor.max(0));
        let whole = i128::from(WHOLE_BP);
        let commission = (revenue * i128::from(self.commission_bp) * 2 + whole) / (2 * whole);
        let total = i128::from(self.fee_minor) + i128::from(self.product_cost_minor) + commission;
        i64::try_from(total).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX })
    }

    /// True when the deadline has passed (`today` is after it) and fewer
    /// posts than contracted were delivered. No deadline, never overdue.
    pub fn is_overdue(&self, delivered: u32, today: NaiveDate) -> bool {
        self.deadline.is_some_and(|deadline| today > deadline) && delivered < self.posts_contracted
    }

    /// Whether `code` is one of this creator's codes (without case).
    pub fn has_code(&self, code: &str) -> bool {
        let code = fold(code);
        self.codes.iter().any(|c| fold(c) == code)
    }
}

/// Every campaign, by name, with a discount-code index across them.
#[derive(Clone, Debug, Default)]
pub struct Campaigns {
    by_name: BTreeMap<String, Campaign>,
    /// Folded code -> (campaign name, creator index).
    codes: HashMap<String, (String, usize)>,
    /// Campaign name -> the path it was read from, for later errors.
    paths: HashMap<String, String>,
}

impl Campaigns {
    /// Adds a parsed campaign. Refuses a second campaign of the same name,
    /// and a discount code some campaign already uses (the error is put on
    /// `path_for_errors`, the newcomer, and names the other file).
    pub fn insert(
        &mut self,
        path_for_errors: &str,
        campaign: Campaign,
    ) -> Result<(), CampaignError> {
        let invalid = |field: String, reason: String| CampaignError::Invalid {
            path: path_for_errors.to_owned(),
            field,
            reason,
        };
        if let Some(other) = self.paths.get(&campaign.name) {
            return Err(invalid(
                "name".to_owned(),
                format!("{:?} is also the name of {other}", campaign.name),
            ));
        }
        // Checked again here for campaigns built by hand, not parsed.
        let mut added: HashMap<String, usize> = HashMap::new();
        for (index, creator) in campaign.creators.iter().enumerate() {
            for code in &creator.codes {
                let key = fold(code);
                if let Some((other_campaign, other_index)) = self.codes.get(&key) {
                    let other_creator = self
                        .by_name
                        .get(other_campaign)
                        .and_then(|c| c.creators.get(*other_index))
                        .map_or("?", |c| c.name.as_str());
                    let other_path = self.paths.get(other_campaign).map_or("?", String::as_str);
                    return Err(invalid(
                        format!("creators[{index}] ({}): codes", creator.name),
                        format!(
                            "{code:?} is also creator {other_creator}'s code in campaign {other_campaign} ({other_path})"
                        ),
                    ));
                }
                if let Some(other) = added.insert(key, index) {
                    let other = campaign
                        .creators
                        .get(other)
                        .map_or("?", |c| c.name.as_str());
                    return Err(invalid(
                        format!("creators[{index}] ({}): codes", creator.name),
                        format!("{code:?} is also creator {other}'s code"),
                    ));
                }
            }
        }
        for (key, index) in added {
            self.codes.insert(key, (campaign.name.clone(), index));
        }
        self.paths
            .insert(campaign.name.clone(), path_for_errors.to_owned());
        self.by_name.insert(campaign.name.clone(), campaign);
        Ok(())
    }

    /// The campaign called `name`.
    pub fn get(&self, name: &str) -> Option<&Campaign> {
        self.by_name.get(name)
    }

    /// Every campaign, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Campaign> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The creator whose discount code `code` is (without case), in
    /// `campaign` when given, else in any campaign (codes are unique across
    /// campaigns, so there is at most one).
    pub fn creator_for_code(
        &self,
        campaign: Option<&str>,
        code: &str,
    ) -> Option<(&Campaign, &Creator)> {
        let (campaign_name, index) = self.codes.get(&fold(code))?;
        if campaign.is_some_and(|wanted| wanted != campaign_name) {
            return None;
        }
        let found = self.by_name.get(campaign_name)?;
        Some((found, found.creators.get(*index)?))
    }
}

impl<'a> IntoIterator for &'a Campaigns {
    type Item = &'a Campaign;
    type IntoIter = std::collections::btree_map::Values<'a, String, Campaign>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_name.values()
    }
}

/// Reads every `*.toml` in `dir` (not its subfolders; names starting with
/// `.`, such as editors' lock files, are skipped), in name order so errors
/// are the same on every run. A missing `dir` is no campaigns.
pub fn load_dir(dir: &Path) -> Result<Campaigns, CampaignError> {
    let read_error = |path: &Path, source: io::Error| CampaignError::Read {
        path: path.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Campaigns::default()),
        Err(e) => return Err(read_error(dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| read_error(dir, e))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden || path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        if entry
            .file_type()
            .map_err(|e| read_error(&path, e))?
            .is_dir()
        {
            continue;
        }
        files.push(path);
    }
    files.sort();
    let mut campaigns = Campaigns::default();
    for path in files {
        let label = path.display().to_string();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            return Err(CampaignError::Invalid {
                path: label,
                field: "name".to_owned(),
                reason: "the file name is not UTF-8".to_owned(),
            });
        };
        let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
        let campaign = Campaign::parse(&label, stem, &text)?;
        campaigns.insert(&label, campaign)?;
    }
    Ok(campaigns)
}

// --- Parsing ---------------------------------------------------------------

/// The file as written; checked into a [`Campaign`] by [`RawCampaign::check`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    name: Option<String>,
    title: Option<String>,
    starts: Option<toml::Value>,
    ends: Option<toml::Value>,
    currency: Option<String>,
    budget: Option<toml::Value>,
    model: Option<String>,
    window_days: Option<i64>,
    #[serde(default)]
    hashtags: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    brand_handles: BTreeMap<String, String>,
    cpm: Option<toml::Value>,
    cost_per_engagement: Option<toml::Value>,
    #[serde(default)]
    creators: Vec<RawCreator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreator {
    name: Option<String>,
    #[serde(default)]
    handles: BTreeMap<String, String>,
    fee: Option<toml::Value>,
    commission_percent: Option<toml::Value>,
    product_cost: Option<toml::Value>,
    #[serde(default)]
    codes: Vec<String>,
    posts_contracted: Option<i64>,
    deadline: Option<toml::Value>,
}

/// (field, reason) of the first problem found.
type Problem = (String, String);

fn problem(field: &str, reason: impl Into<String>) -> Problem {
    (field.to_owned(), reason.into())
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Case folding for discount codes and handles.
fn fold(text: &str) -> String {
    text.to_lowercase()
}

fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn slug(field: &str, value: Option<String>) -> Result<String, Problem> {
    let value = value.ok_or_else(|| problem(field, "missing"))?;
    if !is_slug(&value) {
        return Err(problem(
            field,
            format!("{value:?}: use lower-case letters, digits, '-' and '_' only"),
        ));
    }
    Ok(value)
}

fn date(field: &str, value: Option<toml::Value>) -> Result<Option<NaiveDate>, Problem> {
    let Some(value) = value else {
        return Ok(None);
    };
    let wanted = "expected a date like \"2026-03-01\"";
    let parsed = match &value {
        toml::Value::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .filter(|_| text.len() == 10)
            .ok_or_else(|| problem(field, format!("{text:?} is not a date: {wanted}")))?,
        toml::Value::Datetime(at) => match (at.date, at.time, at.offset) {
            (Some(day), None, None) => NaiveDate::from_ymd_opt(
                i32::from(day.year),
                u32::from(day.month),
                u32::from(day.day),
            )
            .ok_or_else(|| problem(field, format!("{at} is not a date: {wanted}")))?,
            _ => return Err(problem(field, format!("{at} has a time: {wanted}"))),
        },
        other => return Err(problem(field, format!("{other}: {wanted}"))),
    };
    Ok(Some(parsed))
}

fn required_date(field: &str, value: Option<toml::Value>) -> Result<NaiveDate, Problem> {
    date(field, value)?.ok_or_else(|| problem(field, "missing"))
}

/// Text of a decimal written as a quoted string or a TOML integer.
fn decimal_text(field: &str, value: &toml::Value) -> Result<String, Problem> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Err(problem(
            field,
            format!("write the amount in quotes (\"{number}\"): TOML floats are not exact"),
        )),
        other => Err(problem(
            field,
            format!("{other}: expected a decimal in quotes, e.g. \"12.50\""),
        )),
    }
}

/// A non-negative amount in minor units of `currency`.
fn amount(
    field: &str,
    value: Option<toml::Value>,
    currency: Currency,
) -> Result<Option<i64>, Problem> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = decimal_text(field, &value)?;
    let minor = parse_decimal(&text, currency).map_err(|e| problem(field, e.to_string()))?;
    if minor < 0 {
        return Err(problem(field, format!("{text:?} is negative")));
    }
    Ok(Some(minor))
}

/// A percent with at most two decimals, 0..=100, as basis points.
fn percent_bp(field: &str, value: Option<toml::Value>) -> Result<u32, Problem> {
    let Some(value) = value else {
        return Ok(0);
    };
    let text = decimal_text(field, &value)?;
    let bad = |why: &str| problem(field, format!("{text:?}: {why}"));
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || text.ends_with('.') {
        return Err(bad("expected a percent such as \"10\" or \"12.5\""));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 2 {
        return Err(bad("at most two decimals (a basis point)"));
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 3 {
        return Err(bad("more than 100%"));
    }
    let whole: u32 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad("not a number"))?
    };
    let fraction: u32 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| bad("not a number"))?;
    let bp = whole * 100 + fraction;
    if bp > WHOLE_BP {
        return Err(bad("more than 100%"));
    }
    Ok(bp)
}

/// A non-empty word without whitespace.
fn word(field: &str, what: &str, value: &str) -> Result<(), Problem> {
    if value.is_empty() {
        return Err(problem(field, format!("an empty {what}")));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(problem(field, format!("{value:?}: a {what} has no spaces")));
    }
    Ok(())
}

/// Platform -> handle, keys checked, a leading `@` dropped.
fn handles(
    field: &str,
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Problem> {
    let mut checked = BTreeMap::new();
    for (platform, handle) in raw {
        let key = format!("{field}.{platform}");
        if !is_slug(&platform) {
            return Err(problem(
                &key,
                "a platform name uses lower-case letters, digits, '-' and '_' only",
            ));
        }
        let handle = handle.strip_prefix('@').unwrap_or(&handle).to_owned();
        word(&key, "handle", &handle)?;
        checked.insert(platform, handle);
    }
    Ok(checked)
}

impl RawCampaign {
    fn check(self, stem: &str) -> Result<Campaign, Problem> {
        let name = slug("name", self.name)?;
        if name != stem {
            return Err(problem(
                "name",
                format!("{name:?} must equal the file name ({stem:?} from {stem}.toml)"),
            ));
        }
        let title = match self.title {
            Some(title) if title.trim().is_empty() => {
                return Err(problem("title", "empty (leave it out instead)"));
            }
            title => title,
        };
        let currency = self
            .currency
            .ok_or_else(|| problem("currency", "missing"))?;
        let currency = Currency::new(&currency).map_err(|e| problem("currency", e.to_string()))?;
        let starts = required_date("starts", self.starts)?;
        let ends = required_date("ends", self.ends)?;
        if ends < starts {
            return Err(problem(
                "ends",
                format!("{ends} is before starts ({starts})"),
            ));
        }
        let budget_minor = amount("budget", self.budget, currency)?;
        let model = match self.model {
            Some(model) => Model::parse(&model).map_err(|e| problem("model", e.to_string()))?,
            None => Model::default(),
        };
        let window_days = match self.window_days {
            None => DEFAULT_WINDOW_DAYS,
            Some(days) => u32::try_from(days)
                .ok()
                .filter(|d| (1..=MAX_WINDOW_DAYS).contains(d))
                .ok_or_else(|| {
                    problem(
                        "window_days",
                        format!("{days}: expected 1 to {MAX_WINDOW_DAYS} days"),
                    )
                })?,
        };
        for (index, tag) in self.hashtags.iter().enumerate() {
            let field = format!("hashtags[{index}]");
            word(&field, "hashtag", tag)?;
            if !tag.starts_with('#') || tag.len() < 2 {
                return Err(problem(
                    &field,
                    format!("{tag:?}: a hashtag starts with '#', e.g. \"#springsale\""),
                ));
            }
        }
        for (index, keyword) in self.keywords.iter().enumerate() {
            if keyword.trim().is_empty() {
                return Err(problem(&format!("keywords[{index}]"), "an empty keyword"));
            }
        }
        let brand_handles = handles("brand_handles", self.brand_handles)?;
        let cpm_minor = amount("cpm", self.cpm, currency)?;
        let cost_per_engagement_minor =
            amount("cost_per_engagement", self.cost_per_engagement, currency)?;

        let mut creators: Vec<Creator> = Vec::with_capacity(self.creators.len());
        // Folded code -> creator name; (platform, folded handle) -> creator name.
        let mut codes: HashMap<String, String> = HashMap::new();
        let mut taken_handles: HashMap<(String, String), String> = HashMap::new();
        for (index, mut raw) in self.creators.into_iter().enumerate() {
            let unnamed = format!("creators[{index}]");
            let creator_name = slug(&format!("{unnamed}: name"), raw.name.take())?;
            let at = |field: &str| format!("{unnamed} ({creator_name}): {field}");
            if creators.iter().any(|c| c.name == creator_name) {
                return Err(problem(
                    &at("name"),
                    format!("{creator_name:?} is listed twice"),
                ));
            }
            let creator = raw.check(&at, &creator_name, currency, starts)?;
            for code in &creator.codes {
                if let Some(other) = codes.insert(fold(code), creator_name.clone()) {
                    let reason = if other == creator_name {
                        format!("{code:?} is listed twice")
                    } else {
                        format!("{code:?} is also creator {other}'s code")
                    };
                    return Err(problem(&at("codes"), reason));
                }
            }
            for (platform, handle) in &creator.handles {
                let key = (platform.clone(), fold(handle));
                if let Some(other) = taken_handles.insert(key, creator_name.clone()) {
                    return Err(problem(
                        &at(&format!("handles.{platform}")),
                        format!("{handle:?} is also creator {other}'s handle"),
                    ));
                }
            }
            creators.push(creator);
        }

        Ok(Campaign {
            name,
            title,
            starts,
            ends,
            currency,
            budget_minor,
            model,
            window_days,
            hashtags: self.hashtags,
            keywords: self.keywords,
            brand_handles,
            cpm_minor,
            cost_per_engagement_minor,
            creators,
        })
    }
}

impl RawCreator {
    /// `at(field)` labels a field of this creator.
    fn check(
        self,
        at: &dyn Fn(&str) -> String,
        name: &str,
        currency: Currency,
        starts: NaiveDate,
    ) -> Result<Creator, Problem> {
        let handles = handles(&at("handles"), self.handles)?;
        let fee_minor = amount(&at("fee"), self.fee, currency)?.unwrap_or(0);
        let commission_bp = percent_bp(&at("commission_percent"), self.commission_percent)?;
        let product_cost_minor =
            amount(&at("product_cost"), self.product_cost, currency)?.unwrap_or(0);
        for (index, code) in self.codes.iter().enumerate() {
            word(&at(&format!("codes[{index}]")), "discount code", code)?;
        }
        let posts_contracted = match self.posts_contracted {
            None => 0,
            Some(posts) => u32::try_from(posts).map_err(|_| {
                problem(
                    &at("posts_contracted"),
                    format!("{posts}: expected a count of 0 or more"),
                )
            })?,
        };
        let deadline = date(&at("deadline"), self.deadline)?;
        if let Some(deadline) = deadline
            && deadline < starts
        {
            return Err(problem(
                &at("deadline"),
                format!("{deadline} is before the campaign starts ({starts})"),
            ));
        }
        Ok(Creator {
            name: name.to_owned(),
            handles,
            fee_minor,
            commission_bp,
            product_cost_minor,
            codes: self.codes,
            posts_contracted,
            deadline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "content/campaigns/spring-sale.toml";

    const EXAMPLE: &str = r##"
name = "spring-sale"
title = "Spring sale 2026"
starts = "2026-03-01"
ends = "2026-03-31"
currency = "USD"
budget = "5000.00"
model = "last-click"
window_days = 7
hashtags = ["#springsale"]
brand_handles = { bluesky = "shop.bsky.social" }
cpm = "8.00"
cost_per_engagement = "0.10"

[[creators]]
name = "bob"
handles = { bluesky = "bob.bsky.social" }
fee = "300"
codes = ["BOB15"]

[[creators]]
name = "ann"
handles = { bluesky = "ann.bsky.social", mastodon = "@ann@masto.social", x = "ann" }
fee = "500.00"
commission_percent = "10"
product_cost = "50.00"
codes = ["ANN10"]
posts_contracted = 2
deadline = "2026-03-15"
"##;

    fn parse(text: &str) -> Result<Campaign, CampaignError> {
        Campaign::parse(PATH, "spring-sale", text)
    }

    /// The error message of `text` with `from` replaced by `to`.
    fn error_after(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from}");
        match parse(&EXAMPLE.replacen(from, to, 1)) {
            Ok(_) => panic!("{to} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn usd() -> Currency {
        Currency::new("USD").unwrap()
    }

    #[test]
    fn parses_the_example() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.name, "spring-sale");
        assert_eq!(c.title.as_deref(), Some("Spring sale 2026"));
        assert_eq!((c.starts, c.ends), (day("2026-03-01"), day("2026-03-31")));
        assert_eq!(c.currency, usd());
        assert_eq!(c.budget_minor, Some(500_000));
        assert_eq!(c.model, Model::LastClick);
        assert_eq!(c.window_days, 7);
        assert_eq!(c.hashtags, ["#springsale"]);
        assert!(c.keywords.is_empty());
        assert_eq!(c.brand_handles["bluesky"], "shop.bsky.social");
        assert_eq!(c.cpm_minor, Some(800));
        assert_eq!(c.cost_per_engagement_minor, Some(10));
        let ann = c.creator("ann").unwrap();
        assert_eq!(ann.fee_minor, 50_000);
        assert_eq!(ann.commission_bp, 1_000);
        assert_eq!(ann.product_cost_minor, 5_000);
        assert_eq!(ann.codes, ["ANN10"]);
        assert_eq!(ann.posts_contracted, 2);
        assert_eq!(ann.deadline, Some(day("2026-03-15")));
        // A leading '@' is dropped.
        assert_eq!(ann.handles["mastodon"], "ann@masto.social");
        let bob = c.creator("bob").unwrap();
        assert_eq!(
            (bob.fee_minor, bob.commission_bp, bob.product_cost_minor),
            (30_000, 0, 0)
        );
        assert_eq!((bob.posts_contracted, bob.deadline), (0, None));
    }

    #[test]
    fn defaults_for_a_minimal_campaign() {
        let c = Campaign::parse(
            "x.toml",
            "x",
            "name = \"x\"\nstarts = 2026-01-01\nends = 2026-01-01\ncurrency = \"JPY\"\n",
        )
        .unwrap();
        assert_eq!(c.title, None);
        assert_eq!(c.model, Model::LastClick);
        assert_eq!(c.window_days, DEFAULT_WINDOW_DAYS);
        assert_eq!(c.budget_minor, None);
        assert!(c.creators.is_empty());
        assert!(c.contains_day(day("2026-01-01")));
    }

    #[test]
    fn reads_options_in_their_other_spellings() {
        let c = parse(
            &EXAMPLE
                .replace("\"2026-03-01\"", "2026-03-01")
                .replace("model = \"last-click\"", "model = \"time-decay:3d\"")
                .replace("budget = \"5000.00\"", "budget = 5000")
                .replace(
                    "commission_percent = \"10\"",
                    "commission_percent = \"12.5\"",
                ),
        )
        .unwrap();
        assert_eq!(c.starts, day("2026-03-01"));
        assert_eq!(
            c.model,
            Model::TimeDecay {
                half_life_ms: 3 * 24 * 3_600_000
            }
        );
        assert_eq!(c.budget_minor, Some(500_000));
        assert_eq!(c.creator("ann").unwrap().commission_bp, 1_250);
    }

    #[test]
    fn refuses_unknown_keys() {
        let message = error_after("cpm = ", "cmp = ");
        assert!(
            message.starts_with(&format!("{PATH}: line 12: unknown field `cmp`")),
            "{message}"
        );
        let message = error_after("posts_contracted = 2", "posts = 2");
        assert!(
            message.starts_with(&format!("{PATH}: line 28: unknown field `posts`")),
            "{message}"
        );
    }

    #[test]
    fn refuses_bad_dates() {
        assert_eq!(
            error_after("\"2026-03-31\"", "\"2026-02-30\""),
            format!(
                "{PATH}: ends: \"2026-02-30\" is not a date: expected a date like \"2026-03-01\""
            )
        );
        assert!(error_after("\"2026-03-01\"", "\"03/01/2026\"").contains("starts: \"03/01/2026\""));
        assert!(
            error_after("\"2026-03-01\"", "2026-03-01T10:00:00")
                .contains("starts: 2026-03-01T10:00:00 has a time")
        );
        assert_eq!(
            error_after("deadline = \"2026-03-15\"", "deadline = \"2026-3-15\""),
            format!(
                "{PATH}: creators[1] (ann): deadline: \"2026-3-15\" is not a date: expected a date like \"2026-03-01\""
            )
        );
        assert_eq!(
            error_after("starts = \"2026-03-01\"\n", ""),
            format!("{PATH}: starts: missing")
        );
    }

    #[test]
    fn refuses_ends_before_starts() {
        assert_eq!(
            error_after("\"2026-03-31\"", "\"2026-02-28\""),
            format!("{PATH}: ends: 2026-02-28 is before starts (2026-03-01)")
        );
        assert_eq!(
            error_after("\"2026-03-15\"", "\"2026-02-15\""),
            format!(
                "{PATH}: creators[1] (ann): deadline: 2026-02-15 is before the campaign starts (2026-03-01)"
            )
        );
    }

    #[test]
    fn refuses_duplicate_creators() {
        assert_eq!(
            error_after("name = \"ann\"", "name = \"bob\""),
            format!("{PATH}: creators[1] (bob): name: \"bob\" is listed twice")
        );
        assert_eq!(
            error_after("name = \"ann\"", "name = \"Ann\""),
            format!(
                "{PATH}: creators[1]: name: \"Ann\": use lower-case letters, digits, '-' and '_' only"
            )
        );
        // A key twice in one table is a TOML error, with its line.
        let duplicate = parse(&EXAMPLE.replace("x = \"ann\"", "bluesky = \"ann2\""));
        assert!(
            matches!(duplicate, Err(CampaignError::Toml { line: 23, .. })),
            "{duplicate:?}"
        );
        assert_eq!(
            error_after("\"ann.bsky.social\"", "\"BOB.bsky.social\""),
            format!(
                "{PATH}: creators[1] (ann): handles.bluesky: \"BOB.bsky.social\" is also creator bob's handle"
            )
        );
    }

    #[test]
    fn refuses_a_code_two_creators_share() {
        assert_eq!(
            error_after("[\"ANN10\"]", "[\"bob15\"]"),
            format!("{PATH}: creators[1] (ann): codes: \"bob15\" is also creator bob's code")
        );
        assert_eq!(
            error_after("[\"ANN10\"]", "[\"ANN10\", \"ann10\"]"),
            format!("{PATH}: creators[1] (ann): codes: \"ann10\" is listed twice")
        );
        assert_eq!(
            error_after("[\"ANN10\"]", "[\"ANN 10\"]"),
            format!(
                "{PATH}: creators[1] (ann): codes[0]: \"ANN 10\": a discount code has no spaces"
            )
        );
    }

    #[test]
    fn refuses_bad_currencies() {
        assert_eq!(
            error_after("\"USD\"", "\"usd\""),
            format!(
                "{PATH}: currency: currency \"usd\" is not three upper-case letters (ISO 4217, e.g. USD)"
            )
        );
        assert_eq!(
            error_after("currency = \"USD\"\n", ""),
            format!("{PATH}: currency: missing")
        );
    }

    #[test]
    fn refuses_bad_decimals() {
        assert_eq!(
            error_after("\"5000.00\"", "\"5,000.00\""),
            format!(
                "{PATH}: budget: amount \"5,000.00\": unexpected character ',' (digits and one '.' only)"
            )
        );
        assert_eq!(
            error_after("\"5000.00\"", "5000.50"),
            format!(
                "{PATH}: budget: write the amount in quotes (\"5000.5\"): TOML floats are not exact"
            )
        );
        assert_eq!(
            error_after("\"500.00\"", "\"500.001\""),
            format!("{PATH}: creators[1] (ann): fee: amount \"500.001\": USD has 2 decimal places")
        );
        assert_eq!(
            error_after("\"50.00\"", "\"-50.00\""),
            format!("{PATH}: creators[1] (ann): product_cost: \"-50.00\" is negative")
        );
        assert_eq!(
            error_after("\"0.10\"", "\"ten cents\""),
            format!(
                "{PATH}: cost_per_engagement: amount \"ten cents\": unexpected character 't' (digits and one '.' only)"
            )
        );
        for (bad, why) in [
            ("\"10.125\"", "at most two decimals (a basis point)"),
            ("\"100.01\"", "more than 100%"),
            ("\"1000\"", "more than 100%"),
            ("\"-5\"", "expected a percent such as \"10\" or \"12.5\""),
            ("\"5.\"", "expected a percent such as \"10\" or \"12.5\""),
            ("\".5\"", "expected a percent such as \"10\" or \"12.5\""),
        ] {
            assert_eq!(
                error_after(
                    "commission_percent = \"10\"",
                    &format!("commission_percent = {bad}")
                ),
                format!("{PATH}: creators[1] (ann): commission_percent: {bad}: {why}"),
            );
        }
        assert_eq!(percent_bp("p", Some(toml::Value::Integer(100))), Ok(10_000));
        assert_eq!(
            percent_bp("p", Some(toml::Value::String("007.50".into()))),
            Ok(750)
        );
        assert_eq!(
            percent_bp("p", Some(toml::Value::String("0.01".into()))),
            Ok(1)
        );
    }

    #[test]
    fn refuses_a_name_that_is_not_the_file_name() {
        assert_eq!(
            Campaign::parse("content/campaigns/spring.toml", "spring", EXAMPLE)
                .unwrap_err()
                .to_string(),
            "content/campaigns/spring.toml: name: \"spring-sale\" must equal the file name (\"spring\" from spring.toml)"
        );
        assert_eq!(
            error_after("name = \"spring-sale\"", "name = \"Spring Sale\""),
            format!(
                "{PATH}: name: \"Spring Sale\": use lower-case letters, digits, '-' and '_' only"
            )
        );
    }

    #[test]
    fn refuses_other_bad_values() {
        assert_eq!(
            error_after("window_days = 7", "window_days = 0"),
            format!("{PATH}: window_days: 0: expected 1 to 365 days")
        );
        assert_eq!(
            error_after("window_days = 7", "window_days = 366"),
            format!("{PATH}: window_days: 366: expected 1 to 365 days")
        );
        assert!(
            error_after("\"last-click\"", "\"lastclick\"").starts_with(&format!(
                "{PATH}: model: unknown attribution model \"lastclick\""
            ))
        );
        assert_eq!(
            error_after("\"#springsale\"", "\"springsale\""),
            format!(
                "{PATH}: hashtags[0]: \"springsale\": a hashtag starts with '#', e.g. \"#springsale\""
            )
        );
        assert_eq!(
            error_after("posts_contracted = 2", "posts_contracted = -2"),
            format!(
                "{PATH}: creators[1] (ann): posts_contracted: -2: expected a count of 0 or more"
            )
        );
        assert_eq!(
            error_after("x = \"ann\"", "x = \"\""),
            format!("{PATH}: creators[1] (ann): handles.x: an empty handle")
        );
        assert!(matches!(
            parse(&EXAMPLE.replace("window_days = 7", "window_days = \"7\"")),
            Err(CampaignError::Toml { line: 9, .. })
        ));
    }

    #[test]
    fn creator_cost_adds_fee_product_and_rounded_commission() {
        let c = parse(EXAMPLE).unwrap();
        let ann = c.creator("ann").unwrap();
        // 500.00 + 50.00 + 10% of 1234.56 (123.456 -> 123.46).
        assert_eq!(ann.cost_minor(123_456), 50_000 + 5_000 + 12_346);
        // 10% of 0.05 = 0.005 -> 0.01 (half up); of 0.04 -> 0.
        assert_eq!(ann.cost_minor(5), 55_001);
        assert_eq!(ann.cost_minor(4), 55_000);
        // Refunds past sales earn no negative commission.
        assert_eq!(ann.cost_minor(-10_000), 55_000);
        let bob = c.creator("bob").unwrap();
        assert_eq!(bob.cost_minor(1_000_000), 30_000);
        let greedy = Creator {
            commission_bp: WHOLE_BP,
            fee_minor: i64::MAX,
            ..ann.clone()
        };
        assert_eq!(greedy.cost_minor(i64::MAX), i64::MAX);
    }

    #[test]
    fn campaign_days_and_overdue_posts() {
        let c = parse(EXAMPLE).unwrap();
        assert!(!c.contains_day(day("2026-02-28")));
        assert!(c.contains_day(day("2026-03-01")));
        assert!(c.contains_day(day("2026-03-31")));
        assert!(!c.contains_day(day("2026-04-01")));
        let ann = c.creator("ann").unwrap();
        // Due on the 15th: not overdue that day, overdue after unless delivered.
        assert!(!ann.is_overdue(0, day("2026-03-15")));
        assert!(ann.is_overdue(1, day("2026-03-16")));
        assert!(!ann.is_overdue(2, day("2026-03-16")));
        // No deadline, never overdue.
        assert!(!c.creator("bob").unwrap().is_overdue(0, day("2027-01-01")));
    }

    #[test]
    fn finds_creators_by_code_without_case() {
        let mut all = Campaigns::default();
        all.insert(PATH, parse(EXAMPLE).unwrap()).unwrap();
        let summer = Campaign::parse(
            "content/campaigns/summer.toml",
            "summer",
            "name = \"summer\"\nstarts = \"2026-06-01\"\nends = \"2026-06-30\"\ncurrency = \"USD\"\n\
             [[creators]]\nname = \"ann\"\ncodes = [\"SUN5\"]\n",
        )
        .unwrap();
        all.insert("content/campaigns/summer.toml", summer).unwrap();
        assert_eq!(all.len(), 2);
        let (campaign, creator) = all.creator_for_code(None, "ann10").unwrap();
        assert_eq!(
            (campaign.name.as_str(), creator.name.as_str()),
            ("spring-sale", "ann")
        );
        let (campaign, creator) = all.creator_for_code(Some("summer"), "Sun5").unwrap();
        assert_eq!(
            (campaign.name.as_str(), creator.name.as_str()),
            ("summer", "ann")
        );
        assert!(all.creator_for_code(Some("summer"), "ANN10").is_none());
        assert!(all.creator_for_code(None, "NOPE").is_none());
        assert!(all.creator_for_code(Some("nope"), "ANN10").is_none());
        assert!(creator.has_code("sun5"));
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["spring-sale", "summer"]);
    }

    #[test]
    fn refuses_a_code_used_in_two_campaigns() {
        let mut all = Campaigns::default();
        all.insert(PATH, parse(EXAMPLE).unwrap()).unwrap();
        let other = "content/campaigns/summer.toml";
        let summer = Campaign::parse(
            other,
            "summer",
            "name = \"summer\"\nstarts = \"2026-06-01\"\nends = \"2026-06-30\"\ncurrency = \"USD\"\n\
             [[creators]]\nname = \"cat\"\ncodes = [\"SUN5\", \"Bob15\"]\n",
        )
        .unwrap();
        let message = all.insert(other, summer).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "{other}: creators[0] (cat): codes: \"Bob15\" is also creator bob's code in campaign spring-sale ({PATH})"
            )
        );
        // Nothing of the refused campaign was kept.
        assert!(all.get("summer").is_none());
        assert!(all.creator_for_code(None, "SUN5").is_none());
        let again = all.insert("elsewhere.toml", parse(EXAMPLE).unwrap());
        assert_eq!(
            again.unwrap_err().to_string(),
            format!("elsewhere.toml: name: \"spring-sale\" is also the name of {PATH}")
        );
    }

    #[test]
    fn loads_a_directory() {
        let dir = std::env::temp_dir().join(format!("clarion-campaigns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("old.toml")).unwrap();
        std::fs::write(dir.join("spring-sale.toml"), EXAMPLE).unwrap();
        std::fs::write(dir.join("notes.md"), "not a campaign").unwrap();
        std::fs::write(dir.join(".#spring-sale.toml"), "lock").unwrap();
        let all = load_dir(&dir).unwrap();
        assert_eq!(all.len(), 1);
        assert!(all.get("spring-sale").is_some());

        std::fs::write(
            dir.join("summer.toml"),
            "name = \"summer\"\nstarts = \"2026-06-01\"\nends = \"2026-06-30\"\ncurrency = \"USD\"\n\
             [[creators]]\nname = \"ann\"\ncodes = [\"ann10\"]\n",
        )
        .unwrap();
        let message = load_dir(&dir).unwrap_err().to_string();
        let spring = dir.join("spring-sale.toml").display().to_string();
        let summer = dir.join("summer.toml").display().to_string();
        assert_eq!(
            message,
            format!(
                "{summer}: creators[0] (ann): codes: \"ann10\" is also creator ann's code in campaign spring-sale ({spring})"
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = load_dir(&dir).unwrap();
        assert!(missing.is_empty());
    }

    #[test]
    fn the_shipped_example_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../content/campaigns");
        let all = load_dir(&dir).unwrap();
        let spring = all
            .get("spring-sale")
            .expect("content/campaigns/spring-sale.toml");
        assert_eq!(spring.creators.len(), 2);
        assert!(spring.creator("ann").is_some() && spring.creator("bob").is_some());
        let (_, ann) = all.creator_for_code(Some("spring-sale"), "ann10").unwrap();
        assert_eq!(ann.name, "ann");
    }
}
