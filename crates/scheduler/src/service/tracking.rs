//! A campaign post's links become tracked links (`{base}/r/{code}`) when it
//! is rendered, so what is checked against the platform's limit is what is
//! sent. The links are registered with the post's targets, in the same
//! transaction (see `clarion_store::NewTargetLink`).

use std::collections::HashMap;

use clarion_attribution::rewrite_links;
use clarion_content::PlannedTarget;
use clarion_core::{AdapterRegistry, OutboundPost, ThreadStyle};
use clarion_store::NewTargetLink;

/// 62^8 ≈ 2 × 10^14 codes: a clash with a stored link is vanishingly rare.
const CODE_LEN: usize = 8;

/// Rewrites every http(s) link of `planned` (except links already tracked)
/// and checks each message again. Returns each target's links, or the
/// channel and the platform's complaint.
pub(crate) fn track_links(
    planned: &mut [PlannedTarget],
    base_url: &str,
    campaign: &str,
    registry: &AdapterRegistry,
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
        let mut codes: HashMap<String, String> = HashMap::new();
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
