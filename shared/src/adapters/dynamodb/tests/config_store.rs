//! The config store: rules under their per-event-type limit, template versions.

use super::*;

fn rule_spec() -> RuleSpec {
    RuleSpec {
        event: "user.signup".into(),
        channel: Channel::Email,
        template: "welcome".into(),
        condition: None,
        enabled: true,
    }
}

fn no_item() -> GetItemOutput {
    GetItemOutput::builder().build()
}

#[tokio::test]
async fn put_rule_refuses_an_event_type_at_its_rule_limit() {
    let get = mock!(Client::get_item)
        .match_requests(|request| {
            is_consistent_get(request, &format!("TENANT#{TENANT}"), "RULE#welcome-email")
        })
        .then_output(no_item);
    let transact = mock!(Client::transact_write_items)
        .match_requests(|request| {
            // A new rule: its put, then the increment of the event type's rule count.
            let [rule, count] = request.transact_items() else {
                return false;
            };
            let counted = count.update().is_some_and(|update| {
                update.key().get("sk") == Some(&s("RULECOUNT#user.signup"))
                    && update.condition_expression().is_some()
            });
            rule.put()
                .is_some_and(|put| put.item().get("sk") == Some(&s("RULE#welcome-email")))
                && counted
        })
        .then_error(|| cancelled(vec![reason("None"), reason("ConditionalCheckFailed")]));
    let store = DynamoConfigStore::new(client(RuleMode::Sequential, &[&get, &transact]), TABLE);

    let result = store
        .put_rule(
            &TenantId::new(TENANT),
            "welcome-email",
            &rule_spec(),
            Timestamp::now(),
        )
        .await;

    let Err(WriteError::Invalid(error)) = result else {
        panic!("expected Invalid, got {result:?}")
    };
    assert_eq!(error.pointer, "/event");
    assert!(error.message.contains("user.signup"), "{}", error.message);
    assert_eq!((get.num_calls(), transact.num_calls()), (1, 1));
}

#[tokio::test]
async fn put_rule_answers_conflict_when_it_keeps_losing_the_race() {
    let get = mock!(Client::get_item).then_output(no_item);
    let transact = mock!(Client::transact_write_items)
        .then_error(|| cancelled(vec![reason("ConditionalCheckFailed"), reason("None")]));
    // MatchAny: each rule answers every call of its operation.
    let store = DynamoConfigStore::new(client(RuleMode::MatchAny, &[&get, &transact]), TABLE);

    let result = store
        .put_rule(
            &TenantId::new(TENANT),
            "welcome-email",
            &rule_spec(),
            Timestamp::now(),
        )
        .await;

    assert!(
        matches!(&result, Err(WriteError::Conflict(message)) if message.contains("welcome-email")),
        "{result:?}"
    );
    assert_eq!(
        get.num_calls(),
        WRITE_ATTEMPTS,
        "re-reads the rule before every attempt"
    );
    assert_eq!(transact.num_calls(), WRITE_ATTEMPTS);
}

fn email_template(locale: &str) -> TemplateContent {
    TemplateContent {
        channel: Channel::Email,
        locale: locale.into(),
        subject: Some("Welcome, {{ name }}".into()),
        text: Some("Hello {{ name }}".into()),
        html: None,
        blocks: None,
        title: None,
        data: None,
    }
}

fn template_head(channel: &str, live: &[(&str, u32)]) -> Item {
    let live = live
        .iter()
        .map(|(locale, version)| ((*locale).to_owned(), n(*version)))
        .collect::<HashMap<_, _>>();
    item([
        ("pk", s(format!("TENANT#{TENANT}"))),
        ("sk", s("TPL#welcome")),
        ("name", s("welcome")),
        ("channel", s(channel)),
        ("default_locale", s("en")),
        ("live", AttributeValue::M(live)),
        ("created_at", n(1_790_000_000_000_i64)),
        ("updated_at", n(1_790_000_000_000_i64)),
    ])
}

#[tokio::test]
async fn put_template_refuses_a_name_taken_by_another_channel() {
    let get = mock!(Client::get_item)
        .match_requests(|request| is_consistent_get(request, &format!("TENANT#{TENANT}"), "TPL#welcome"))
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(template_head("sms", &[("en", 1)])))
                .build()
        });
    let transact =
        mock!(Client::transact_write_items).then_output(|| TransactWriteItemsOutput::builder().build());
    let store = DynamoConfigStore::new(client(RuleMode::MatchAny, &[&get, &transact]), TABLE);

    let result = store
        .put_template(
            &TenantId::new(TENANT),
            "welcome",
            &email_template("en"),
            Timestamp::now(),
        )
        .await;

    assert!(
        matches!(&result, Err(WriteError::Conflict(message)) if message.contains("sms")),
        "{result:?}"
    );
    assert_eq!(get.num_calls(), 1);
    assert_eq!(transact.num_calls(), 0, "nothing is written");
}

#[tokio::test]
async fn put_template_moves_the_live_version_only_from_the_one_it_read() {
    let get = mock!(Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .set_item(Some(template_head("email", &[("en", 3)])))
            .build()
    });
    let transact = mock!(Client::transact_write_items)
        .match_requests(|request| {
            let [head, version] = request.transact_items() else {
                return false;
            };
            let head_moves_from_3_to_4 = head.update().is_some_and(|update| {
                let values = update.expression_attribute_values();
                values.and_then(|values| values.get(":current")) == Some(&n(3))
                    && values.and_then(|values| values.get(":version")) == Some(&n(4))
            });
            let version_4_is_new = version.put().is_some_and(|put| {
                put.item().get("sk") == Some(&s("TPLV#welcome#en#0000000004"))
                    && put.condition_expression() == Some("attribute_not_exists(pk)")
            });
            head_moves_from_3_to_4 && version_4_is_new
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let store = DynamoConfigStore::new(client(RuleMode::Sequential, &[&get, &transact]), TABLE);
    let now = Timestamp::now();

    let saved = store
        .put_template(&TenantId::new(TENANT), "welcome", &email_template("en"), now)
        .await
        .unwrap();

    assert_eq!(
        (saved.name.as_str(), saved.version, saved.created_at),
        ("welcome", 4, now)
    );
    assert_eq!(saved.content, email_template("en"));
    assert_eq!((get.num_calls(), transact.num_calls()), (1, 1));
}
