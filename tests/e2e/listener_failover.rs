//! Two `clarion run` processes on one PostgreSQL database: exactly one
//! listens per account (the lease), and when that one is killed (SIGKILL,
//! no shutdown code) the other takes over once the lease runs out, from the
//! stored cursor: every mention is captured and shown in the bridge chat
//! exactly once. The fake Mastodon tells the two processes apart by their
//! access token (each process is started with its own); the fake Telegram
//! answers overlapping `getUpdates` calls with 409 Conflict, as Telegram
//! does when two consumers poll one bot.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use clarion_store::Store;
use clarion_store::entity::engagement;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::bridge::{Call, Fakes, channels};
use crate::harness::*;

const LEASE_SECS: u64 = 4;

fn text(n: u32) -> String {
    format!("question number {n} about the tour")
}

fn status_id(n: u32) -> String {
    format!("{}", 30_000 + n)
}

/// Channel -> holder, as stored.
async fn holders(store: &Store) -> HashMap<String, Option<String>> {
    store
        .listeners()
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.channel, row.holder))
        .collect()
}

async fn engagements(store: &Store) -> Vec<engagement::Model> {
    engagement::Entity::find()
        .filter(engagement::Column::Channel.eq("masto"))
        .all(store.connection())
        .await
        .unwrap()
}

/// How many bridge messages show mention `n`.
fn shown(fakes: &Fakes, n: u32) -> usize {
    let needle = format!("{}\n", text(n));
    fakes
        .sent()
        .iter()
        .filter(|m| {
            m["request"]["text"]
                .as_str()
                .is_some_and(|t| t.contains(&needle))
        })
        .count()
}

/// The access token a Mastodon poll carried.
fn token(call: &Call) -> &str {
    call.auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// Waits until mentions 1..=n are stored and shown in the chat, noting
/// every masto holder seen on the way.
async fn arrived(
    store: &Store,
    fakes: &Fakes,
    n: u32,
    limit: Duration,
    seen_holders: &mut BTreeSet<String>,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(Some(holder)) = holders(store).await.get("masto") {
            seen_holders.insert(holder.clone());
        }
        let stored = engagements(store).await.len() as u32;
        if stored >= n && (1..=n).all(|i| shown(fakes, i) >= 1) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_listener_is_taken_over_without_loss_or_doubles_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let fakes = Fakes::start().await;
    for n in 1..=3 {
        fakes.mention(&status_id(n), &text(n));
    }
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = format!(
        "{}\n[listen]\nlease_secs = {LEASE_SECS}\n",
        channels(&fakes.base)
    );
    let mut clarion = Clarion::new(Some(db), &settings);
    let env = |label: &str| {
        vec![
            ("E2E_MASTODON_TOKEN".into(), format!("token-{label}")),
            ("E2E_TELEGRAM_TOKEN".into(), "123:telegram".into()),
        ]
    };
    // No `migrate` first: both processes create the schema and register the
    // channels at the same moment (`upsert_channels` once failed one of them
    // on `channels_name_key`).
    // Each process polls Mastodon with its own token, so the fake can tell
    // who polled; both start at once and race for the leases.
    let mut spawn = |label: &str| {
        clarion.env = env(label);
        clarion.spawn_run(free_port(), label)
    };
    let a = spawn("a");
    let b = spawn("b");
    a.ready().await;
    b.ready().await;
    let store = clarion.db.store().await;
    let logs = |a: &Running, b: &Running| format!("--- a:\n{}\n--- b:\n{}", a.log(), b.log());

    let mut masto_holders = BTreeSet::new();

    // Both alive: the first three, then two more.
    assert!(
        arrived(
            &store,
            &fakes,
            3,
            Duration::from_secs(30),
            &mut masto_holders
        )
        .await,
        "the first mentions arrived:\n{}",
        logs(&a, &b)
    );
    for n in 4..=5 {
        fakes.mention(&status_id(n), &text(n));
    }
    assert!(
        arrived(
            &store,
            &fakes,
            5,
            Duration::from_secs(20),
            &mut masto_holders
        )
        .await,
        "mentions made while both run arrived:\n{}",
        logs(&a, &b)
    );
    assert_eq!(
        masto_holders.len(),
        1,
        "one holder while both run: {masto_holders:?}"
    );
    let holder = masto_holders.first().unwrap().clone();
    let holds = |running: &Running| holder.contains(&format!("-{}-", running.child.id()));
    assert!(
        holds(&a) ^ holds(&b),
        "the holder `{holder}` is one of the two processes"
    );
    let (mut victim, survivor, victim_token, survivor_token) = if holds(&a) {
        (a, b, "token-a", "token-b")
    } else {
        (b, a, "token-b", "token-a")
    };
    let status = clarion.ok(&["listeners", "status"]);
    assert!(
        status.contains(&holder) && status.contains("listening"),
        "{status}"
    );

    // Only the holder polled, and Telegram never saw two consumers.
    let polls = fakes.calls("/api/v1/notifications");
    assert!(polls.len() >= 2, "the holder polls: {polls:?}");
    let pollers: BTreeSet<&str> = polls.iter().map(token).collect();
    assert_eq!(
        pollers,
        BTreeSet::from([victim_token]),
        "only the holder polled Mastodon"
    );
    assert_eq!(fakes.conflicts(), 0, "one getUpdates consumer at a time");
    let cursor = store
        .listeners()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.channel == "masto")
        .and_then(|r| r.cursor);
    assert_eq!(
        cursor.as_deref(),
        Some("70005"),
        "the newest notification read"
    );

    // The holder dies; three more mentions come in at once.
    victim.kill();
    let killed = Instant::now();
    for n in 6..=8 {
        fakes.mention(&status_id(n), &text(n));
    }
    let mut after = BTreeSet::new();
    let all = arrived(&store, &fakes, 8, Duration::from_secs(20), &mut after).await;
    assert!(
        all,
        "the survivor took over within 20 s:\n{}",
        logs(&victim, &survivor)
    );
    let took = killed.elapsed();

    after.remove(&holder);
    assert!(after.len() <= 1, "one takeover, no flapping: {after:?}");
    let rows = holders(&store).await;
    let new_holder = rows["masto"].clone().unwrap_or_default();
    assert!(
        new_holder.contains(&format!("-{}-", survivor.child.id())),
        "the survivor holds masto now: {rows:?}"
    );
    assert!(
        rows["ops"]
            .as_deref()
            .is_some_and(|h| h.contains(&format!("-{}-", survivor.child.id()))),
        "and the bridge chat: {rows:?}"
    );
    let polls = fakes.calls("/api/v1/notifications");
    let since: Vec<&Call> = polls.iter().filter(|c| c.at > killed).collect();
    assert!(
        since.iter().all(|c| token(c) == survivor_token),
        "after the kill only the survivor polls: {since:?}"
    );
    let first = since.first().expect("the survivor polled");
    let waited = first.at - killed;
    assert!(
        waited >= Duration::from_secs(LEASE_SECS - 2),
        "the lease was respected: the survivor polled {waited:?} after the kill"
    );
    assert_eq!(
        first.param("min_id").as_deref(),
        Some("70005"),
        "the survivor went on from the stored cursor: {first:?}"
    );

    // Let the survivor poll once more after everything arrived, then
    // count: nothing lost, nothing twice.
    let polled = polls.len();
    let again = wait_until(Duration::from_secs(15), || async {
        fakes.calls("/api/v1/notifications").len() > polled
    })
    .await;
    assert!(again, "the survivor keeps polling");
    let stored = engagements(&store).await;
    let mut ids: Vec<String> = stored.iter().map(|e| e.item_id.clone()).collect();
    ids.sort();
    let expected: Vec<String> = (1..=8).map(status_id).collect();
    assert_eq!(ids, expected, "each mention stored once");
    for n in 1..=8 {
        assert_eq!(shown(&fakes, n), 1, "mention {n} shown once in the chat");
    }
    let row = store
        .listeners()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.channel == "masto")
        .unwrap();
    assert_eq!(row.events_total, 8, "{row:?}");
    assert_eq!(row.cursor.as_deref(), Some("70008"));
    let listed = clarion.ok(&["inbox", "ls", "--json"]);
    assert_eq!(listed.lines().count(), 8, "{listed}");
    assert_eq!(fakes.conflicts(), 0, "one getUpdates consumer at a time");
    let status = clarion.ok(&["listeners", "status"]);
    assert!(
        status.contains(&new_holder) && status.contains("listening") && !status.contains(&holder),
        "{status}"
    );
    eprintln!("takeover: first survivor poll {waited:?} after the kill; all in {took:?}");
}
