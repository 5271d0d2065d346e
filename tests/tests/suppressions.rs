//! The suppression list's contract, checked on the config table in the emulator and on the in-memory store:
//! the first cause of an address is kept, addresses compare case-insensitively, each tenant's list is its
//! own, a page at a time, and an address taken off the list can be suppressed again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::adapters::memory::suppressions::MemorySuppressionList;
use herald::domain::suppression::{Suppression, SuppressionReason};
use herald::domain::{NotificationId, TenantId, Timestamp};
use herald::ports::{PageRequest, SuppressionList};
use herald_integration_tests::{Stack, unique};

fn entry(address: &str, reason: SuppressionReason, detail: &str) -> Suppression {
    Suppression {
        address: address.to_owned(),
        reason,
        detail: detail.to_owned(),
        notification_id: NotificationId::parse("ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b"),
        created_at: Timestamp::from_millis(1_800_000_000_000),
    }
}

async fn keeps_its_promises(list: &impl SuppressionList) {
    let tenant = TenantId::new(unique("tenant"));
    let other = TenantId::new(unique("other"));

    assert!(
        list.suppress(
            &tenant,
            &entry("Ada@Example.com", SuppressionReason::Bounce, "550 user unknown")
        )
        .await
        .unwrap()
    );
    // Already there: the complaint that follows does not replace the bounce that came first.
    assert!(
        !list
            .suppress(
                &tenant,
                &entry("ada@example.com", SuppressionReason::Complaint, "abuse")
            )
            .await
            .unwrap()
    );
    let kept = list
        .suppression(&tenant, "ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.address.as_str(), kept.reason, kept.detail.as_str()),
        ("ada@example.com", SuppressionReason::Bounce, "550 user unknown")
    );
    assert_eq!(
        kept.notification_id,
        NotificationId::parse("ntf_0193a5b27c4e7d108a2b3c4d5e6f7a8b")
    );
    assert_eq!(list.suppression(&other, "ada@example.com").await.unwrap(), None);

    for address in ["bob@example.com", "cy@example.com"] {
        list.suppress(&tenant, &entry(address, SuppressionReason::Complaint, "abuse"))
            .await
            .unwrap();
    }
    list.suppress(&other, &entry("zed@example.com", SuppressionReason::Bounce, "x"))
        .await
        .unwrap();
    let first = list
        .suppressions(
            &tenant,
            &PageRequest {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    let addresses: Vec<String> = first.items.iter().map(|entry| entry.address.clone()).collect();
    assert_eq!(addresses, ["ada@example.com", "bob@example.com"]);
    let rest = list
        .suppressions(
            &tenant,
            &PageRequest {
                limit: 2,
                after: first.next,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].address, "cy@example.com");

    assert!(list.unsuppress(&tenant, "Ada@Example.com").await.unwrap());
    assert!(!list.unsuppress(&tenant, "ada@example.com").await.unwrap());
    assert_eq!(list.suppression(&tenant, "ada@example.com").await.unwrap(), None);
    assert!(
        list.suppress(
            &tenant,
            &entry("ada@example.com", SuppressionReason::Complaint, "abuse")
        )
        .await
        .unwrap()
    );
}

#[tokio::test]
async fn the_config_table_keeps_the_promises() {
    keeps_its_promises(&Stack::new().await.config_store()).await;
}

#[tokio::test]
async fn the_memory_list_keeps_the_same_promises() {
    keeps_its_promises(&MemorySuppressionList::default()).await;
}
