//! `/r/{code}`: where a tracked link goes, and its click.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use clarion_attribution::{
    Utm, is_preview_bot, random_id, tag, utc_day, visitor_key, with_click_id,
};
use clarion_store::{NewClick, Store, StoreError, link, now_ms};

use crate::ClickRecorder;

/// Length of a click id: unguessable, short enough for a URL.
const CLICK_ID_LEN: usize = 16;

/// One request to the redirect.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    pub code: &'a str,
    pub user_agent: &'a str,
    pub referrer: Option<&'a str>,
    /// The client address; only its daily-salted hash is kept.
    pub ip: &'a str,
}

/// A registered link, ready to redirect.
#[derive(Debug)]
struct Resolved {
    link: link::Model,
    /// The destination with its UTM tags.
    tagged: String,
}

/// Resolves codes (cached; links never change) and records clicks.
#[derive(Debug, Clone)]
pub struct Redirector {
    store: Store,
    cache: Arc<RwLock<HashMap<String, Arc<Resolved>>>>,
    recorder: ClickRecorder,
    secret: Arc<Vec<u8>>,
}

impl Redirector {
    pub fn new(store: Store, recorder: ClickRecorder, visitor_secret: Vec<u8>) -> Self {
        Self {
            store,
            cache: Arc::default(),
            recorder,
            secret: Arc::new(visitor_secret),
        }
    }

    pub fn recorder(&self) -> &ClickRecorder {
        &self.recorder
    }

    /// Where `visit.code` goes, with a fresh click id; `None` for a code
    /// that is not registered. The destination only ever comes from the
    /// registered link, never from the request.
    pub async fn follow(&self, visit: Visit<'_>) -> Result<Option<String>, StoreError> {
        let Some(resolved) = self.resolve(visit.code).await? else {
            return Ok(None);
        };
        let click_id = random_id(CLICK_ID_LEN);
        let at_ms = now_ms();
        let link = &resolved.link;
        self.recorder.record(NewClick {
            click_id: click_id.clone(),
            link_id: link.id,
            at_ms,
            campaign: link.campaign.clone(),
            creator: link.creator.clone(),
            channel: link.channel.clone(),
            post_id: link.post_id,
            target_id: link.target_id,
            referrer: visit.referrer.map(|r| r.chars().take(500).collect()),
            is_bot: is_preview_bot(visit.user_agent),
            visitor_key: visitor_key(&self.secret, utc_day(at_ms), visit.ip, visit.user_agent),
        });
        Ok(Some(
            with_click_id(&resolved.tagged, &click_id).unwrap_or_else(|_| resolved.tagged.clone()),
        ))
    }

    async fn resolve(&self, code: &str) -> Result<Option<Arc<Resolved>>, StoreError> {
        if let Some(hit) = self.cache.read().ok().and_then(|c| c.get(code).cloned()) {
            return Ok(Some(hit));
        }
        let Some(link) = self.store.link_by_code(code).await? else {
            return Ok(None);
        };
        let utm = Utm {
            source: link.source.clone(),
            medium: Some(link.medium.clone()),
            campaign: link.campaign.clone(),
            content: Some(match link.target_id {
                Some(target) => format!("target-{target}"),
                None => format!("link-{}", link.code),
            }),
            term: None,
        };
        let tagged = tag(&link.destination, &utm).unwrap_or_else(|_| link.destination.clone());
        let resolved = Arc::new(Resolved { link, tagged });
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(code.to_owned(), resolved.clone());
        }
        Ok(Some(resolved))
    }
}
