//! `[attribution]` in the config file.

use std::path::PathBuf;

use clarion_core::SecretRef;
use serde::Deserialize;

/// `[attribution]`: tracked links, the default model, shop webhook secrets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributionConfig {
    /// The public address short links are made with (`{base_url}/r/{code}`):
    /// where people can reach `clarion run`. Default: `http://` + `[server] bind`.
    pub base_url: Option<String>,
    /// The default model: last-click, first-click, linear, time-decay[:7d],
    /// position-based. A campaign file may choose its own.
    pub model: String,
    /// Days before an order in which a click counts.
    pub window_days: u32,
    /// The secret visitor keys are salted with (rotated daily). Without it a
    /// random one per process is used: the same visitor then gets another
    /// key after a restart, which only splits multi-touch paths.
    pub visitor_secret: Option<SecretRef>,
    /// Shopify's webhook signing secret (the app's client secret).
    pub shopify_secret: Option<SecretRef>,
    /// WooCommerce's webhook secret.
    pub woocommerce_secret: Option<SecretRef>,
    /// Where campaign files live; default `<content_dir>/campaigns`.
    pub campaigns_dir: Option<PathBuf>,
    /// When after publishing each post's public counts are read (seconds).
    pub metrics_after_secs: Vec<u64>,
    /// How often the metrics poller looks for due snapshots (seconds).
    pub metrics_poll_secs: u64,
    /// How often `clarion run` looks for creators past their deadline
    /// (seconds); each one found is told to the chat bridge once.
    pub overdue_check_secs: u64,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            model: "last-click".into(),
            window_days: 7,
            visitor_secret: None,
            shopify_secret: None,
            woocommerce_secret: None,
            campaigns_dir: None,
            // 1 h, 6 h, 24 h, 72 h, 7 days.
            metrics_after_secs: vec![3_600, 21_600, 86_400, 259_200, 604_800],
            metrics_poll_secs: 60,
            overdue_check_secs: 3_600,
        }
    }
}

/// Everything attribution needs at run time, built once from the config.
#[derive(Debug, Clone)]
pub struct Analytics {
    pub links: crate::Links,
    pub redirector: crate::Redirector,
    pub orders: crate::Orders,
    pub campaigns: std::sync::Arc<clarion_attribution::Campaigns>,
    /// Shopify's signing secret, or why there is none (the endpoint says it).
    pub shopify_secret: Result<clarion_core::Secret, String>,
    pub woocommerce_secret: Result<clarion_core::Secret, String>,
}

/// Where short links point: `[attribution] base_url`, else this server's
/// `[server] bind` address.
pub fn link_base(
    config: &AttributionConfig,
    bind: &str,
) -> Result<String, clarion_core::ConfigError> {
    let base = config
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{bind}"));
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(clarion_core::ConfigError::new(format!(
            "[attribution] base_url `{base}` must start with http:// or https://"
        )));
    }
    Ok(base.trim_end_matches('/').to_owned())
}

impl Analytics {
    /// Loads campaign files, resolves secrets and starts the click writer.
    /// `bind` is `[server] bind`, the short links' default base.
    pub fn open(
        store: clarion_store::Store,
        config: &AttributionConfig,
        bind: &str,
        content_dir: &std::path::Path,
    ) -> Result<Self, clarion_core::ConfigError> {
        use clarion_core::ConfigError;
        let dir = config
            .campaigns_dir
            .clone()
            .unwrap_or_else(|| content_dir.join("campaigns"));
        let campaigns =
            clarion_attribution::load_dir(&dir).map_err(|e| ConfigError::new(e.to_string()))?;
        let default = crate::ModelKey::parse(&config.model, config.window_days)
            .map_err(|e| ConfigError::new(format!("[attribution] {e}")))?;
        let base = link_base(config, bind)?;
        let visitor_secret = match &config.visitor_secret {
            Some(secret) => secret
                .resolve("[attribution] visitor_secret")?
                .expose()
                .as_bytes()
                .to_vec(),
            None => clarion_attribution::random_id(32).into_bytes(),
        };
        let optional = |secret: &Option<clarion_core::SecretRef>, what: &str| match secret {
            Some(secret) => secret.resolve(what).map_err(|e| e.to_string()),
            None => Err(format!("{what} is not configured")),
        };
        let campaigns = std::sync::Arc::new(campaigns);
        let attributor = crate::Attributor::new(store.clone(), campaigns.clone(), default);
        Ok(Self {
            links: crate::Links::new(store.clone(), &base),
            redirector: crate::Redirector::new(
                store.clone(),
                crate::ClickRecorder::spawn(store.clone()),
                visitor_secret,
            ),
            orders: crate::Orders::new(store, attributor),
            campaigns,
            shopify_secret: optional(&config.shopify_secret, "[attribution] shopify_secret"),
            woocommerce_secret: optional(
                &config.woocommerce_secret,
                "[attribution] woocommerce_secret",
            ),
        })
    }

    pub fn attributor(&self) -> &crate::Attributor {
        self.orders.attributor()
    }
}

impl Analytics {
    /// A link request checked against the configuration: the channel must
    /// be configured (its platform is the `utm_source`), the campaign must
    /// have a campaign file, and the creator must be one of its creators.
    pub fn link_request(
        &self,
        registry: &clarion_core::AdapterRegistry,
        url: String,
        campaign: Option<String>,
        creator: Option<String>,
        channel: Option<String>,
    ) -> Result<crate::LinkRequest, crate::AnalyticsError> {
        use crate::AnalyticsError::BadRequest;
        let source = match &channel {
            Some(name) => Some(
                registry
                    .get(name)
                    .ok_or_else(|| BadRequest(format!("channel: `{name}` is not configured")))?
                    .kind()
                    .to_owned(),
            ),
            None => None,
        };
        match (&campaign, &creator) {
            (Some(name), creator) => {
                let found = self.campaigns.get(name).ok_or_else(|| {
                    BadRequest(format!(
                        "campaign: `{name}` has no campaign file in content/campaigns"
                    ))
                })?;
                if let Some(creator) = creator
                    && found.creator(creator).is_none()
                {
                    return Err(BadRequest(format!(
                        "creator: `{creator}` is not a creator of campaign `{name}`"
                    )));
                }
            }
            (None, Some(_)) => {
                return Err(BadRequest(
                    "creator: a creator's link needs its campaign".into(),
                ));
            }
            (None, None) => {}
        }
        Ok(crate::LinkRequest {
            destination: url,
            campaign,
            creator,
            channel,
            source,
            ..Default::default()
        })
    }
}
