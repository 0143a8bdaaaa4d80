//! JSON shapes of the inbox API (one place, so list and show agree).

use clarion_store::{ConversationDetail, ConversationSummary, conversation, engagement, listener};
use serde_json::{Value, json};

use crate::view::format_time;

pub fn conversation(c: &conversation::Model) -> Value {
    json!({
        "id": c.id,
        "channel": c.channel,
        "status": c.status,
        "snoozed_until": c.snoozed_until_ms.and_then(format_time),
        "assignee": c.assignee,
        "labels": c.labels(),
        "post_id": c.post_id,
        "target_id": c.target_id,
        "campaign": c.campaign,
        "last_item_at": format_time(c.last_item_at_ms),
    })
}

pub fn item(e: &engagement::Model) -> Value {
    json!({
        "id": e.id,
        "kind": e.kind,
        "author": {"id": e.author_id, "handle": e.author_handle, "name": e.author_name},
        "text": e.text,
        "url": e.url,
        "platform_id": e.item_id,
        "parent_id": e.parent_id,
        "created_at": format_time(e.created_at_ms),
        "received_at": format_time(e.received_at_ms),
    })
}

pub fn summary(s: &ConversationSummary) -> Value {
    let mut v = conversation(&s.conversation);
    v["items"] = json!(s.items);
    v["latest"] = s.latest.as_ref().map(item).unwrap_or(Value::Null);
    v
}

pub fn detail(d: &ConversationDetail) -> Value {
    let mut v = conversation(&d.conversation);
    v["items"] = d.items.iter().map(item).collect();
    v["notes"] = d
        .notes
        .iter()
        .map(|n| json!({"id": n.id, "author": n.author, "text": n.text, "created_at": format_time(n.created_at_ms)}))
        .collect();
    v["replies"] = d
        .replies
        .iter()
        .map(|r| {
            json!({
                "id": r.reply.id,
                "author": r.reply.author,
                "via": r.reply.via,
                "answers_item": r.reply.engagement_id,
                "post_id": r.reply.post_id,
                "target_id": r.reply.target_id,
                "status": r.target.as_ref().map(|t| t.status.clone()),
                "url": r.target.as_ref().and_then(|t| t.platform_url.clone()),
                "error": r.target.as_ref().and_then(|t| t.last_error.clone()),
                "text": r.target.as_ref().map(|t| t.rendered_text.clone()),
            })
        })
        .collect();
    v
}

pub fn listener(l: &listener::Model, now_ms: i64) -> Value {
    json!({
        "channel": l.channel,
        "holder": l.holder,
        "lease_until": l.lease_until_ms.and_then(format_time),
        "listening": l.lease_until_ms.is_some_and(|t| t >= now_ms),
        "events_total": l.events_total,
        "last_event_at": l.last_event_at_ms.and_then(format_time),
        "last_batch_at": l.last_batch_at_ms.and_then(format_time),
        "lag_seconds": l.last_batch_at_ms.map(|t| (now_ms - t) / 1000),
        "last_error": l.last_error,
        "failing_since": l.failing_since_ms.and_then(format_time),
    })
}
