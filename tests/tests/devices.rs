//! The device store's contract, checked on the config table in the emulator and on the in-memory store: one
//! registration per user and token, a re-registration replaces the endpoint and keeps `created_at`, a token
//! stays its platform's, each user's and tenant's devices are their own, and a gone endpoint is forgotten
//! only while it is still the device's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::adapters::memory::devices::MemoryDeviceStore;
use herald::domain::device::{DeviceRegistration, DeviceToken, Platform};
use herald::domain::{TenantId, Timestamp};
use herald::ports::{DeviceStore, Saved, WriteError};
use herald_integration_tests::{Stack, unique};

const APNS: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0";
const FCM: &str = "dQw4w9WgXcQ:APA91bH-x_Yz";

fn device(user_id: &str, token: &DeviceToken, endpoint: &str, at: i64) -> DeviceRegistration {
    DeviceRegistration {
        user_id: user_id.to_owned(),
        token: token.clone(),
        endpoint_arn: endpoint.to_owned(),
        created_at: Timestamp::from_millis(at),
        updated_at: Timestamp::from_millis(at),
    }
}

async fn keeps_its_promises(store: &impl DeviceStore) {
    let tenant = TenantId::new(unique("tenant"));
    let other = TenantId::new(unique("other"));
    let apns = DeviceToken::parse(Platform::Apns, APNS).unwrap();
    let fcm = DeviceToken::parse(Platform::Fcm, FCM).unwrap();

    let first = device("u-1", &apns, "arn:endpoint/APNS/app/1", 1_800_000_000_000);
    assert_eq!(store.put_device(&tenant, &first).await.unwrap(), Saved::Created);
    // The app registered again (a new endpoint, say): the same device, its first registration's time kept.
    let again = device("u-1", &apns, "arn:endpoint/APNS/app/2", 1_800_000_060_000);
    assert_eq!(store.put_device(&tenant, &again).await.unwrap(), Saved::Replaced);
    store
        .put_device(
            &tenant,
            &device("u-1", &fcm, "arn:endpoint/GCM/app/3", 1_800_000_000_000),
        )
        .await
        .unwrap();
    store
        .put_device(
            &tenant,
            &device("u-2", &fcm, "arn:endpoint/GCM/app/4", 1_800_000_000_000),
        )
        .await
        .unwrap();
    store
        .put_device(
            &other,
            &device("u-1", &apns, "arn:endpoint/APNS/app/5", 1_800_000_000_000),
        )
        .await
        .unwrap();

    let mut devices = store.devices_of(&tenant, "u-1").await.unwrap();
    devices.sort_by_key(|device| device.endpoint_arn.clone());
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert_eq!(devices[0].token.expose(), APNS.to_ascii_lowercase());
    assert_eq!(devices[0].platform(), Platform::Apns);
    assert_eq!(devices[0].endpoint_arn, "arn:endpoint/APNS/app/2");
    assert_eq!(devices[0].created_at, Timestamp::from_millis(1_800_000_000_000));
    assert_eq!(devices[0].updated_at, Timestamp::from_millis(1_800_000_060_000));
    assert_eq!(
        (devices[1].token.expose(), devices[1].platform()),
        (FCM, Platform::Fcm)
    );
    assert_eq!(store.devices_of(&tenant, "u-2").await.unwrap().len(), 1);
    assert_eq!(store.devices_of(&tenant, "u-3").await.unwrap(), []);
    assert_eq!(
        store.devices_of(&other, "u-1").await.unwrap()[0].endpoint_arn,
        "arn:endpoint/APNS/app/5"
    );

    // The same text as an FCM token: a token is one platform's, so this is a client's mistake.
    let hex_as_fcm = DeviceToken::parse(Platform::Fcm, &APNS.to_ascii_lowercase()).unwrap();
    let refused = store
        .put_device(&tenant, &device("u-1", &hex_as_fcm, "arn:endpoint/GCM/app/6", 1))
        .await;
    assert!(matches!(refused, Err(WriteError::Conflict(_))), "{refused:?}");

    // A send found endpoint 1 disabled, but the app has registered since with endpoint 2: kept.
    assert!(
        !store
            .forget_endpoint(&tenant, "u-1", &apns, "arn:endpoint/APNS/app/1")
            .await
            .unwrap()
    );
    assert!(
        store
            .forget_endpoint(&tenant, "u-1", &apns, "arn:endpoint/APNS/app/2")
            .await
            .unwrap()
    );
    assert!(
        !store
            .forget_endpoint(&tenant, "u-1", &apns, "arn:endpoint/APNS/app/2")
            .await
            .unwrap()
    );
    assert_eq!(store.devices_of(&tenant, "u-1").await.unwrap().len(), 1);

    assert!(store.delete_device(&tenant, "u-1", &fcm).await.unwrap());
    assert!(!store.delete_device(&tenant, "u-1", &fcm).await.unwrap());
    assert_eq!(store.devices_of(&tenant, "u-1").await.unwrap(), []);
    assert_eq!(store.devices_of(&tenant, "u-2").await.unwrap().len(), 1);
    assert_eq!(store.devices_of(&other, "u-1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_config_table_keeps_the_promises() {
    keeps_its_promises(&Stack::new().await.config_store()).await;
}

#[tokio::test]
async fn the_memory_store_keeps_the_same_promises() {
    keeps_its_promises(&MemoryDeviceStore::default()).await;
}
