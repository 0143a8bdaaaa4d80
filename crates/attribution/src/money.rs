//! Amounts in integer minor units, and the one way to divide them.
//!
//! Money is never a float here: an amount is an `i64` count of the
//! currency's smallest unit (cents, yen, fils). Model weights are floats, so
//! [`split`] turns them into integer shares that always add up to the amount.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What is wrong with a currency code or an amount.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    #[error("currency {0:?} is not three upper-case letters (ISO 4217, e.g. USD)")]
    Currency(String),
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?}: a sign is allowed only as one leading '-'")]
    Sign(String),
    #[error("amount {amount:?}: unexpected character {found:?} (digits and one '.' only)")]
    Character { amount: String, found: char },
    #[error("amount {0:?}: digits are missing before or after '.'")]
    MissingDigits(String),
    #[error("amount {amount:?}: {currency} has {allowed} decimal places")]
    TooManyDecimals {
        amount: String,
        currency: Currency,
        allowed: u32,
    },
    #[error("amount {0:?} is too large")]
    Overflow(String),
}

/// An ISO 4217 currency code, kept as its three ASCII letters so it is `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Validates the code: exactly three upper-case ASCII letters. Lower case
    /// is refused rather than fixed so one currency has one spelling in storage.
    pub fn new(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(MoneyError::Currency(code.to_owned())),
        }
    }

    /// Decimal places of the minor unit (ISO 4217): 0 for JPY and friends,
    /// 3 for the dinars, 4 for the two accounting units, 2 for the rest.
    pub fn exponent(self) -> u32 {
        match &self.0 {
            b"BIF" | b"CLP" | b"DJF" | b"GNF" | b"ISK" | b"JPY" | b"KMF" | b"KRW" | b"PYG"
            | b"RWF" | b"UGX" | b"UYI" | b"VND" | b"VUV" | b"XAF" | b"XOF" | b"XPF" => 0,
            b"BHD" | b"IQD" | b"JOD" | b"KWD" | b"LYD" | b"OMR" | b"TND" => 3,
            b"CLF" | b"UYW" => 4,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            fmt::Write::write_char(f, char::from(byte))?;
        }
        Ok(())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::new(code)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::new(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.to_string()
    }
}

/// An amount with its currency; `Display` writes it the way people read it
/// ("12.30 USD"), for reports and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let magnitude = self.minor.unsigned_abs();
        let exponent = self.currency.exponent();
        if exponent == 0 {
            return write!(f, "{sign}{magnitude} {}", self.currency);
        }
        let unit = 10_u64.pow(exponent);
        let width = exponent as usize;
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            magnitude / unit,
            magnitude % unit,
            self.currency
        )
    }
}

/// Parses a decimal amount as shops write it ("12.30", "12", "0.5", "-3.10")
/// into minor units of `currency`.
///
/// Strict on purpose, because a misread price becomes wrong revenue: no '+',
/// no spaces, no thousands separators, digits on both sides of a '.', and no
/// more decimals than the currency has unless the extra ones are zeros
/// ("12.300" USD is 1230; "12.301" is refused).
pub fn parse_decimal(amount: &str, currency: Currency) -> Result<i64, MoneyError> {
    if amount.is_empty() {
        return Err(MoneyError::Empty);
    }
    let (negative, body) = match amount.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount),
    };
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    for part in [Some(whole), fraction].into_iter().flatten() {
        if let Some(found) = part.chars().find(|c| !c.is_ascii_digit()) {
            return Err(if found == '-' || found == '+' {
                MoneyError::Sign(amount.to_owned())
            } else {
                MoneyError::Character {
                    amount: amount.to_owned(),
                    found,
                }
            });
        }
    }
    if whole.is_empty() || fraction == Some("") {
        return Err(MoneyError::MissingDigits(amount.to_owned()));
    }
    let exponent = currency.exponent();
    let fraction = fraction.unwrap_or("").as_bytes();
    let significant = fraction
        .iter()
        .rposition(|digit| *digit != b'0')
        .map_or(0, |last| last + 1);
    if significant > exponent as usize {
        return Err(MoneyError::TooManyDecimals {
            amount: amount.to_owned(),
            currency,
            allowed: exponent,
        });
    }
    let padded_fraction = (0..exponent as usize).map(|i| fraction.get(i).copied().unwrap_or(b'0'));
    let overflow = || MoneyError::Overflow(amount.to_owned());
    let mut value: i64 = 0;
    for digit in whole.bytes().chain(padded_fraction) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or_else(overflow)?;
    }
    Ok(if negative { -value } else { value })
}

/// Resolution of a float weight before the integer split (2^40 steps of the
/// largest weight): far finer than any amount's cents, and it makes equal
/// weights exactly equal integers whatever float path produced them.
const WEIGHT_STEPS: f64 = 1_099_511_627_776.0;

/// Divides `amount_minor` in proportion to `weights` by the largest-remainder
/// method, so the shares always sum exactly to the amount.
///
/// Each share is first rounded down; the minor units left over go one each to
/// the shares with the largest remainders, ties to the lower index (the older
/// touch, as callers order them). A weight that is negative, NaN or infinite
/// counts as 0; if no weight is positive the amount is split equally. An empty
/// `weights` gives an empty result: there is nobody to give the amount to.
pub fn split(amount_minor: i64, weights: &[f64]) -> Vec<i64> {
    let clean: Vec<f64> = weights
        .iter()
        .map(|w| if w.is_finite() && *w > 0.0 { *w } else { 0.0 })
        .collect();
    let largest = clean.iter().copied().fold(0.0_f64, f64::max);
    let parts: Vec<u128> = clean
        .iter()
        .map(|w| {
            if largest > 0.0 {
                // Saturating cast of a value in 0..=2^40: never truncates.
                (w / largest * WEIGHT_STEPS).round() as u128
            } else {
                0
            }
        })
        .collect();
    split_by_parts(amount_minor, &parts)
}

/// The exact integer core of [`split`]: shares proportional to `parts`.
pub(crate) fn split_by_parts(amount_minor: i64, parts: &[u128]) -> Vec<i64> {
    if parts.is_empty() {
        return Vec::new();
    }
    let equal;
    let parts = if parts.iter().all(|p| *p == 0) {
        equal = vec![1_u128; parts.len()];
        &equal[..]
    } else {
        parts
    };
    let total: u128 = parts.iter().sum();
    let magnitude = u128::from(amount_minor.unsigned_abs());
    // magnitude <= 2^63 and each part <= 2^64, so the products fit in u128.
    let mut shares: Vec<u128> = parts.iter().map(|p| magnitude * p / total).collect();
    let remainders: Vec<u128> = parts.iter().map(|p| magnitude * p % total).collect();
    let handed_out: u128 = shares.iter().sum();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|a, b| remainders[*b].cmp(&remainders[*a]).then(a.cmp(b)));
    // Fewer than parts.len() units are left over, one per leading remainder.
    let left_over = magnitude - handed_out;
    for index in order.into_iter().take(left_over as usize) {
        shares[index] += 1;
    }
    let negative = amount_minor < 0;
    shares
        .into_iter()
        .map(|share| {
            // |share| <= |amount_minor|, so it fits the amount's own type.
            let signed = if negative {
                -(share as i128)
            } else {
                share as i128
            };
            i64::try_from(signed).unwrap_or(amount_minor)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::new(code).unwrap()
    }

    #[test]
    fn currency_codes_are_three_upper_case_letters() {
        assert_eq!(cur("USD").to_string(), "USD");
        for bad in ["usd", "US", "USDT", "U1D", "", "ÜSD"] {
            assert_eq!(
                Currency::new(bad),
                Err(MoneyError::Currency(bad.into())),
                "{bad}"
            );
        }
        let json = serde_json::to_string(&cur("EUR")).unwrap();
        assert_eq!(json, "\"EUR\"");
        assert!(serde_json::from_str::<Currency>("\"eur\"").is_err());
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(cur("JPY").exponent(), 0);
        assert_eq!(cur("KRW").exponent(), 0);
        assert_eq!(cur("VND").exponent(), 0);
        assert_eq!(cur("CLP").exponent(), 0);
        assert_eq!(cur("ISK").exponent(), 0);
        assert_eq!(cur("UGX").exponent(), 0);
        assert_eq!(cur("BHD").exponent(), 3);
        assert_eq!(cur("KWD").exponent(), 3);
        assert_eq!(cur("OMR").exponent(), 3);
        assert_eq!(cur("JOD").exponent(), 3);
        assert_eq!(cur("TND").exponent(), 3);
        assert_eq!(cur("USD").exponent(), 2);
        assert_eq!(cur("EUR").exponent(), 2);
    }

    #[test]
    fn parses_decimals_into_minor_units() {
        let usd = cur("USD");
        assert_eq!(parse_decimal("12.30", usd), Ok(1230));
        assert_eq!(parse_decimal("12", usd), Ok(1200));
        assert_eq!(parse_decimal("0.5", usd), Ok(50));
        assert_eq!(parse_decimal("0.05", usd), Ok(5));
        assert_eq!(parse_decimal("-3.10", usd), Ok(-310));
        assert_eq!(parse_decimal("12.300", usd), Ok(1230));
        assert_eq!(parse_decimal("0", usd), Ok(0));
        assert_eq!(parse_decimal("1500", cur("JPY")), Ok(1500));
        assert_eq!(parse_decimal("1500.00", cur("JPY")), Ok(1500));
        assert_eq!(parse_decimal("1.5", cur("KWD")), Ok(1500));
        assert_eq!(parse_decimal("1.234", cur("KWD")), Ok(1234));
    }

    #[test]
    fn refuses_bad_amounts_naming_the_problem() {
        let usd = cur("USD");
        assert_eq!(parse_decimal("", usd), Err(MoneyError::Empty));
        assert_eq!(parse_decimal("+5", usd), Err(MoneyError::Sign("+5".into())));
        assert_eq!(
            parse_decimal("--5", usd),
            Err(MoneyError::Sign("--5".into()))
        );
        assert_eq!(parse_decimal("5-", usd), Err(MoneyError::Sign("5-".into())));
        assert_eq!(
            parse_decimal("abc", usd),
            Err(MoneyError::Character {
                amount: "abc".into(),
                found: 'a'
            })
        );
        assert_eq!(
            parse_decimal("1,000.00", usd),
            Err(MoneyError::Character {
                amount: "1,000.00".into(),
                found: ','
            })
        );
        assert_eq!(
            parse_decimal(" 5", usd),
            Err(MoneyError::Character {
                amount: " 5".into(),
                found: ' '
            })
        );
        assert_eq!(
            parse_decimal("1.2.3", usd),
            Err(MoneyError::Character {
                amount: "1.2.3".into(),
                found: '.'
            })
        );
        assert_eq!(
            parse_decimal(".5", usd),
            Err(MoneyError::MissingDigits(".5".into()))
        );
        assert_eq!(
            parse_decimal("5.", usd),
            Err(MoneyError::MissingDigits("5.".into()))
        );
        assert_eq!(
            parse_decimal("-", usd),
            Err(MoneyError::MissingDigits("-".into()))
        );
        assert_eq!(
            parse_decimal("12.301", usd),
            Err(MoneyError::TooManyDecimals {
                amount: "12.301".into(),
                currency: usd,
                allowed: 2
            })
        );
        assert!(matches!(
            parse_decimal("100.5", cur("JPY")),
            Err(MoneyError::TooManyDecimals { allowed: 0, .. })
        ));
        assert_eq!(
            parse_decimal("99999999999999999999", usd),
            Err(MoneyError::Overflow("99999999999999999999".into()))
        );
        let message = parse_decimal("12.301", usd).unwrap_err().to_string();
        assert_eq!(message, "amount \"12.301\": USD has 2 decimal places");
    }

    #[test]
    fn money_displays_with_the_currency_exponent() {
        let show = |minor, code| {
            Money {
                minor,
                currency: cur(code),
            }
            .to_string()
        };
        assert_eq!(show(1230, "USD"), "12.30 USD");
        assert_eq!(show(5, "USD"), "0.05 USD");
        assert_eq!(show(-310, "EUR"), "-3.10 EUR");
        assert_eq!(show(1500, "JPY"), "1500 JPY");
        assert_eq!(show(1234, "KWD"), "1.234 KWD");
    }

    #[test]
    fn split_uses_largest_remainder_and_sums_exactly() {
        // 1000 / 3 = 333.33 each: floors 333 * 3 = 999, the 1 left over goes
        // to the first of the equal remainders.
        assert_eq!(split(1000, &[1.0, 1.0, 1.0]), vec![334, 333, 333]);
        // 1000 * 1/1.5 = 666.67, 1000 * 0.5/1.5 = 333.33: floors 666 + 333,
        // the 1 left over goes to the larger remainder (.67).
        assert_eq!(split(1000, &[1.0, 0.5]), vec![667, 333]);
        // 100 over 0.4/0.2/0.4: exact.
        assert_eq!(split(100, &[0.4, 0.2, 0.4]), vec![40, 20, 40]);
        // 2 over three equal weights: the first two get one each.
        assert_eq!(split(2, &[1.0, 1.0, 1.0]), vec![1, 1, 0]);
        // Negative amounts mirror positive ones.
        assert_eq!(split(-1000, &[1.0, 1.0, 1.0]), vec![-334, -333, -333]);
        assert_eq!(split(1000, &[]), Vec::<i64>::new());
    }

    #[test]
    fn split_treats_bad_weights_as_zero_and_all_zero_as_equal() {
        assert_eq!(split(10, &[f64::NAN, 1.0, -2.0]), vec![0, 10, 0]);
        assert_eq!(split(10, &[f64::INFINITY, 1.0]), vec![0, 10]);
        assert_eq!(split(10, &[0.0, 0.0]), vec![5, 5]);
    }

    #[test]
    fn split_always_sums_to_the_amount() {
        let weights = [0.1, 0.7, 0.003, 1e-9, 42.0, 0.5, 0.5];
        for amount in [0, 1, 7, 99, 1_000, 123_457, -5_003, i64::MAX, i64::MIN] {
            let shares = split(amount, &weights);
            let sum: i128 = shares.iter().map(|s| i128::from(*s)).sum();
            assert_eq!(sum, i128::from(amount), "{amount}: {shares:?}");
        }
    }
}
