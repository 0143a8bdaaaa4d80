//! KOL (influencer) and campaign metrics from counted totals.
//!
//! Inputs are integers the store has counted; ratios are `f64` because they
//! are not money, and money results (AOV, CPA, EMV) stay integer minor units,
//! rounded half away from zero. A ratio whose denominator is zero (or
//! negative, which no count should be) is `None`, never infinity or NaN.

use serde::{Deserialize, Serialize};

/// A creator's or campaign's totals over some period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub posts_delivered: i64,
    pub posts_contracted: i64,
    /// `None` where the platform does not report reach.
    pub impressions: Option<i64>,
    /// Likes, replies, reposts.
    pub engagements: i64,
    pub clicks: i64,
    pub orders: i64,
    /// Attributed revenue, refunds already taken off.
    pub revenue_minor: i64,
    /// Fee + commission + product.
    pub cost_minor: i64,
}

fn ratio(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// `numerator / denominator` rounded half away from zero; `denominator > 0`.
fn div_round(numerator: i128, denominator: i128) -> i128 {
    let half_up = (2 * numerator.abs() + denominator) / (2 * denominator);
    if numerator < 0 { -half_up } else { half_up }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

impl Totals {
    /// Posts delivered / posts contracted.
    pub fn delivery_rate(&self) -> Option<f64> {
        ratio(self.posts_delivered, self.posts_contracted)
    }

    /// Engagements / impressions.
    pub fn engagement_rate(&self) -> Option<f64> {
        ratio(self.engagements, self.impressions?)
    }

    /// Clicks / impressions.
    pub fn ctr(&self) -> Option<f64> {
        ratio(self.clicks, self.impressions?)
    }

    /// Orders / clicks.
    pub fn conversion_rate(&self) -> Option<f64> {
        ratio(self.orders, self.clicks)
    }

    /// Average order value: revenue / orders, in minor units.
    pub fn aov_minor(&self) -> Option<i64> {
        (self.orders > 0)
            .then(|| saturate(div_round(self.revenue_minor.into(), self.orders.into())))
    }

    /// Cost per acquisition: cost / orders, in minor units.
    pub fn cpa_minor(&self) -> Option<i64> {
        (self.orders > 0).then(|| saturate(div_round(self.cost_minor.into(), self.orders.into())))
    }

    /// Return on investment: (revenue - cost) / cost.
    pub fn roi(&self) -> Option<f64> {
        let gain = i128::from(self.revenue_minor) - i128::from(self.cost_minor);
        (self.cost_minor > 0).then(|| gain as f64 / self.cost_minor as f64)
    }

    /// Return on ad spend: revenue / cost.
    pub fn roas(&self) -> Option<f64> {
        ratio(self.revenue_minor, self.cost_minor)
    }
}

/// Earned media value: `impressions / 1000 x CPM + engagements x cost per
/// engagement`, in minor units (pass 0 as the cost per engagement for the
/// impressions-only form). Saturates instead of overflowing.
pub fn emv_minor(
    impressions: i64,
    cpm_minor: i64,
    engagements: i64,
    cost_per_engagement_minor: i64,
) -> i64 {
    let reach = div_round(i128::from(impressions) * i128::from(cpm_minor), 1000);
    let engagement = i128::from(engagements) * i128::from(cost_per_engagement_minor);
    saturate(reach + engagement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> Totals {
        Totals {
            posts_delivered: 3,
            posts_contracted: 4,
            impressions: Some(20_000),
            engagements: 900,
            clicks: 400,
            orders: 12,
            revenue_minor: 60_050,
            cost_minor: 25_000,
        }
    }

    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.unwrap();
        assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
    }

    #[test]
    fn derives_the_ratios() {
        let t = campaign();
        close(t.delivery_rate(), 0.75); // 3 / 4
        close(t.engagement_rate(), 0.045); // 900 / 20000
        close(t.ctr(), 0.02); // 400 / 20000
        close(t.conversion_rate(), 0.03); // 12 / 400
        close(t.roi(), 1.402); // (60050 - 25000) / 25000
        close(t.roas(), 2.402); // 60050 / 25000
    }

    #[test]
    fn money_metrics_are_rounded_minor_units() {
        let t = campaign();
        // 60050 / 12 = 5004.17 -> 5004
        assert_eq!(t.aov_minor(), Some(5_004));
        // 25000 / 12 = 2083.33 -> 2083
        assert_eq!(t.cpa_minor(), Some(2_083));
        // 25 / 2 = 12.5 -> 13 (half away from zero), -12.5 -> -13
        let halves = Totals {
            orders: 2,
            revenue_minor: 25,
            cost_minor: -25,
            ..Totals::default()
        };
        assert_eq!(halves.aov_minor(), Some(13));
        assert_eq!(halves.cpa_minor(), Some(-13));
    }

    #[test]
    fn zero_denominators_give_none() {
        let empty = Totals::default();
        assert_eq!(empty.delivery_rate(), None);
        assert_eq!(empty.engagement_rate(), None);
        assert_eq!(empty.ctr(), None);
        assert_eq!(empty.conversion_rate(), None);
        assert_eq!(empty.aov_minor(), None);
        assert_eq!(empty.cpa_minor(), None);
        assert_eq!(empty.roi(), None);
        assert_eq!(empty.roas(), None);
        let no_reach = Totals {
            impressions: None,
            ..campaign()
        };
        assert_eq!(no_reach.engagement_rate(), None);
        assert_eq!(no_reach.ctr(), None);
        // Free posts: revenue but no cost has no ROI.
        let gifted = Totals {
            cost_minor: 0,
            ..campaign()
        };
        assert_eq!(gifted.roi(), None);
    }

    #[test]
    fn earned_media_value() {
        // 20000 / 1000 x 1250 = 25000; + 900 x 10 = 9000.
        assert_eq!(emv_minor(20_000, 1_250, 900, 10), 34_000);
        // 1234 / 1000 x 500 = 617.
        assert_eq!(emv_minor(1_234, 500, 0, 0), 617);
        // 1 / 1000 x 500 = 0.5 -> 1; 1 / 1000 x 499 = 0.499 -> 0.
        assert_eq!(emv_minor(1, 500, 0, 0), 1);
        assert_eq!(emv_minor(1, 499, 0, 0), 0);
        assert_eq!(emv_minor(i64::MAX, i64::MAX, i64::MAX, i64::MAX), i64::MAX);
    }
}
