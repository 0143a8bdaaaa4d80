//! `clarion inbox ...`: the unified inbox from the terminal. Every
//! operation goes through `InboxService`, the same as the API and the bridge.

use clap::{Args, Subcommand};
use clarion_engage::inbox::parse_duration;
use clarion_engage::{InboxQuery, ReplyVia};
use clarion_store::{ConversationSummary, now_ms};

use crate::app::App;
use crate::time;

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// Conversations, newest activity first.
    #[command(after_help = "Example: clarion inbox ls --status open --platform mastodon")]
    Ls(LsArgs),
    /// One conversation: its items, replies (with their publish status) and notes.
    Show {
        /// The conversation's id (`inbox ls` shows it).
        id: i32,
    },
    /// Answer a conversation as a threaded reply on its platform.
    #[command(after_help = "Example: clarion inbox reply 12 'Thanks, fixed now!' --as alice")]
    Reply {
        /// The conversation's id.
        id: i32,
        /// The reply, as it will be posted.
        text: String,
        /// Who is answering (recorded with the reply).
        #[arg(long = "as", default_value = "cli")]
        author: String,
        /// Answer this item of the conversation instead of its newest one.
        #[arg(long)]
        to: Option<i32>,
    },
    /// Add an internal note (never sent to the platform).
    Note {
        /// The conversation's id.
        id: i32,
        /// The note (internal; never sent).
        text: String,
        /// Who writes the note.
        #[arg(long = "as", default_value = "cli")]
        author: String,
    },
    /// Mark conversations resolved.
    Resolve {
        /// Conversation ids.
        #[arg(required = true)]
        ids: Vec<i32>,
    },
    /// Open conversations again.
    Reopen {
        /// Conversation ids.
        #[arg(required = true)]
        ids: Vec<i32>,
    },
    /// Hide a conversation for a while (`2h`, `1d`); a new item wakes it earlier.
    Snooze {
        /// The conversation's id.
        id: i32,
        /// How long: `45s`, `30m`, `2h`, `1d`.
        length: String,
    },
    /// Assign a conversation (`--none` to unassign).
    Assign {
        /// The conversation's id.
        id: i32,
        /// Who takes it (any name your team uses).
        who: Option<String>,
        /// Unassign instead.
        #[arg(long, conflicts_with = "who")]
        none: bool,
    },
    /// Add labels (`--remove` to take them off).
    Label {
        /// The conversation's id.
        id: i32,
        /// Labels to add (or remove).
        #[arg(required = true)]
        labels: Vec<String>,
        /// Remove these labels instead of adding them.
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// open, pending, resolved or snoozed.
    #[arg(long)]
    status: Option<String>,
    /// A platform kind: mastodon, bluesky, telegram, ...
    #[arg(long)]
    platform: Option<String>,
    /// A channel name.
    #[arg(long)]
    channel: Option<String>,
    /// Only conversations about posts of this campaign.
    #[arg(long)]
    campaign: Option<String>,
    /// Only conversations with this label.
    #[arg(long)]
    label: Option<String>,
    /// Only conversations assigned to this person.
    #[arg(long)]
    assignee: Option<String>,
    /// At most this many conversations.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: InboxCommand, app: App) -> anyhow::Result<()> {
    let inbox = &app.inbox;
    match cmd {
        InboxCommand::Ls(args) => {
            let list = inbox
                .list(&InboxQuery {
                    status: args.status,
                    platform: args.platform,
                    channel: args.channel,
                    campaign: args.campaign,
                    label: args.label,
                    assignee: args.assignee,
                    limit: Some(args.limit),
                })
                .await?;
            if args.json {
                for c in &list {
                    println!("{}", summary_json(c));
                }
            } else {
                print_list(&list);
            }
        }
        InboxCommand::Show { id } => {
            let d = inbox.show(id).await?;
            let c = &d.conversation;
            println!(
                "conversation {} · {} · {}{}",
                c.id,
                c.channel,
                c.status,
                c.snoozed_until_ms
                    .map(|t| format!(" until {}", time::show(t)))
                    .unwrap_or_default()
            );
            if let Some(a) = &c.assignee {
                println!("assignee: {a}");
            }
            if !c.labels().is_empty() {
                println!("labels: {}", c.labels().join(", "));
            }
            if let Some(post) = c.post_id {
                println!(
                    "answers: post {post}{}",
                    c.campaign
                        .as_deref()
                        .map(|x| format!(" (campaign {x})"))
                        .unwrap_or_default()
                );
            }
            for i in &d.items {
                println!(
                    "\n[{}] {} {} by {} {}{}\n  {}",
                    i.id,
                    time::show(i.created_at_ms),
                    i.kind,
                    i.author_handle,
                    i.author_name,
                    i.url
                        .as_deref()
                        .map(|u| format!(" <{u}>"))
                        .unwrap_or_default(),
                    i.text.replace('\n', "\n  ")
                );
            }
            for r in &d.replies {
                let (status, text, url) = r
                    .target
                    .as_ref()
                    .map(|t| {
                        (
                            t.status.clone(),
                            t.rendered_text.clone(),
                            t.platform_url.clone().or(t.last_error.clone()),
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "\n→ reply by {} via {} ({status}, post {}){}\n  {}",
                    r.reply.author,
                    r.reply.via,
                    r.reply.post_id,
                    url.map(|u| format!(" {u}")).unwrap_or_default(),
                    text.replace('\n', "\n  ")
                );
            }
            for n in &d.notes {
                println!(
                    "\n📝 note by {} at {}\n  {}",
                    n.author,
                    time::show(n.created_at_ms),
                    n.text
                );
            }
        }
        InboxCommand::Reply {
            id,
            text,
            author,
            to,
        } => {
            let queued = inbox
                .reply(id, &text, &author, ReplyVia::Cli, None, to)
                .await?;
            println!(
                "reply queued as post {} (target {}); `clarion post show {}` follows it",
                queued.post_id, queued.target_id, queued.post_id
            );
        }
        InboxCommand::Note { id, text, author } => {
            let note = inbox.note(id, &author, &text).await?;
            println!("note {} added to conversation {id}", note.id);
        }
        InboxCommand::Resolve { ids } => {
            for id in ids {
                inbox.resolve(id).await?;
                println!("conversation {id}: resolved");
            }
        }
        InboxCommand::Reopen { ids } => {
            for id in ids {
                inbox.reopen(id).await?;
                println!("conversation {id}: open");
            }
        }
        InboxCommand::Snooze { id, length } => {
            let until = now_ms() + parse_duration(&length)?.as_millis() as i64;
            inbox.snooze(id, until).await?;
            println!("conversation {id}: snoozed until {}", time::show(until));
        }
        InboxCommand::Assign { id, who, none } => {
            let who = if none { None } else { who };
            let c = inbox.assign(id, who.as_deref()).await?;
            match c.assignee {
                Some(a) => println!("conversation {id}: assigned to {a}"),
                None => println!("conversation {id}: unassigned"),
            }
        }
        InboxCommand::Label { id, labels, remove } => {
            let c = if remove {
                inbox.label(id, &[], &labels).await?
            } else {
                inbox.label(id, &labels, &[]).await?
            };
            println!("conversation {id}: labels [{}]", c.labels().join(", "));
        }
    }
    Ok(())
}

fn print_list(list: &[ConversationSummary]) {
    if list.is_empty() {
        println!("no conversations");
        return;
    }
    println!(
        "{:>5}  {:<9} {:<16} {:<8} {:>5}  {:<17} {:<20} text",
        "id", "status", "channel", "kind", "items", "last", "from"
    );
    for c in list {
        let (kind, from, text) = c
            .latest
            .as_ref()
            .map(|e| {
                (
                    e.kind.as_str(),
                    e.author_handle.as_str(),
                    one_line(&e.text, 60),
                )
            })
            .unwrap_or(("", "", String::new()));
        println!(
            "{:>5}  {:<9} {:<16} {:<8} {:>5}  {:<17} {:<20} {text}",
            c.conversation.id,
            c.conversation.status,
            c.conversation.channel,
            kind,
            c.items,
            time::show(c.conversation.last_item_at_ms),
            from
        );
    }
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    } else {
        flat
    }
}

fn summary_json(c: &ConversationSummary) -> serde_json::Value {
    let conv = &c.conversation;
    serde_json::json!({
        "id": conv.id,
        "channel": conv.channel,
        "status": conv.status,
        "assignee": conv.assignee,
        "labels": conv.labels(),
        "campaign": conv.campaign,
        "post_id": conv.post_id,
        "items": c.items,
        "last_item_at_ms": conv.last_item_at_ms,
        "latest": c.latest.as_ref().map(|e| serde_json::json!({
            "id": e.id, "kind": e.kind, "author": e.author_handle, "text": e.text, "url": e.url,
        })),
    })
}
