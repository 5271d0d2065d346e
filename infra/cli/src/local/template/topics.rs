//! The template's SNS topics, and their subscriptions that deliver to its queues. The emulator's SNS hands a
//! published message to its SQS in the same process, so a message published to a topic lands on every queue
//! subscribed to it, as on AWS.

use super::intrinsics::{Scope, truthy};
use super::resources::{Resource, check_properties, queue_by_arn};
use super::{Kind, Provisioned, TemplateError, invalid};
use serde_json::Value as Json;

pub(super) const TOPIC: &str = "AWS::SNS::Topic";
pub(super) const SUBSCRIPTION: &str = "AWS::SNS::Subscription";

/// Topic properties read here, then those that change nothing locally. Any other (`FifoTopic`, an inline
/// `Subscription`, ...) fails the load.
const TOPIC_PROPERTIES: [&str; 6] = [
    "TopicName",
    "DisplayName",
    "KmsMasterKeyId",
    "SignatureVersion",
    "TracingConfig",
    "Tags",
];

/// Subscription properties read here, then `DeliveryPolicy` (HTTP retries, nothing to SQS). A
/// `FilterPolicy` would change what arrives, so it fails the load rather than being ignored.
const SUBSCRIPTION_PROPERTIES: [&str; 5] = [
    "TopicArn",
    "Protocol",
    "Endpoint",
    "RawMessageDelivery",
    "DeliveryPolicy",
];

/// An SNS topic of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub logical_id: String,
    /// `TopicName` if the template sets one, else `<stack>-<LogicalId>` (on AWS, a generated name).
    pub name: String,
}

/// A subscription of a queue of the template to a topic of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    pub logical_id: String,
    /// The logical id of the topic.
    pub topic: String,
    /// The logical id of the queue.
    pub queue: String,
    /// The queue receives the published message itself, not SNS's JSON envelope around it.
    pub raw_message_delivery: bool,
}

pub(super) fn topic_spec(scope: &Scope<'_>, resource: &Resource<'_>) -> Result<TopicSpec, TemplateError> {
    let id = resource.logical_id;
    check_properties(id, "", &scope.properties(resource)?, &TOPIC_PROPERTIES)?;
    let Some(Kind::Topic { name }) = scope.symbols.resources.get(id) else {
        return Err(invalid(id, "", "is not a topic"));
    };
    Ok(TopicSpec {
        logical_id: id.to_owned(),
        name: name.clone(),
    })
}

/// The subscription, or `None` when it is not to a queue: an email, HTTP or SMS subscription has nowhere
/// to deliver locally (an email one would wait for a confirmation nobody can give).
pub(super) fn subscription_spec(
    scope: &Scope<'_>,
    resource: &Resource<'_>,
    predicted: &Provisioned,
) -> Result<Option<SubscriptionSpec>, TemplateError> {
    let id = resource.logical_id;
    let properties = scope.properties(resource)?;
    check_properties(id, "", &properties, &SUBSCRIPTION_PROPERTIES)?;
    let text = |name: &str| {
        properties
            .get(name)
            .and_then(Json::as_str)
            .ok_or_else(|| invalid(id, &format!("Properties.{name}"), "must be a string"))
    };
    if text("Protocol")? != "sqs" {
        return Ok(None);
    }
    let topic_arn = text("TopicArn")?;
    let topic = predicted
        .topic_arns
        .iter()
        .find(|(_, arn)| arn.as_str() == topic_arn)
        .map(|(topic, _)| topic.clone())
        .ok_or_else(|| {
            invalid(
                id,
                "Properties.TopicArn",
                &format!("{topic_arn} is not a topic of this template"),
            )
        })?;
    Ok(Some(SubscriptionSpec {
        logical_id: id.to_owned(),
        topic,
        queue: queue_by_arn(predicted, text("Endpoint")?, id, "Properties.Endpoint")?,
        raw_message_delivery: truthy(properties.get("RawMessageDelivery")),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{STACK, fake_provisioned, function, parse, real};
    use super::*;

    #[test]
    fn the_feedback_queue_receives_the_feedback_topic_raw() {
        let template = real();
        assert_eq!(
            template.topics(),
            [
                TopicSpec {
                    logical_id: "FeedbackTopic".into(),
                    name: format!("{STACK}-FeedbackTopic")
                },
                TopicSpec {
                    logical_id: "AlarmTopic".into(),
                    name: format!("{STACK}-AlarmTopic")
                },
            ]
        );
        assert_eq!(
            template.subscriptions(),
            [SubscriptionSpec {
                logical_id: "FeedbackSubscription".into(),
                topic: "FeedbackTopic".into(),
                queue: "FeedbackQueue".into(),
                raw_message_delivery: true,
            }]
        );
    }

    #[test]
    fn the_email_function_sends_through_the_stacks_configuration_set_or_the_one_given() {
        let configuration_set = |parameters: &[(&str, &str)]| {
            let template = parse(super::super::testing::TEMPLATE, parameters).unwrap();
            let provisioned = fake_provisioned(&template);
            template
                .environment(&function(&template, "email"), &provisioned)
                .unwrap()
                .remove("HERALD_SES_CONFIGURATION_SET")
        };
        assert_eq!(
            configuration_set(&[]).as_deref(),
            Some(format!("{STACK}-EmailConfigurationSet").as_str())
        );
        assert_eq!(
            configuration_set(&[("ConfigurationSetName", "dedicated")]).as_deref(),
            Some("dedicated")
        );
    }

    #[test]
    fn topics_are_referenced_by_arn_and_only_queue_subscriptions_are_kept() {
        let source = "
Resources:
  News: { Type: AWS::SNS::Topic, Properties: { TopicName: news, DisplayName: News } }
  Inbox: { Type: AWS::SQS::Queue }
  ToInbox: { Type: AWS::SNS::Subscription, Properties: { TopicArn: !Ref News, Protocol: sqs, Endpoint: !GetAtt Inbox.Arn } }
  ToPerson: { Type: AWS::SNS::Subscription, Properties: { TopicArn: !Ref News, Protocol: email, Endpoint: a@example.com } }
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Environment: { Variables: { TOPIC: !Ref News, NAME: !GetAtt News.TopicName } }
";
        let template = parse(source, &[]).unwrap();
        assert_eq!(
            template.subscriptions(),
            [SubscriptionSpec {
                logical_id: "ToInbox".into(),
                topic: "News".into(),
                queue: "Inbox".into(),
                raw_message_delivery: false,
            }]
        );
        let environment = template
            .environment(&function(&template, "worker"), &fake_provisioned(&template))
            .unwrap();
        assert_eq!(environment["TOPIC"], "arn:aws:sns:us-east-1:123456789012:news");
        assert_eq!(environment["NAME"], "news");

        for refused in [
            "Resources:\n  T: { Type: AWS::SNS::Topic, Properties: { FifoTopic: true } }\n",
            "Resources:\n  T: { Type: AWS::SNS::Topic }\n  Q: { Type: AWS::SQS::Queue }\n  S: { Type: AWS::SNS::Subscription, Properties: { TopicArn: !Ref T, Protocol: sqs, Endpoint: !GetAtt Q.Arn, FilterPolicy: {} } }\n",
            "Resources:\n  Q: { Type: AWS::SQS::Queue }\n  S: { Type: AWS::SNS::Subscription, Properties: { TopicArn: 'arn:aws:sns:eu-west-1:1:elsewhere', Protocol: sqs, Endpoint: !GetAtt Q.Arn } }\n",
        ] {
            assert!(parse(refused, &[]).is_err(), "{refused}");
        }
    }
}
