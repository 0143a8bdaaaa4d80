//! Attribution models: who gets how much of one order.
//!
//! [`attribute`] takes the order and the touches (clicks or tracked
//! engagements) of the visitor or customer who placed it and returns the
//! credits. A creator's discount code decides on its own; otherwise the model
//! spreads the amount over the touches inside the window.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::money::{Currency, split, split_by_parts};

const SECOND_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Half-life of `time-decay` when none is given: the common seven days.
pub const DEFAULT_HALF_LIFE_MS: i64 = 7 * DAY_MS;

/// Credits are also reported as parts per million of the order.
const WHOLE_PPM: i64 = 1_000_000;

/// Why a model name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    #[error(
        "unknown attribution model {0:?} (last-click, first-click, linear, time-decay[:HALF_LIFE], position-based)"
    )]
    Unknown(String),
    #[error(
        "time-decay half-life {0:?}: expected a positive whole number and a unit: ms, s, m, h, d or w (e.g. 3d)"
    )]
    HalfLife(String),
}

/// How an order's amount is spread over the touches that led to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Model {
    /// The last touch gets everything (the common default, Dub's too).
    #[default]
    LastClick,
    /// The first touch gets everything.
    FirstClick,
    /// Every touch gets an equal share.
    Linear,
    /// Weight `2^(-age / half_life)`, age measured back from the order.
    TimeDecay { half_life_ms: i64 },
    /// U-shaped: 40% first, 40% last, 20% over the middle; 50/50 for two.
    PositionBased,
}

impl Model {
    /// Parses `last-click`, `first-click`, `linear`, `time-decay`,
    /// `time-decay:<n><unit>` (units ms, s, m, h, d, w) or `position-based`.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        match text {
            "last-click" => Ok(Self::LastClick),
            "first-click" => Ok(Self::FirstClick),
            "linear" => Ok(Self::Linear),
            "position-based" => Ok(Self::PositionBased),
            "time-decay" => Ok(Self::TimeDecay {
                half_life_ms: DEFAULT_HALF_LIFE_MS,
            }),
            _ => match text.strip_prefix("time-decay:") {
                Some(half_life) => Ok(Self::TimeDecay {
                    half_life_ms: parse_duration_ms(half_life)
                        .ok_or_else(|| ModelError::HalfLife(half_life.to_owned()))?,
                }),
                None => Err(ModelError::Unknown(text.to_owned())),
            },
        }
    }

    /// The model's name without its parameter (for labels and metrics).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::LastClick => "last-click",
            Self::FirstClick => "first-click",
            Self::Linear => "linear",
            Self::TimeDecay { .. } => "time-decay",
            Self::PositionBased => "position-based",
        }
    }
}

/// `n` + unit, e.g. `3d`; `None` unless positive and representable.
fn parse_duration_ms(text: &str) -> Option<i64> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits_end);
    let unit_ms = match unit {
        "ms" => 1,
        "s" => SECOND_MS,
        "m" => MINUTE_MS,
        "h" => HOUR_MS,
        "d" => DAY_MS,
        "w" => 7 * DAY_MS,
        _ => return None,
    };
    let value: i64 = number.parse().ok()?;
    value.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

/// Writes the form [`Model::parse`] reads back; a half-life in the largest
/// unit that divides it exactly.
impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimeDecay { half_life_ms } => {
                let ms = *half_life_ms;
                let (value, unit) = [
                    (DAY_MS, "d"),
                    (HOUR_MS, "h"),
                    (MINUTE_MS, "m"),
                    (SECOND_MS, "s"),
                ]
                .into_iter()
                .find(|(unit_ms, _)| ms % unit_ms == 0)
                .map_or((ms, "ms"), |(unit_ms, unit)| (ms / unit_ms, unit));
                write!(f, "time-decay:{value}{unit}")
            }
            other => f.write_str(other.as_str()),
        }
    }
}

impl FromStr for Model {
    type Err = ModelError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Model {
    type Error = ModelError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Model> for String {
    fn from(model: Model) -> Self {
        model.to_string()
    }
}

/// One click or tracked engagement that may have led to the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    pub at_ms: i64,
    /// The caller's click or engagement id; a touch is credited at most once.
    pub id: i64,
    /// The creator (KOL) whose link or post this touch came through.
    pub creator: Option<String>,
}

/// What attribution needs to know about an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFacts {
    pub at_ms: i64,
    pub amount_minor: i64,
    pub currency: Currency,
    /// In the order the shop lists them; the first creator code wins.
    pub discount_codes: Vec<String>,
}

/// A share of one order given to one touch (or to a creator by code alone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    pub touch_id: Option<i64>,
    pub creator: Option<String>,
    pub amount_minor: i64,
    /// The model's share in parts per million; the credits of one order sum
    /// to exactly 1 000 000, so reports can show shares without rounding drift.
    pub share_ppm: i64,
}

/// What decided the credits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "code")]
pub enum DecidedBy {
    /// A creator's discount code: decisive, whatever the clicks say.
    DiscountCode(String),
    /// The model over the touches inside the window.
    Touches,
    /// No creator code and no touch inside the window.
    Unattributed,
}

/// The credits of one order; their amounts sum to the order's amount
/// (none when unattributed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub credits: Vec<Credit>,
    pub decided_by: DecidedBy,
}

/// Attributes one order.
///
/// - Touches may come in any order. Only those with
///   `order.at_ms - window_ms <= at_ms <= order.at_ms` count (both ends
///   included); they are sorted oldest first (ties by id), and a touch id
///   seen twice counts once.
/// - The first discount code for which `creator_for_code` names a creator
///   decides: that creator gets the whole amount, credited to their own
///   latest touch inside the window if there is one. Codes are passed to the
///   lookup exactly as the order lists them, so case folding is the
///   lookup's choice. When two codes name different creators the first code
///   listed wins, because one order is never credited to several creators
///   (as Refersion does) and the shop's order is the only stable tie-break.
/// - Otherwise `model` spreads the amount over the touches by [`split`]:
///   minor units left over by rounding go to the largest remainders, ties to
///   the older touch. Touches the model gives no weight (all but one under
///   last-click and first-click) get no credit.
pub fn attribute<F>(
    order: &OrderFacts,
    touches: &[Touch],
    window_ms: i64,
    model: Model,
    creator_for_code: F,
) -> Attribution
where
    F: Fn(&str) -> Option<String>,
{
    let earliest = order.at_ms.saturating_sub(window_ms.max(0));
    let mut in_window: Vec<&Touch> = touches
        .iter()
        .filter(|t| t.at_ms >= earliest && t.at_ms <= order.at_ms)
        .collect();
    in_window.sort_by_key(|t| (t.at_ms, t.id));
    let mut seen = HashSet::new();
    in_window.retain(|t| seen.insert(t.id));

    let by_code = order
        .discount_codes
        .iter()
        .find_map(|code| creator_for_code(code).map(|creator| (code, creator)));
    if let Some((code, creator)) = by_code {
        let touch_id = in_window
            .iter()
            .rev()
            .find(|t| t.creator.as_deref() == Some(creator.as_str()))
            .map(|t| t.id);
        return Attribution {
            credits: vec![Credit {
                touch_id,
                creator: Some(creator),
                amount_minor: order.amount_minor,
                share_ppm: WHOLE_PPM,
            }],
            decided_by: DecidedBy::DiscountCode(code.clone()),
        };
    }

    if in_window.is_empty() {
        return Attribution {
            credits: Vec::new(),
            decided_by: DecidedBy::Unattributed,
        };
    }
    let weights = weights(model, &in_window, order.at_ms);
    let amounts = split(order.amount_minor, &weights);
    let ppm = split(WHOLE_PPM, &weights);
    let credits = in_window
        .iter()
        .zip(weights)
        .zip(amounts.into_iter().zip(ppm))
        .filter(|((_, weight), _)| *weight > 0.0)
        .map(|((touch, _), (amount_minor, share_ppm))| Credit {
            touch_id: Some(touch.id),
            creator: touch.creator.clone(),
            amount_minor,
            share_ppm,
        })
        .collect();
    Attribution {
        credits,
        decided_by: DecidedBy::Touches,
    }
}

/// The model's weight per touch; `touches` is non-empty and oldest first.
fn weights(model: Model, touches: &[&Touch], order_at_ms: i64) -> Vec<f64> {
    let n = touches.len();
    match model {
        Model::LastClick => (0..n).map(|i| if i + 1 == n { 1.0 } else { 0.0 }).collect(),
        Model::FirstClick => (0..n).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect(),
        Model::Linear => vec![1.0; n],
        Model::TimeDecay { half_life_ms } => {
            // Ages are taken relative to the newest touch (weight 1): the
            // normalised result is the same and old touches cannot all
            // underflow to 0.
            let half_life = half_life_ms.max(1) as f64;
            let newest_age = touches
                .last()
                .map_or(0, |t| order_at_ms.saturating_sub(t.at_ms));
            touches
                .iter()
                .map(|t| {
                    let age = order_at_ms.saturating_sub(t.at_ms) - newest_age;
                    (-(age as f64) / half_life).exp2()
                })
                .collect()
        }
        Model::PositionBased => match n {
            1 => vec![1.0],
            2 => vec![1.0, 1.0],
            // 2(n-2) : 1 each : 2(n-2) is exactly 40% / 20% spread / 40%.
            _ => {
                let end = 2.0 * (n - 2) as f64;
                (0..n)
                    .map(|i| if i == 0 || i + 1 == n { end } else { 1.0 })
                    .collect()
            }
        },
    }
}

/// What an order still brings in after its refunds, never below 0. Negative
/// refund entries are ignored: a refund never adds revenue.
pub fn net_amount(order_minor: i64, refunds_minor: &[i64]) -> i64 {
    let refunded = refunds_minor
        .iter()
        .filter(|r| **r > 0)
        .fold(0_i64, |sum, r| sum.saturating_add(*r));
    order_minor.saturating_sub(refunded).max(0)
}

/// Rescales an order's credits to `net_minor` (after refunds), each in
/// proportion to its amount, by largest remainder again so they still sum
/// exactly. Shares in ppm are kept: the model's split did not change.
pub fn scale(credits: &[Credit], net_minor: i64) -> Vec<Credit> {
    let parts: Vec<u128> = credits
        .iter()
        .map(|c| u128::from(c.amount_minor.max(0).unsigned_abs()))
        .collect();
    credits
        .iter()
        .zip(split_by_parts(net_minor, &parts))
        .map(|(credit, amount_minor)| Credit {
            amount_minor,
            ..credit.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const WINDOW: i64 = 30 * DAY_MS;

    fn order(amount_minor: i64, codes: &[&str]) -> OrderFacts {
        OrderFacts {
            at_ms: T0,
            amount_minor,
            currency: Currency::new("USD").unwrap(),
            discount_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn touch(id: i64, days_before: i64, creator: &str) -> Touch {
        Touch {
            at_ms: T0 - days_before * DAY_MS,
            id,
            creator: Some(creator.to_owned()),
        }
    }

    fn no_codes(_: &str) -> Option<String> {
        None
    }

    /// (touch id, amount) of each credit.
    fn run(order: &OrderFacts, touches: &[Touch], model: Model) -> Vec<(Option<i64>, i64)> {
        attribute(order, touches, WINDOW, model, no_codes)
            .credits
            .iter()
            .map(|c| (c.touch_id, c.amount_minor))
            .collect()
    }

    const HALF_LIFE_7D: Model = Model::TimeDecay {
        half_life_ms: 7 * DAY_MS,
    };

    #[test]
    fn parses_and_prints_model_names() {
        assert_eq!(Model::parse("last-click"), Ok(Model::LastClick));
        assert_eq!(Model::parse("first-click"), Ok(Model::FirstClick));
        assert_eq!(Model::parse("linear"), Ok(Model::Linear));
        assert_eq!(Model::parse("position-based"), Ok(Model::PositionBased));
        assert_eq!(Model::parse("time-decay"), Ok(HALF_LIFE_7D));
        assert_eq!(
            Model::parse("time-decay:3d"),
            Ok(Model::TimeDecay {
                half_life_ms: 3 * DAY_MS
            })
        );
        assert_eq!(
            Model::parse("time-decay:90m"),
            Ok(Model::TimeDecay {
                half_life_ms: 90 * MINUTE_MS
            })
        );
        assert_eq!(Model::default(), Model::LastClick);
        assert_eq!(
            Model::parse("time-decay:3d").unwrap().as_str(),
            "time-decay"
        );
        for text in [
            "last-click",
            "linear",
            "time-decay:3d",
            "time-decay:90m",
            "time-decay:1500ms",
        ] {
            assert_eq!(Model::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(HALF_LIFE_7D.to_string(), "time-decay:7d");
        let json = serde_json::to_string(&HALF_LIFE_7D).unwrap();
        assert_eq!(serde_json::from_str::<Model>(&json).unwrap(), HALF_LIFE_7D);
    }

    #[test]
    fn refuses_unknown_models_and_bad_half_lives() {
        assert_eq!(
            Model::parse("Last-Click"),
            Err(ModelError::Unknown("Last-Click".into()))
        );
        assert_eq!(
            Model::parse("u-shaped"),
            Err(ModelError::Unknown("u-shaped".into()))
        );
        for bad in ["", "0d", "3", "d", "3y", "-3d", "99999999999999999w"] {
            assert_eq!(
                Model::parse(&format!("time-decay:{bad}")),
                Err(ModelError::HalfLife(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn one_touch_gets_everything_under_every_model() {
        let touches = [touch(7, 2, "ana")];
        for model in [
            Model::LastClick,
            Model::FirstClick,
            Model::Linear,
            HALF_LIFE_7D,
            Model::PositionBased,
        ] {
            let result = attribute(&order(1999, &[]), &touches, WINDOW, model, no_codes);
            assert_eq!(result.decided_by, DecidedBy::Touches);
            assert_eq!(
                result.credits,
                vec![Credit {
                    touch_id: Some(7),
                    creator: Some("ana".into()),
                    amount_minor: 1999,
                    share_ppm: 1_000_000
                }],
                "{model}"
            );
        }
    }

    #[test]
    fn two_touches_under_each_model() {
        // Given newest first on purpose: attribute sorts them.
        let touches = [touch(2, 0, "bo"), touch(1, 7, "ana")];
        let o = order(1000, &[]);
        assert_eq!(run(&o, &touches, Model::LastClick), vec![(Some(2), 1000)]);
        assert_eq!(run(&o, &touches, Model::FirstClick), vec![(Some(1), 1000)]);
        assert_eq!(
            run(&o, &touches, Model::Linear),
            vec![(Some(1), 500), (Some(2), 500)]
        );
        assert_eq!(
            run(&o, &touches, Model::PositionBased),
            vec![(Some(1), 500), (Some(2), 500)]
        );
        // Ages 7d (one half-life) and 0: weights 0.5 and 1, i.e. 1/3 and 2/3
        // of 1000 = 333.33 and 666.67; floors 333 + 666 = 999, the last unit
        // goes to the larger remainder (.67).
        assert_eq!(
            run(&o, &touches, HALF_LIFE_7D),
            vec![(Some(1), 333), (Some(2), 667)]
        );
    }

    #[test]
    fn time_decay_of_ages_zero_and_one_half_life_is_two_thirds_one_third() {
        let touches = [touch(1, 7, "ana"), touch(2, 0, "bo")];
        let result = attribute(&order(300, &[]), &touches, WINDOW, HALF_LIFE_7D, no_codes);
        let shares: Vec<(i64, i64)> = result
            .credits
            .iter()
            .map(|c| (c.amount_minor, c.share_ppm))
            .collect();
        // 300 / 3 = 100 and 200 exactly; 1e6 / 3 = 333333.33 and 666666.67,
        // the left-over ppm to the larger remainder.
        assert_eq!(shares, vec![(100, 333_333), (200, 666_667)]);
    }

    #[test]
    fn five_touches_under_each_model() {
        // Ages 4, 3, 2, 1, 0 half-lives (7 days each), ids 1..=5 oldest first.
        let touches: Vec<Touch> = (1..=5).map(|id| touch(id, (5 - id) * 7, "ana")).collect();
        let o = order(3100, &[]);
        assert_eq!(run(&o, &touches, Model::LastClick), vec![(Some(5), 3100)]);
        assert_eq!(run(&o, &touches, Model::FirstClick), vec![(Some(1), 3100)]);
        // 3100 / 5 = 620 each.
        assert_eq!(
            run(&o, &touches, Model::Linear),
            vec![
                (Some(1), 620),
                (Some(2), 620),
                (Some(3), 620),
                (Some(4), 620),
                (Some(5), 620)
            ]
        );
        // Weights 1/16, 1/8, 1/4, 1/2, 1 sum to 31/16; 3100 * 16/31 = 1600
        // for the newest, then halving: 100, 200, 400, 800, 1600.
        assert_eq!(
            run(&o, &touches, HALF_LIFE_7D),
            vec![
                (Some(1), 100),
                (Some(2), 200),
                (Some(3), 400),
                (Some(4), 800),
                (Some(5), 1600)
            ]
        );
        // 40% = 1240 first and last; 20% = 620 over three: 206.67 each,
        // floors 206 * 3 = 618, the 2 left over go to the first two middle
        // touches (equal remainders, lower index first).
        assert_eq!(
            run(&o, &touches, Model::PositionBased),
            vec![
                (Some(1), 1240),
                (Some(2), 207),
                (Some(3), 207),
                (Some(4), 206),
                (Some(5), 1240)
            ]
        );
    }

    #[test]
    fn shares_in_ppm_sum_to_a_million() {
        let touches: Vec<Touch> = (1..=5).map(|id| touch(id, (5 - id) * 7, "ana")).collect();
        let result = attribute(
            &order(3100, &[]),
            &touches,
            WINDOW,
            Model::PositionBased,
            no_codes,
        );
        let ppm: Vec<i64> = result.credits.iter().map(|c| c.share_ppm).collect();
        // 400000 first and last; 200000 / 3 = 66666.67 each, floors sum to
        // 199998, the 2 left over to the first two middle touches.
        assert_eq!(ppm, vec![400_000, 66_667, 66_667, 66_666, 400_000]);
    }

    #[test]
    fn an_uneven_amount_still_sums_exactly() {
        let touches = [touch(1, 3, "ana"), touch(2, 2, "bo"), touch(3, 1, "cy")];
        // 1000 / 3 = 333.33: floors 999, the left-over unit to the oldest.
        assert_eq!(
            run(&order(1000, &[]), &touches, Model::Linear),
            vec![(Some(1), 334), (Some(2), 333), (Some(3), 333)]
        );
    }

    #[test]
    fn touches_outside_the_window_or_after_the_order_are_excluded() {
        // Before the 30-day window; exactly at its start (counts); inside;
        // at the order instant (counts); after the order.
        let at_order = Touch {
            at_ms: T0,
            id: 4,
            creator: None,
        };
        let late = Touch {
            at_ms: T0 + 1,
            id: 5,
            creator: Some("late".into()),
        };
        let touches = [
            touch(1, 31, "old"),
            touch(2, 30, "edge"),
            touch(3, 1, "ana"),
            at_order,
            late,
        ];
        assert_eq!(
            run(&order(900, &[]), &touches, Model::Linear),
            vec![(Some(2), 300), (Some(3), 300), (Some(4), 300)]
        );
        let only_outside = [touch(1, 31, "old")];
        let result = attribute(
            &order(900, &[]),
            &only_outside,
            WINDOW,
            Model::Linear,
            no_codes,
        );
        assert_eq!(result.decided_by, DecidedBy::Unattributed);
        assert!(result.credits.is_empty());
    }

    #[test]
    fn a_touch_is_never_credited_twice() {
        let touches = [touch(1, 2, "ana"), touch(1, 2, "ana"), touch(2, 1, "bo")];
        assert_eq!(
            run(&order(1000, &[]), &touches, Model::Linear),
            vec![(Some(1), 500), (Some(2), 500)]
        );
    }

    #[test]
    fn a_creator_discount_code_overrides_the_clicks() {
        let codes: HashMap<&str, &str> = HashMap::from([("ANA10", "ana"), ("BO15", "bo")]);
        let lookup = |code: &str| codes.get(code).map(|c| (*c).to_owned());
        let touches = [touch(1, 5, "ana"), touch(2, 3, "ana"), touch(3, 1, "bo")];

        // Last click is bo's, but ana's code decides: all to ana, on her
        // latest touch inside the window.
        let result = attribute(
            &order(2500, &["WELCOME", "ANA10"]),
            &touches,
            WINDOW,
            Model::LastClick,
            lookup,
        );
        assert_eq!(result.decided_by, DecidedBy::DiscountCode("ANA10".into()));
        assert_eq!(
            result.credits,
            vec![Credit {
                touch_id: Some(2),
                creator: Some("ana".into()),
                amount_minor: 2500,
                share_ppm: 1_000_000
            }]
        );

        // Two creators' codes: the first listed wins.
        let result = attribute(
            &order(2500, &["BO15", "ANA10"]),
            &touches,
            WINDOW,
            Model::LastClick,
            lookup,
        );
        assert_eq!(result.decided_by, DecidedBy::DiscountCode("BO15".into()));
        assert_eq!(result.credits[0].creator.as_deref(), Some("bo"));
        assert_eq!(result.credits[0].touch_id, Some(3));

        // A code with no touch of its creator in the window: no touch id.
        let result = attribute(
            &order(2500, &["ANA10"]),
            &[touch(3, 1, "bo")],
            WINDOW,
            Model::LastClick,
            lookup,
        );
        assert_eq!(result.credits[0].touch_id, None);
        assert_eq!(result.credits[0].amount_minor, 2500);

        // A code that is nobody's leaves the model in charge.
        let result = attribute(
            &order(2500, &["WELCOME"]),
            &touches,
            WINDOW,
            Model::LastClick,
            lookup,
        );
        assert_eq!(result.decided_by, DecidedBy::Touches);
        assert_eq!(result.credits[0].touch_id, Some(3));
    }

    #[test]
    fn net_amount_subtracts_refunds_and_stops_at_zero() {
        assert_eq!(net_amount(10_000, &[]), 10_000);
        assert_eq!(net_amount(10_000, &[2_500, 1_000]), 6_500);
        assert_eq!(net_amount(10_000, &[6_000, 6_000]), 0);
        assert_eq!(net_amount(10_000, &[-500]), 10_000);
        assert_eq!(net_amount(10_000, &[i64::MAX, i64::MAX]), 0);
    }

    #[test]
    fn scale_reduces_each_credit_proportionally() {
        let touches = [touch(1, 3, "ana"), touch(2, 2, "bo"), touch(3, 1, "cy")];
        let result = attribute(&order(1000, &[]), &touches, WINDOW, Model::Linear, no_codes);
        // 334/333/333 scaled to 500: 167.0, 166.5, 166.5 -> floors 167, 166,
        // 166 = 499; the unit left over goes to the larger remainder, the
        // tie between .5 and .5 to the lower index.
        let scaled = scale(&result.credits, net_amount(1000, &[500]));
        let amounts: Vec<i64> = scaled.iter().map(|c| c.amount_minor).collect();
        assert_eq!(amounts, vec![167, 167, 166]);
        assert_eq!(scaled[0].share_ppm, result.credits[0].share_ppm);
        assert_eq!(scaled[1].touch_id, Some(2));
        // Fully refunded: every credit drops to 0.
        let zeroed: Vec<i64> = scale(&result.credits, 0)
            .iter()
            .map(|c| c.amount_minor)
            .collect();
        assert_eq!(zeroed, vec![0, 0, 0]);
        assert!(scale(&[], 100).is_empty());
    }
}
