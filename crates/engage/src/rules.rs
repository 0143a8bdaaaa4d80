//! Auto-rules: evaluated on each new inbox item, in config order.
//!
//! ```toml
//! [[rules]]
//! name = "refunds"
//! keywords = ["refund", "broken"]   # any of them, case-insensitive
//! regex = "order #\\d+"             # and/or a regular expression
//! kinds = ["mention", "reply"]      # optional filters
//! channels = ["mastodon-main"]
//! campaign = "spring"
//! authors = ["@troll@example.social"]
//! label = ["refund"]                # actions
//! assign = "alice"
//! priority = "high"                 # the bridge shows it on the item
//! auto_reply = "Hi {{author}}, we are on it!"   # off unless set
//! ```
//!
//! An auto-reply goes out at most once per author per conversation and at
//! most `max_auto_replies_per_hour` times an hour in all, through the same
//! durable reply path as a person's reply.

use std::collections::VecDeque;
use std::sync::Mutex;

use clarion_core::EngagementKind;
use clarion_store::{engagement, now_ms};
use handlebars::Handlebars;
use regex::Regex;
use serde::Deserialize;
use tracing::{info, warn};

use crate::{InboxService, ReplyVia};

/// One `[[rules]]` entry as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub regex: Option<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    pub campaign: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub label: Vec<String>,
    pub assign: Option<String>,
    pub priority: Option<String>,
    pub auto_reply: Option<String>,
}

/// What a rule matches against: one item and its conversation's campaign.
#[derive(Debug, Clone, Default)]
pub struct Candidate<'a> {
    pub text: &'a str,
    pub kind: &'a str,
    pub channel: &'a str,
    pub campaign: Option<&'a str>,
    pub author_handle: &'a str,
    pub author_id: &'a str,
}

#[derive(Debug)]
struct Rule {
    config: RuleConfig,
    keywords: Vec<String>,
    regex: Option<Regex>,
}

impl Rule {
    fn matches(&self, c: &Candidate<'_>) -> bool {
        let text = c.text.to_lowercase();
        let has_text_test = !self.keywords.is_empty() || self.regex.is_some();
        let text_ok = !has_text_test
            || self.keywords.iter().any(|k| text.contains(k.as_str()))
            || self.regex.as_ref().is_some_and(|r| r.is_match(c.text));
        text_ok
            && (self.config.kinds.is_empty() || self.config.kinds.iter().any(|k| k == c.kind))
            && (self.config.channels.is_empty()
                || self.config.channels.iter().any(|x| x == c.channel))
            && (self.config.campaign.is_none() || self.config.campaign.as_deref() == c.campaign)
            && (self.config.authors.is_empty()
                || self
                    .config
                    .authors
                    .iter()
                    .any(|a| a == c.author_handle || a == c.author_id))
    }
}

/// The configured rules, checked at start.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    inbox: Option<InboxService>,
    max_auto_replies_per_hour: usize,
    recent_auto_replies: Mutex<VecDeque<i64>>,
}

impl Rules {
    /// Validates every rule; the error names each bad rule and field.
    pub fn new(configs: &[RuleConfig], channels: &[&str]) -> Result<Self, String> {
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        let renderer = Handlebars::new();
        for (i, config) in configs.iter().enumerate() {
            let name = if config.name.trim().is_empty() {
                problems.push(format!("rules[{i}].name: give the rule a name"));
                format!("rules[{i}]")
            } else {
                format!("rule `{}`", config.name)
            };
            let regex = match config
                .regex
                .as_deref()
                .map(|r| Regex::new(&format!("(?i){r}")))
            {
                Some(Err(e)) => {
                    problems.push(format!("{name}: regex: {e}"));
                    None
                }
                Some(Ok(r)) => Some(r),
                None => None,
            };
            if let Some(bad) = config
                .kinds
                .iter()
                .find(|k| EngagementKind::parse(k).is_none())
            {
                problems.push(format!(
                    "{name}: kinds: `{bad}` (expected mention, reply, comment, quote or dm)"
                ));
            }
            if let Some(bad) = config
                .channels
                .iter()
                .find(|c| !channels.contains(&c.as_str()))
            {
                problems.push(format!(
                    "{name}: channels: `{bad}` is not a configured channel"
                ));
            }
            if let Some(template) = &config.auto_reply {
                if template.trim().is_empty() {
                    problems.push(format!("{name}: auto_reply: the template is empty"));
                } else if let Err(e) = renderer.render_template(template, &serde_json::json!({})) {
                    problems.push(format!("{name}: auto_reply: {e}"));
                }
            }
            let acts = !config.label.is_empty()
                || config.assign.is_some()
                || config.priority.is_some()
                || config.auto_reply.is_some();
            if !acts {
                problems.push(format!(
                    "{name}: no action (set label, assign, priority or auto_reply)"
                ));
            }
            rules.push(Rule {
                keywords: config.keywords.iter().map(|k| k.to_lowercase()).collect(),
                regex,
                config: config.clone(),
            });
        }
        if problems.is_empty() {
            Ok(Self {
                rules,
                inbox: None,
                max_auto_replies_per_hour: 20,
                recent_auto_replies: Mutex::default(),
            })
        } else {
            Err(problems.join("; "))
        }
    }

    /// Rules act through `inbox` (without one they only answer dry runs).
    pub fn with_inbox(mut self, inbox: InboxService, max_auto_replies_per_hour: usize) -> Self {
        self.inbox = Some(inbox);
        self.max_auto_replies_per_hour = max_auto_replies_per_hour;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The names of the rules that match, in order (`clarion rules test`).
    pub fn matching(&self, candidate: &Candidate<'_>) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.matches(candidate))
            .map(|r| r.config.name.as_str())
            .collect()
    }

    /// Applies every matching rule to each new item. Failures are logged:
    /// a rule must never stop the listener that stored the item.
    pub async fn apply(&self, items: &[engagement::Model]) {
        let Some(inbox) = &self.inbox else { return };
        if self.rules.is_empty() {
            return;
        }
        for item in items {
            let conversation = match inbox.store().conversation(item.conversation_id).await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "rules: conversation not found");
                    continue;
                }
            };
            let candidate = Candidate {
                text: &item.text,
                kind: &item.kind,
                channel: &item.channel,
                campaign: conversation.campaign.as_deref(),
                author_handle: &item.author_handle,
                author_id: &item.author_id,
            };
            for rule in self.rules.iter().filter(|r| r.matches(&candidate)) {
                if let Err(e) = self.act(inbox, rule, item).await {
                    warn!(rule = rule.config.name, error = %e, "rule action failed");
                }
            }
        }
    }

    async fn act(
        &self,
        inbox: &InboxService,
        rule: &Rule,
        item: &engagement::Model,
    ) -> Result<(), crate::InboxError> {
        let id = item.conversation_id;
        let mut labels = rule.config.label.clone();
        if let Some(priority) = &rule.config.priority {
            labels.push(format!("priority:{priority}"));
        }
        if !labels.is_empty() {
            inbox.label(id, &labels, &[]).await?;
        }
        if let Some(who) = &rule.config.assign {
            inbox.assign(id, Some(who)).await?;
        }
        if let Some(template) = &rule.config.auto_reply {
            let detail = inbox.show(id).await?;
            let answered_before = detail.replies.iter().any(|r| {
                r.reply.via == ReplyVia::Rule.as_str()
                    && detail
                        .items
                        .iter()
                        .any(|i| i.id == r.reply.engagement_id && i.author_id == item.author_id)
            });
            if answered_before {
                return Ok(());
            }
            if !self.take_auto_reply_slot() {
                warn!(
                    rule = rule.config.name,
                    "auto-reply skipped: hourly limit reached"
                );
                return Ok(());
            }
            let text = Handlebars::new()
                .render_template(
                    template,
                    &serde_json::json!({
                        "author": item.author_handle,
                        "name": item.author_name,
                        "text": item.text,
                        "channel": item.channel,
                    }),
                )
                .map_err(|e| crate::InboxError::BadRequest(e.to_string()))?;
            let author = format!("rule:{}", rule.config.name);
            inbox
                .reply(id, &text, &author, ReplyVia::Rule, None, Some(item.id))
                .await?;
            info!(
                rule = rule.config.name,
                conversation = id,
                "auto-reply queued"
            );
        }
        Ok(())
    }

    fn take_auto_reply_slot(&self) -> bool {
        let now = now_ms();
        let Ok(mut recent) = self.recent_auto_replies.lock() else {
            return false;
        };
        while recent.front().is_some_and(|t| now - t > 3_600_000) {
            recent.pop_front();
        }
        if recent.len() >= self.max_auto_replies_per_hour {
            return false;
        }
        recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> RuleConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn rules_match_keywords_regex_and_filters() {
        let rules = Rules::new(
            &[
                rule("name = \"refund\"\nkeywords = [\"Refund\"]\nlabel = [\"refund\"]"),
                rule("name = \"order\"\nregex = \"order #\\\\d+\"\nkinds = [\"reply\"]\nassign = \"bo\""),
            ],
            &["masto"],
        )
        .unwrap();
        let mut c = Candidate {
            text: "I want a REFUND for order #12",
            kind: "mention",
            channel: "masto",
            ..Default::default()
        };
        assert_eq!(rules.matching(&c), ["refund"]);
        c.kind = "reply";
        assert_eq!(rules.matching(&c), ["refund", "order"]);
        c.text = "thanks!";
        assert!(rules.matching(&c).is_empty());
    }

    #[test]
    fn bad_rules_are_refused_naming_rule_and_field() {
        let err = Rules::new(
            &[
                rule("name = \"a\"\nregex = \"(\"\nlabel = [\"x\"]"),
                rule("name = \"b\"\nkinds = [\"like\"]\nchannels = [\"nope\"]"),
                rule("name = \"c\"\nauto_reply = \"{{#if}}\""),
            ],
            &["masto"],
        )
        .unwrap_err();
        assert!(err.contains("rule `a`: regex"), "{err}");
        assert!(err.contains("rule `b`: kinds: `like`"), "{err}");
        assert!(err.contains("rule `b`: channels: `nope`"), "{err}");
        assert!(err.contains("rule `b`: no action"), "{err}");
        assert!(err.contains("rule `c`: auto_reply"), "{err}");
    }
}
