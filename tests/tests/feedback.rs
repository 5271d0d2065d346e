//! SES feedback end to end on the emulator (decisions 31, 32): an email sent through the email delivery path
//! (the SES sender, through the stack's configuration set, against the emulator's SES), then what SES event
//! publishing would say about it, published to the template's feedback topic, carried by SNS to the feedback
//! queue through the template's subscription, and handed from there to the feedback handler as Lambda hands
//! a batch. The emulator's SES publishes no events itself, so the event is built as `herald local feedback`
//! builds it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use herald::domain::notification::{Notification, NotificationStatus};
use herald::domain::provider_feedback::FeedbackKind;
use herald::domain::suppression::{Suppression, SuppressionReason};
use herald::domain::{Channel, NotificationId, Timestamp};
use herald::feedback::FeedbackHandler;
use herald::ports::{DeliveryLedger, SuppressionList};
use herald_cli::local::feedback::{SentEmail, ses_event};
use herald_integration_tests::delivery_fixture::{accept, notification_id};
use herald_integration_tests::poller::sqs_event;
use herald_integration_tests::{Stack, order_created};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

/// A stack of the test's own that emailed its order_created event to a fresh address, and the notification.
async fn a_stack_that_emailed() -> (Stack, Notification) {
    let stack = Stack::new().await;
    stack.seed_order_created().await;
    let sent = emailed(&stack).await;
    (stack, sent)
}

/// The stack's order_created event emailed, through the email delivery loop, to a fresh address: the
/// notification as recorded.
async fn emailed(stack: &Stack) -> Notification {
    let mut event = order_created(444);
    event["channels"] = json!(["email"]);
    let accepted = accept(stack, &event).await;
    let id = NotificationId::parse(&notification_id(&accepted, Channel::Email)).unwrap();
    let email = stack
        .template
        .functions()
        .into_iter()
        .find(|f| f.binary == "email")
        .unwrap();
    let configuration_set = stack
        .template
        .environment(&email, &stack.provisioned)
        .unwrap()
        .remove("HERALD_SES_CONFIGURATION_SET");
    assert!(
        configuration_set.is_some(),
        "the template gives the email function one"
    );
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let sender = stack.email_sender_through(&endpoint, configuration_set).await;
    let delivery = stack.delivery(sender);
    assert_eq!(
        stack.poll(Channel::Email, 5, |e| delivery.handle(e)).await.failed,
        Vec::<String>::new()
    );
    let sent = recorded(stack, &id).await;
    assert_eq!(sent.status, NotificationStatus::Sent, "{sent:?}");
    sent
}

async fn recorded(stack: &Stack, id: &NotificationId) -> Notification {
    stack
        .activity_store()
        .notification_with_attempts(&stack.tenant, id)
        .await
        .unwrap()
        .unwrap()
        .0
}

/// What SES would publish about `notification`, sent with the email function's settings.
fn ses_says(stack: &Stack, kind: &FeedbackKind, notification: &Notification) -> Value {
    let email = stack
        .template
        .functions()
        .into_iter()
        .find(|f| f.binary == "email")
        .unwrap();
    let environment = stack.template.environment(&email, &stack.provisioned).unwrap();
    ses_event(
        kind,
        &SentEmail {
            tenant: &notification.tenant,
            notification_id: &notification.id,
            to: notification.to.as_deref().unwrap(),
            message_id: notification.provider_message_id.as_deref().unwrap(),
            sent_at: notification.sent_at.unwrap(),
            from: &environment["HERALD_EMAIL_FROM"],
            configuration_set: environment
                .get("HERALD_SES_CONFIGURATION_SET")
                .map(String::as_str),
        },
        Timestamp::now(),
    )
}

/// Publishes `event` to the feedback topic as SES does, then hands what arrives on the feedback queue to the
/// feedback handler and deletes what it did not return.
async fn feed(stack: &Stack, event: &Value) {
    let sns = aws_sdk_sns::Client::new(&herald_integration_tests::emulator_config().await);
    sns.publish()
        .topic_arn(&stack.provisioned.topic_arns["FeedbackTopic"])
        .subject("Amazon SES Email Event Notification")
        .message(event.to_string())
        .send()
        .await
        .unwrap();
    let queue = &stack.provisioned.queue_urls["FeedbackQueue"];
    let messages = stack
        .sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(messages.len(), 1, "SNS delivered the event to the feedback queue");
    // Raw message delivery: the queue holds SES's event itself.
    let body: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(&body, event);
    let handler = FeedbackHandler::new(stack.config_store(), stack.activity_store());
    let response = handler
        .handle(LambdaEvent::new(sqs_event(&messages), Context::default()))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    stack
        .sqs
        .delete_message()
        .queue_url(queue)
        .receipt_handle(messages[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
}

async fn suppression(stack: &Stack, address: &str) -> Option<Suppression> {
    stack
        .config_store()
        .suppression(&stack.tenant, address)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_permanent_bounce_marks_its_notification_bounced_suppresses_the_address_once_and_holds_back_the_next()
 {
    let (stack, sent) = a_stack_that_emailed().await;
    let address = sent.to.clone().unwrap();
    let bounce = ses_says(&stack, &FeedbackKind::Bounce { permanent: true }, &sent);

    feed(&stack, &bounce).await;

    let bounced = recorded(&stack, &sent.id).await;
    assert_eq!(
        (bounced.status, bounced.reason.as_deref()),
        (NotificationStatus::Bounced, Some("permanent_bounce"))
    );
    assert_eq!(
        bounced.detail.as_deref(),
        Some("Permanent: General: smtp; 550 5.1.1 user unknown")
    );
    let suppressed = suppression(&stack, &address).await.expect("on the list");
    assert_eq!(
        (suppressed.reason, suppressed.notification_id.as_ref()),
        (SuppressionReason::Bounce, Some(&sent.id))
    );

    // SNS and SQS deliver at least once: the same event again changes nothing, not even a timestamp.
    feed(&stack, &bounce).await;
    assert_eq!(recorded(&stack, &sent.id).await, bounced);
    assert_eq!(suppression(&stack, &address).await, Some(suppressed));

    // The next email to the address is held back at ingest, never queued.
    let mut next = order_created(445);
    next["channels"] = json!(["email"]);
    next["recipient"]["email"] = json!(address);
    let accepted = accept(&stack, &next).await;
    let held = &accepted.body["notifications"][0];
    assert_eq!(
        (held["status"].as_str(), held["reason"].as_str()),
        (Some("suppressed"), Some("address_suppressed")),
        "{held}"
    );
    assert!(stack.drain(Channel::Email).await.is_empty());
}

#[tokio::test]
async fn a_complaint_marks_its_notification_complained_and_suppresses_the_address() {
    let (stack, sent) = a_stack_that_emailed().await;

    feed(&stack, &ses_says(&stack, &FeedbackKind::Complaint, &sent)).await;

    let complained = recorded(&stack, &sent.id).await;
    assert_eq!(
        (complained.status, complained.detail.as_deref()),
        (NotificationStatus::Complained, Some("complaint: abuse"))
    );
    let suppressed = suppression(&stack, sent.to.as_deref().unwrap()).await.unwrap();
    assert_eq!(suppressed.reason, SuppressionReason::Complaint);
}

#[tokio::test]
async fn a_delivery_marks_its_notification_delivered_and_suppresses_nothing() {
    let (stack, sent) = a_stack_that_emailed().await;

    feed(&stack, &ses_says(&stack, &FeedbackKind::Delivery, &sent)).await;

    let delivered = recorded(&stack, &sent.id).await;
    assert_eq!(
        (delivered.status, delivered.detail.as_deref()),
        (NotificationStatus::Delivered, Some("250 2.6.0 Message received"))
    );
    assert_eq!(delivered.reason, None, "a delivery has no reason");
    assert_eq!(suppression(&stack, sent.to.as_deref().unwrap()).await, None);
}
