//! The template's Parameters (overrides, defaults and their constraints) and Conditions.

use super::intrinsics::{Scope, scalar_string};
use super::{Provisioned, Symbols, TemplateError, invalid};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// Each parameter's value: the override, else its Default; checked against AllowedValues, MinValue,
/// MaxValue, MinLength and MaxLength.
pub(super) fn resolve_parameters(
    declared: &Map<String, Json>,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let fail = |name: &str, reason: String| TemplateError::Parameter {
        name: name.to_owned(),
        reason,
    };
    if let Some(unknown) = overrides.keys().find(|name| !declared.contains_key(*name)) {
        return Err(fail(
            unknown,
            "the template declares no such parameter".to_owned(),
        ));
    }
    let mut values = BTreeMap::new();
    for (name, declaration) in declared {
        let parameter_type = declaration.get("Type").and_then(Json::as_str).unwrap_or("String");
        if !matches!(parameter_type, "String" | "Number") {
            return Err(fail(
                name,
                format!("type {parameter_type} is not supported locally"),
            ));
        }
        let value = match overrides.get(name) {
            Some(value) => value.clone(),
            None => declaration
                .get("Default")
                .and_then(scalar_string)
                .ok_or_else(|| fail(name, "has no Default, so it needs a value".to_owned()))?,
        };
        if let Some(allowed) = declaration.get("AllowedValues").and_then(Json::as_array) {
            if !allowed
                .iter()
                .filter_map(scalar_string)
                .any(|candidate| candidate == value)
            {
                return Err(fail(name, format!("{value:?} is not one of its AllowedValues")));
            }
        }
        let bound = |key: &str| {
            declaration
                .get(key)
                .and_then(scalar_string)
                .and_then(|b| b.parse::<f64>().ok())
        };
        if parameter_type == "Number" {
            let number: f64 = value
                .trim()
                .parse()
                .map_err(|_| fail(name, format!("{value:?} is not a number")))?;
            if bound("MinValue").is_some_and(|min| number < min)
                || bound("MaxValue").is_some_and(|max| number > max)
            {
                return Err(fail(name, format!("{value} is outside its MinValue..MaxValue")));
            }
        } else {
            #[allow(clippy::cast_precision_loss)]
            let length = value.chars().count() as f64;
            if bound("MinLength").is_some_and(|min| length < min)
                || bound("MaxLength").is_some_and(|max| length > max)
            {
                return Err(fail(
                    name,
                    format!("{value:?} is outside its MinLength..MaxLength"),
                ));
            }
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

pub(super) fn evaluate_conditions(
    symbols: &Symbols,
    conditions: &Map<String, Json>,
) -> Result<BTreeMap<String, bool>, TemplateError> {
    let nothing = Provisioned::default();
    let scope = Scope {
        symbols,
        provisioned: &nothing,
        resource: "Conditions",
    };
    conditions
        .iter()
        .map(|(name, expression)| match scope.eval(expression, name)? {
            Some(Json::Bool(holds)) => Ok((name.clone(), holds)),
            _ => Err(invalid(
                "Conditions",
                name,
                "a condition must come to true or false",
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::TemplateError;
    use super::super::testing::{TEMPLATE, fake_provisioned, function, parse};

    #[test]
    fn parameters_override_defaults_and_conditions_follow() {
        let template = parse(
            TEMPLATE,
            &[
                ("ConfigurationSetName", "herald-events"),
                ("MaxReceiveCount", "6"),
                ("RetrySchedule", "1s,2s"),
                ("SenderAddress", "me@example.org"),
            ],
        )
        .unwrap();
        let provisioned = fake_provisioned(&template);
        let environment = template
            .environment(&function(&template, "email"), &provisioned)
            .unwrap();
        assert_eq!(environment["HERALD_SES_CONFIGURATION_SET"], "herald-events");
        assert_eq!(environment["HERALD_RETRY_SCHEDULE"], "1s,2s");
        assert_eq!(environment["HERALD_EMAIL_FROM"], "me@example.org");
        assert!(
            template
                .queues()
                .iter()
                .filter_map(|q| q.redrive.as_ref())
                .all(|r| r.max_receive_count == 6)
        );
        let ingest = template
            .environment(&function(&template, "ingest"), &provisioned)
            .unwrap();
        assert_eq!(ingest["HERALD_SMS_QUEUE_URL"], provisioned.queue_urls["SmsQueue"]);
    }

    #[test]
    fn each_channel_gets_its_send_rate_and_the_concurrency_that_shares_it() {
        let environment = |parameters: &[(&str, &str)], binary: &str| {
            let template = parse(TEMPLATE, parameters).unwrap();
            let provisioned = fake_provisioned(&template);
            let function = function(&template, binary);
            let concurrency = function.sqs_events[0].maximum_concurrency.to_string();
            let environment = template.environment(&function, &provisioned).unwrap();
            (
                environment["HERALD_SEND_RATE_PER_SECOND"].clone(),
                environment["HERALD_MAX_CONCURRENCY"].clone(),
                concurrency,
            )
        };
        for binary in ["email", "sms", "slack", "webhook", "push"] {
            assert_eq!(
                environment(&[], binary),
                ("0".into(), "5".into(), "5".into()),
                "{binary}"
            );
        }
        let overrides = [("SlackSendRate", "5"), ("DeliveryConcurrency", "3")];
        assert_eq!(
            environment(&overrides, "slack"),
            ("5".into(), "3".into(), "3".into())
        );
        assert_eq!(
            environment(&overrides, "email"),
            ("0".into(), "3".into(), "3".into())
        );
        assert_eq!(
            environment(&[("EmailSendRate", "14"), ("SmsSendRate", "20")], "email").0,
            "14"
        );
        assert_eq!(environment(&[("SmsSendRate", "20")], "sms").0, "20");
        assert!(parse(TEMPLATE, &[("SlackSendRate", "-1")]).is_err());
    }

    #[test]
    fn bad_parameters_are_refused() {
        for (name, value) in [
            ("MaxReceiveCount", "2"),
            ("MaxReceiveCount", "many"),
            ("Architecture", "sparc"),
            ("NoSuchParameter", "x"),
        ] {
            let error = parse(TEMPLATE, &[(name, value)]).unwrap_err();
            assert!(
                matches!(&error, TemplateError::Parameter { name: n, .. } if n == name),
                "{error}"
            );
        }
    }
}
