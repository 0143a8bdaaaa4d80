//! A campaign post's links become tracked links (`{base}/r/{code}`) when it
//! is rendered, so what is checked against the platform's limit is what is
//! sent. The links are registered with the post's targets, in the same
//! transaction (see `clarion_store::NewTargetLink`).

use std::collections::{BTreeMap, HashMap};

use clarion_attribution::rewrite_links;
use clarion_content::PlannedTarget;
use clarion_core::{AdapterRegistry, OutboundPost, ThreadStyle};
use clarion_store::NewTargetLink;

/// 62^8 ≈ 2 × 10^14 codes: a clash with a stored link is vanishingly rare.
const CODE_LEN: usize = 8;

/// Per channel: destination -> the code it is already tracked under.
pub type KnownLinks = BTreeMap<String, BTreeMap<String, String>>;

/// The tracked links of a stored post's targets, per channel.
pub(crate) fn known_links(links: &[clarion_store::link::Model]) -> KnownLinks {
    let mut known = KnownLinks::new();
    for l in links {
        if let Some(channel) = &l.channel {
            known
                .entry(channel.clone())
                .or_default()
                .insert(l.destination.clone(), l.code.clone());
        }
    }
    known
}

/// Rewrites every http(s) link of `planned` (except links already tracked)
/// and checks each message again. A destination in `known` keeps its code.
/// Returns each target's links to register (the new codes only), or the
/// channel and the platform's complaint.
pub(crate) fn track_links(
    planned: &mut [PlannedTarget],
    base_url: &str,
    campaign: &str,
    registry: &AdapterRegistry,
    known: &KnownLinks,
) -> Result<Vec<Vec<NewTargetLink>>, String> {
    let tracked_prefix = format!("{base_url}/r/");
    let mut all = Vec::with_capacity(planned.len());
    for target in planned.iter_mut() {
        let Some(adapter) = registry.get(&target.channel) else {
            all.push(Vec::new());
            continue;
        };
        let kind = adapter.kind();
        let medium = if kind == "email" { "email" } else { "social" };
        // One code per destination within a target: the whole text and its
        // parts name the same links.
        let registered = known.get(&target.channel);
        let mut codes: HashMap<String, String> = registered
            .map(|k| k.iter().map(|(d, c)| (d.clone(), c.clone())).collect())
            .unwrap_or_default();
        let mut rewrite = |text: &str| {
            rewrite_links(text, |url| {
                if url.starts_with(&tracked_prefix) {
                    return None;
                }
                let code = codes.entry(url.to_owned()).or_insert_with(new_code);
                Some(format!("{tracked_prefix}{code}"))
            })
        };
        target.text = rewrite(&target.text);
        for part in &mut target.parts {
            *part = rewrite(part);
        }
        let messages = match adapter.thread_style() {
            ThreadStyle::Native => target.parts.clone(),
            ThreadStyle::Joined => vec![target.parts.join("\n\n")],
        };
        for (i, text) in messages.into_iter().enumerate() {
            let post = OutboundPost {
                text,
                campaign: Some(campaign.to_owned()),
                media: if i == 0 {
                    target.media.clone()
                } else {
                    Vec::new()
                },
            };
            adapter.validate(&post).map_err(|e| {
                format!(
                    "channel `{}`: with its links tracked: {}",
                    target.channel, e.message
                )
            })?;
        }
        let mut links: Vec<NewTargetLink> = codes
            .into_iter()
            .filter(|(destination, _)| registered.is_none_or(|k| !k.contains_key(destination)))
            .map(|(destination, code)| NewTargetLink {
                code,
                destination,
                source: kind.to_owned(),
                medium: medium.to_owned(),
            })
            .collect();
        links.sort_by(|a, b| a.code.cmp(&b.code));
        all.push(links);
    }
    Ok(all)
}

fn new_code() -> String {
    clarion_attribution::random_id(CODE_LEN)
}
