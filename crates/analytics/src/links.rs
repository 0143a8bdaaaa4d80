//! Registering tracked links.

use clarion_attribution::{Utm, tag};
use clarion_store::{NewLink, Store, link};

use crate::AnalyticsError;

/// 62^7 ≈ 3.5 × 10^12 codes: guessing a registered one is hopeless, and a
/// collision (retried) is rare.
const CODE_LEN: usize = 7;

/// A link to register.
#[derive(Debug, Clone, Default)]
pub struct LinkRequest {
    pub destination: String,
    pub campaign: Option<String>,
    pub creator: Option<String>,
    /// The configured channel it is for, and that channel's platform kind
    /// (`utm_source`).
    pub channel: Option<String>,
    pub source: Option<String>,
    /// `utm_medium`; default `kol` for a creator's link, else `social`
    /// (`email` for an email channel).
    pub medium: Option<String>,
    pub post_id: Option<i32>,
    pub target_id: Option<i32>,
}

/// Registers links and names their short URLs.
#[derive(Debug, Clone)]
pub struct Links {
    store: Store,
    base_url: String,
}

impl Links {
    pub fn new(store: Store, base_url: &str) -> Self {
        Self {
            store,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// `{base_url}/r/{code}`.
    pub fn short_url(&self, code: &str) -> String {
        format!("{}/r/{code}", self.base_url)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Registers a link under a fresh code. Only http(s) destinations.
    pub async fn create(&self, request: LinkRequest) -> Result<link::Model, AnalyticsError> {
        // Tagging parses the URL exactly as the redirect will.
        tag(&request.destination, &Utm::default())
            .map_err(|e| AnalyticsError::BadRequest(format!("destination: {e}")))?;
        let medium = request.medium.clone().unwrap_or_else(|| {
            if request.creator.is_some() {
                "kol".into()
            } else if request.source.as_deref() == Some("email") {
                "email".into()
            } else {
                "social".into()
            }
        });
        for _ in 0..5 {
            let new = NewLink {
                code: new_code(),
                destination: request.destination.clone(),
                campaign: request.campaign.clone(),
                creator: request.creator.clone(),
                channel: request.channel.clone(),
                source: request.source.clone(),
                medium: medium.clone(),
                post_id: request.post_id,
                target_id: request.target_id,
            };
            if let Some(link) = self.store.create_link(new).await? {
                return Ok(link);
            }
        }
        Err(AnalyticsError::BadRequest(
            "could not find a free link code after 5 tries".into(),
        ))
    }

    /// Links (newest first) with their counted clicks and bot fetches.
    pub async fn list(
        &self,
        campaign: Option<&str>,
    ) -> Result<Vec<(link::Model, i64, i64)>, AnalyticsError> {
        let links = self.store.list_links(campaign).await?;
        let counts = self.store.click_counts().await?;
        Ok(links
            .into_iter()
            .map(|l| {
                let (clicks, bots) = counts.get(&l.id).copied().unwrap_or((0, 0));
                (l, clicks, bots)
            })
            .collect())
    }
}

fn new_code() -> String {
    clarion_attribution::random_id(CODE_LEN)
}
