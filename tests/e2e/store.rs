//! Store-level guarantees on both databases.

use std::time::Duration;

use clarion_store::{NewPost, NewTarget, Store, now_ms};
use sea_orm::ConnectionTrait;

use crate::harness::*;

async fn one_claim_wins(db: TestDb) {
    let store = Store::connect(&db.url, 8).await.unwrap();
    store.migrate().await.unwrap();
    let due = now_ms();
    let (detail, jobs) = store
        .create_post(NewPost {
            source_key: None,
            body: "b".into(),
            template: None,
            vars: serde_json::json!({}),
            campaign: None,
            author: None,
            scheduled_at_ms: Some(due),
            content_hash: String::new(),
            targets: vec![NewTarget {
                channel: "sink".into(),
                override_body: None,
                rendered_text: "b".into(),
                parts: vec!["b".into()],
                media: vec![],
            }],
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let id = detail.targets[0].id;
    let claims = (0..16).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim(id, due, &format!("w{n}"), due + 60_000)
                .await
                .unwrap()
        })
    });
    let mut winners = 0;
    for claim in claims {
        if claim.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent claim succeeds");
    // A job for an older schedule of the target cannot claim it.
    assert!(
        store
            .claim(id, due - 1, "late", due + 60_000)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_claims_have_one_winner_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    one_claim_wins(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_claims_have_one_winner_postgres() {
    if let Some(db) = TestDb::postgres().await {
        one_claim_wins(db).await;
    }
}

async fn adapter_state_is_encrypted(db: TestDb) {
    use clarion_core::{AdapterStore, Secret};
    use clarion_store::{DbAdapterStore, SecretKey};
    use sea_orm::EntityTrait;

    let store = Store::connect(&db.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let state = DbAdapterStore::new(store.clone(), SecretKey::from_passphrase("correct horse"));
    state
        .save("sky", "refresh_jwt", &Secret::new("eyJ-very-secret"))
        .await
        .unwrap();
    state
        .save("sky", "refresh_jwt", &Secret::new("eyJ-rotated"))
        .await
        .unwrap();
    assert_eq!(
        state
            .load("sky", "refresh_jwt")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "eyJ-rotated"
    );
    assert!(state.load("sky", "missing").await.unwrap().is_none());

    let rows = clarion_store::entity::adapter_state::Entity::find()
        .all(store.connection())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "a save replaces the value");
    assert!(!rows[0].ciphertext.contains("rotated") && !rows[0].ciphertext.contains("eyJ"));

    let wrong = DbAdapterStore::new(store, SecretKey::from_passphrase("wrong"));
    let err = wrong
        .load("sky", "refresh_jwt")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("was CLARION_SECRET_KEY changed?"), "{err}");
    assert!(!err.contains("rotated"));
}

#[tokio::test(flavor = "multi_thread")]
async fn adapter_state_is_encrypted_at_rest_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    adapter_state_is_encrypted(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adapter_state_is_encrypted_at_rest_postgres() {
    if let Some(db) = TestDb::postgres().await {
        adapter_state_is_encrypted(db).await;
    }
}

/// Finished queue jobs are pruned after the retention; pending ones never.
async fn finished_jobs_are_pruned(db: TestDb) {
    use clarion_scheduler::{PublishQueue, SchedulerConfig};
    use clarion_store::Enqueue;

    let store = Store::connect(&db.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let queue = PublishQueue::open(&store, &SchedulerConfig::default())
        .await
        .unwrap();
    let far = now_ms() + 3_600_000;
    let jobs: Vec<Enqueue> = (1..=3)
        .map(|id| Enqueue {
            target_id: id,
            not_before_ms: far,
        })
        .collect();
    queue.enqueue(&jobs).await.unwrap();
    // Two jobs finished two days ago, as apalis marks them; one still pending.
    let finish = if store.is_postgres() {
        "UPDATE apalis.jobs SET status = 'Done', done_at = now() - interval '2 days' \
         WHERE id IN (SELECT id FROM apalis.jobs ORDER BY id LIMIT 2)"
    } else {
        "UPDATE Jobs SET status = 'Done', done_at = strftime('%s', 'now') - 172800 \
         WHERE id IN (SELECT id FROM Jobs ORDER BY id LIMIT 2)"
    };
    store.connection().execute_unprepared(finish).await.unwrap();
    assert_eq!(
        queue
            .prune_finished(Duration::from_secs(3 * 86_400), 100)
            .await
            .unwrap(),
        0,
        "inside the retention"
    );
    assert_eq!(
        queue
            .prune_finished(Duration::from_secs(86_400), 100)
            .await
            .unwrap(),
        2
    );
    assert_eq!(db.queued_jobs().await, 1, "the pending job stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_jobs_are_pruned_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    finished_jobs_are_pruned(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_jobs_are_pruned_postgres() {
    if let Some(db) = TestDb::postgres().await {
        finished_jobs_are_pruned(db).await;
    }
}
