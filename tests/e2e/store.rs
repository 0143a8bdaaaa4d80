//! Store-level guarantees on both databases.

use clarion_store::{NewPost, NewTarget, Store, now_ms};

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
