//! Store-level guarantees on both databases.

use std::time::Duration;

use clarion_store::{AttemptRecord, Claim, ClaimBatch, Finish, NewPost, NewTarget, Store, now_ms};
use sea_orm::ConnectionTrait;

use crate::harness::*;

fn new_post(due: i64, channels: usize) -> NewPost {
    NewPost {
        source_key: None,
        import_key: None,
        body: "b".into(),
        template: None,
        vars: serde_json::json!({}),
        campaign: None,
        author: None,
        scheduled_at_ms: Some(due),
        content_hash: String::new(),
        targets: (0..channels)
            .map(|n| NewTarget {
                channel: format!("sink{n}"),
                override_body: None,
                rendered_text: "b".into(),
                parts: vec!["b".into()],
                media: vec![],
                reply: None,
                links: Vec::new(),
                variant: None,
            })
            .collect(),
    }
}

fn batch<'a>(worker: &'a str, id: &'a str, now: i64, lease_ms: i64) -> ClaimBatch<'a> {
    ClaimBatch {
        worker,
        batch: id,
        now_ms: now,
        lease_until_ms: now + lease_ms,
    }
}

fn published(token: &str, target_id: i32, now: i64) -> Finish {
    Finish {
        token: token.to_owned(),
        attempt: AttemptRecord {
            target_id,
            attempt_no: 1,
            worker: "w".into(),
            started_at_ms: now,
            finished_at_ms: now,
            outcome: "published".into(),
            http_status: None,
            retry_after_ms: None,
            platform_post_id: Some(format!("p{target_id}")),
            message: None,
        },
        next: Claim::Published {
            platform_post_id: Some(format!("p{target_id}")),
            url: None,
        },
    }
}

/// Sixteen dispatchers claim 20 due targets at once, four at a time: every
/// target is claimed exactly once, each claim with its own token.
async fn one_claim_wins(db: TestDb) {
    let store = Store::connect(&db.url, 8).await.unwrap();
    store.migrate().await.unwrap();
    let due = now_ms();
    let (detail, jobs) = store.create_post(new_post(due, 20)).await.unwrap();
    assert_eq!(jobs.len(), 20);
    let claims = (0..16).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let worker = format!("w{n}");
            let id = format!("b{n}");
            store
                .claim_due(&batch(&worker, &id, due, 60_000), due, 4, &[], None)
                .await
                .unwrap()
        })
    });
    let mut claimed = Vec::new();
    for claim in claims {
        claimed.extend(claim.await.unwrap());
    }
    let mut ids: Vec<i32> = claimed.iter().map(|t| t.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(claimed.len(), 20, "every due target claimed once");
    assert_eq!(ids.len(), 20, "no target claimed twice");
    let tokens: std::collections::HashSet<_> = claimed
        .iter()
        .filter_map(|t| t.claim_token.clone())
        .collect();
    assert_eq!(tokens.len(), 20, "each claim has its own token");
    assert!(claimed.iter().all(|t| t.first_sent_at_ms == Some(due)));
    // Nothing is left to claim, and a target not yet due is never claimed.
    assert!(
        store
            .claim_due(&batch("late", "x", due, 60_000), due, 10, &[], None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(detail.targets.len(), 20);
}

/// A claim's token decides who may write its result: after the lease ran
/// out and another worker took the target over, the first claim's result
/// is refused (only its attempt is recorded); a renewed lease is not taken.
async fn claim_tokens_fence_results(db: TestDb) {
    let store = Store::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = now_ms();
    store.create_post(new_post(now, 2)).await.unwrap();
    let first = batch("p1", "first", now, 1_000);
    let claimed = store.claim_due(&first, now, 2, &[], None).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let (a, b) = (claimed[0].id, claimed[1].id);
    // `a` is still being worked on: its lease is renewed; `b`'s runs out.
    let later = now + 5_000;
    assert_eq!(
        store
            .renew_leases(&[first.token_for(a)], later + 60_000)
            .await
            .unwrap(),
        1
    );
    let expired = store.expired_leases(later, 10).await.unwrap();
    assert_eq!(
        expired.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![b],
        "only the claim that was not renewed has expired"
    );
    let second = batch("p2", "second", later, 60_000);
    assert!(
        store
            .reclaim_expired(a, &second, "p1 stopped")
            .await
            .unwrap()
            .is_none()
    );
    let taken = store
        .reclaim_expired(b, &second, "p1 stopped")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.last_error.as_deref(), Some("p1 stopped"));
    assert_eq!(
        taken.claim_token.as_deref(),
        Some(second.token_for(b).as_str())
    );
    assert_eq!(taken.last_outcome.as_deref(), Some("outcome_unknown"));
    assert_eq!(
        taken.first_sent_at_ms,
        Some(now),
        "the key's first use is kept"
    );
    // The stale claim of `b` finishes late: refused. The live one of `a`: applied.
    let applied = store
        .finish_attempts(vec![
            published(&first.token_for(a), a, later),
            published(&first.token_for(b), b, later),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![true, false]);
    let applied = store
        .finish_attempts(vec![published(&second.token_for(b), b, later)])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    let targets = all_targets(&store).await;
    assert!(targets.iter().all(|t| t.status == "published"));
    assert_eq!(
        targets
            .iter()
            .find(|t| t.id == b)
            .unwrap()
            .platform_post_id
            .as_deref(),
        Some(format!("p{b}").as_str())
    );
    assert_eq!(
        all_attempts(&store).await.len(),
        3,
        "every attempt is recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_tokens_fence_results_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    claim_tokens_fence_results(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_tokens_fence_results_postgres() {
    if let Some(db) = TestDb::postgres().await {
        claim_tokens_fence_results(db).await;
    }
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
    let key = SecretKey::from_passphrase(&store, "correct horse")
        .await
        .unwrap();
    let state = DbAdapterStore::new(store.clone(), key);
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
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| r.scope != clarion_store::META_SCOPE)
        .collect();
    assert_eq!(rows.len(), 1, "a save replaces the value");
    assert!(!rows[0].ciphertext.contains("rotated") && !rows[0].ciphertext.contains("eyJ"));
    assert!(
        !rows[0].name.contains("refresh"),
        "names are stored as tags"
    );

    // A wrong passphrase hashes names differently too: nothing is found, and
    // a row found under a right name but the wrong key is refused by name.
    let wrong_key = SecretKey::from_passphrase(&store, "wrong").await.unwrap();
    let wrong = DbAdapterStore::new(store.clone(), wrong_key);
    assert!(wrong.load("sky", "refresh_jwt").await.unwrap().is_none());
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

    let store = Store::connect(&db.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let queue = PublishQueue::open(&store, &SchedulerConfig::default())
        .await
        .unwrap();
    let far = now_ms() + 3_600_000;
    queue
        .push_wakes(&[far, far + 1_000, far + 2_000])
        .await
        .unwrap();
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

/// Imported posts carry a key; a post whose key is stored — before, by a
/// concurrent import, or earlier in the same batch — is skipped inside the
/// insert (its place in the answer is None, nothing of it is written), and
/// posts without a key are always created.
async fn import_keys_are_stored_once(db: TestDb) {
    let store = Store::connect(&db.url, 8).await.unwrap();
    store.migrate().await.unwrap();
    let due = now_ms() + 3_600_000;
    let keyed = |key: Option<&str>, body: &str| NewPost {
        import_key: key.map(str::to_owned),
        body: body.to_owned(),
        ..new_post(due, 2)
    };
    let (first, jobs) = store
        .create_posts(&[
            keyed(Some("k1"), "a"),
            keyed(None, "b"),
            keyed(Some("k1"), "a again"),
            keyed(Some("k2"), "c"),
        ])
        .await
        .unwrap();
    let bodies = |details: &[Option<clarion_store::PostDetail>]| -> Vec<Option<String>> {
        details
            .iter()
            .map(|d| d.as_ref().map(|d| d.post.body.clone()))
            .collect()
    };
    assert_eq!(
        bodies(&first),
        [Some("a".into()), Some("b".into()), None, Some("c".into())]
    );
    assert_eq!(jobs.len(), 6);
    for d in first.iter().flatten() {
        assert_eq!(d.targets.len(), 2);
        assert!(d.targets.iter().all(|t| t.post_id == d.post.id));
    }
    let (again, jobs) = store
        .create_posts(&[
            keyed(Some("k2"), "c"),
            keyed(None, "d"),
            keyed(Some("k3"), "e"),
        ])
        .await
        .unwrap();
    assert_eq!(bodies(&again), [None, Some("d".into()), Some("e".into())]);
    assert_eq!(jobs.len(), 4);
    let stored = store
        .stored_import_keys(&["k1".into(), "k2".into(), "k3".into(), "k4".into()])
        .await
        .unwrap();
    assert_eq!(
        stored,
        ["k1", "k2", "k3"].map(str::to_owned).into_iter().collect()
    );

    // Eight imports of the same rows at once: each row is stored once.
    let imports = (0..8).map(|_| {
        let store = store.clone();
        let posts: Vec<NewPost> = (0..20)
            .map(|n| keyed(Some(&format!("race{n}")), &format!("race {n}")))
            .collect();
        tokio::spawn(async move { store.create_posts(&posts).await })
    });
    let mut created = 0;
    for import in imports {
        // A loser may wait for the winner's commit, never fail or double.
        let (details, _) = import.await.unwrap().unwrap();
        created += details.iter().flatten().count();
    }
    assert_eq!(created, 20);
    let targets = all_targets(&store).await.len();
    assert_eq!(targets, 2 * (3 + 2 + 20), "two targets per stored post");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_keys_are_stored_once_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    import_keys_are_stored_once(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn import_keys_are_stored_once_postgres() {
    if let Some(db) = TestDb::postgres().await {
        import_keys_are_stored_once(db).await;
    }
}
