//! Evaluation of the intrinsic functions the template uses, for one resource at a time: `Ref`, `Fn::Sub`,
//! `Fn::GetAtt`, `Fn::If`, `Fn::Not` and `Fn::Equals`, against the parameters, conditions and resources
//! in [`Symbols`] and the names, URLs and ARNs in [`Provisioned`].

use super::resources::Resource;
use super::{Kind, Provisioned, Symbols, TemplateError, invalid};
use serde_json::{Map, Value as Json};

const SUPPORTED_INTRINSICS: [&str; 6] = ["Ref", "Fn::Sub", "Fn::GetAtt", "Fn::If", "Fn::Not", "Fn::Equals"];

/// Evaluates expressions of one resource.
pub(super) struct Scope<'a> {
    pub(super) symbols: &'a Symbols,
    pub(super) provisioned: &'a Provisioned,
    /// The logical id errors name.
    pub(super) resource: &'a str,
}

impl Scope<'_> {
    /// The value of `value`, or `None` for `AWS::NoValue` (dropped from mappings and lists).
    pub(super) fn eval(&self, value: &Json, path: &str) -> Result<Option<Json>, TemplateError> {
        match value {
            Json::Object(map) => {
                if let Some((name, argument)) = as_intrinsic(map) {
                    return self.intrinsic(name, argument, path);
                }
                let mut evaluated = Map::new();
                for (key, value) in map {
                    if let Some(value) = self.eval(value, &join(path, key))? {
                        evaluated.insert(key.clone(), value);
                    }
                }
                Ok(Some(Json::Object(evaluated)))
            }
            Json::Array(items) => {
                let mut evaluated = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    evaluated.extend(self.eval(item, &format!("{path}[{index}]"))?);
                }
                Ok(Some(Json::Array(evaluated)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    /// The value of `value`, which must not be `AWS::NoValue`.
    pub(super) fn required(&self, value: &Json, path: &str) -> Result<Json, TemplateError> {
        self.eval(value, path)?
            .ok_or_else(|| self.invalid(path, "AWS::NoValue is not allowed here"))
    }

    /// The value of `value` as a string (a number is written out).
    pub(super) fn string(&self, value: &Json, path: &str) -> Result<String, TemplateError> {
        scalar_string(&self.required(value, path)?).ok_or_else(|| self.invalid(path, "must be a string"))
    }

    /// The resource's Properties, evaluated.
    pub(super) fn properties(&self, resource: &Resource<'_>) -> Result<Map<String, Json>, TemplateError> {
        match resource.properties() {
            None => Ok(Map::new()),
            Some(properties) => match self.required(properties, "Properties")? {
                Json::Object(properties) => Ok(properties),
                _ => Err(self.invalid("Properties", "must be a mapping")),
            },
        }
    }

    fn invalid(&self, path: &str, reason: &str) -> TemplateError {
        invalid(self.resource, path, reason)
    }

    fn intrinsic(&self, name: &str, argument: &Json, path: &str) -> Result<Option<Json>, TemplateError> {
        let path = &join(path, name);
        match name {
            "Ref" => {
                let target = argument
                    .as_str()
                    .ok_or_else(|| self.invalid(path, "Ref takes the name of a parameter or resource"))?;
                self.reference(target, path)
            }
            "Fn::GetAtt" => {
                let (target, attribute) = match argument {
                    Json::Array(parts) => match parts.as_slice() {
                        [Json::String(target), Json::String(attribute)] => {
                            (target.as_str(), attribute.as_str())
                        }
                        _ => return Err(self.invalid(path, "Fn::GetAtt takes [resource, attribute]")),
                    },
                    Json::String(dotted) => dotted
                        .split_once('.')
                        .ok_or_else(|| self.invalid(path, "Fn::GetAtt takes resource.attribute"))?,
                    _ => return Err(self.invalid(path, "Fn::GetAtt takes [resource, attribute]")),
                };
                self.attribute(target, attribute, path)
                    .map(|value| Some(Json::String(value)))
            }
            "Fn::Sub" => self
                .substitute(argument, path)
                .map(|text| Some(Json::String(text))),
            "Fn::If" => {
                let Some([Json::String(condition), when_true, when_false]) =
                    argument.as_array().map(Vec::as_slice)
                else {
                    return Err(self.invalid(path, "Fn::If takes [condition, value if true, value if false]"));
                };
                let chosen = if self.condition(condition, path)? {
                    when_true
                } else {
                    when_false
                };
                self.eval(chosen, path)
            }
            "Fn::Not" => {
                let Some([operand]) = argument.as_array().map(Vec::as_slice) else {
                    return Err(self.invalid(path, "Fn::Not takes [condition]"));
                };
                match self.required(operand, path)? {
                    Json::Bool(holds) => Ok(Some(Json::Bool(!holds))),
                    _ => Err(self.invalid(path, "Fn::Not takes a condition (Fn::Equals or Fn::Not)")),
                }
            }
            "Fn::Equals" => {
                let Some([left, right]) = argument.as_array().map(Vec::as_slice) else {
                    return Err(self.invalid(path, "Fn::Equals takes [value, value]"));
                };
                let (left, right) = (self.required(left, path)?, self.required(right, path)?);
                let equal = match (scalar_string(&left), scalar_string(&right)) {
                    (Some(left), Some(right)) => left == right,
                    _ => left == right,
                };
                Ok(Some(Json::Bool(equal)))
            }
            other => Err(TemplateError::UnsupportedIntrinsic {
                intrinsic: other.to_owned(),
                resource: self.resource.to_owned(),
                path: path.clone(),
            }),
        }
    }

    fn condition(&self, name: &str, path: &str) -> Result<bool, TemplateError> {
        self.symbols
            .conditions
            .get(name)
            .copied()
            .ok_or_else(|| self.invalid(path, &format!("no condition named {name}")))
    }

    /// `Ref target`: a pseudo parameter, a parameter, a table's name, a queue's URL, a topic's ARN or a
    /// configuration set's name.
    fn reference(&self, target: &str, path: &str) -> Result<Option<Json>, TemplateError> {
        let symbols = self.symbols;
        let pseudo = &symbols.pseudo;
        let value = match target {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => pseudo.region.clone(),
            "AWS::AccountId" => pseudo.account_id.clone(),
            "AWS::StackName" => symbols.stack_name.clone(),
            "AWS::Partition" => pseudo.partition.to_owned(),
            "AWS::URLSuffix" => pseudo.url_suffix.to_owned(),
            _ if target.starts_with("AWS::") => {
                return Err(self.invalid(
                    path,
                    &format!("pseudo parameter {target} is not supported locally"),
                ));
            }
            _ => {
                if let Some(value) = symbols.parameters.get(target) {
                    value.clone()
                } else {
                    let provisioned = match symbols.resources.get(target) {
                        Some(Kind::Table { .. }) => self.provisioned.table_names.get(target),
                        Some(Kind::Queue { .. }) => self.provisioned.queue_urls.get(target),
                        Some(Kind::Topic { .. }) => self.provisioned.topic_arns.get(target),
                        Some(Kind::Named { name }) => Some(name),
                        Some(Kind::Other { resource_type }) => {
                            return Err(self.invalid(
                                path,
                                &format!("Ref of {target} ({resource_type}) has no value locally"),
                            ));
                        }
                        None => {
                            return Err(self.invalid(
                                path,
                                &format!("Ref names {target}, which is neither a parameter nor a resource"),
                            ));
                        }
                    };
                    provisioned
                        .cloned()
                        .ok_or_else(|| self.not_provisioned(target, path))?
                }
            }
        };
        Ok(Some(Json::String(value)))
    }

    /// `Fn::GetAtt target.attribute`: a queue's Arn, QueueUrl or QueueName, a table's Arn, a topic's
    /// TopicArn or TopicName.
    fn attribute(&self, target: &str, attribute: &str, path: &str) -> Result<String, TemplateError> {
        let pseudo = &self.symbols.pseudo;
        let value = match (self.symbols.resources.get(target), attribute) {
            (Some(Kind::Queue { .. }), "Arn") => self.provisioned.queue_arns.get(target).cloned(),
            (Some(Kind::Queue { .. }), "QueueUrl") => self.provisioned.queue_urls.get(target).cloned(),
            (Some(Kind::Queue { name }), "QueueName") | (Some(Kind::Topic { name }), "TopicName") => {
                Some(name.clone())
            }
            (Some(Kind::Topic { .. }), "TopicArn") => self.provisioned.topic_arns.get(target).cloned(),
            (Some(Kind::Table { .. }), "Arn") => self.provisioned.table_names.get(target).map(|name| {
                format!(
                    "arn:{}:dynamodb:{}:{}:table/{name}",
                    pseudo.partition, pseudo.region, pseudo.account_id
                )
            }),
            (Some(_), _) => {
                return Err(self.invalid(
                    path,
                    &format!("Fn::GetAtt {target}.{attribute} is not supported locally"),
                ));
            }
            (None, _) => {
                return Err(self.invalid(
                    path,
                    &format!("Fn::GetAtt names {target}, which is not a resource"),
                ));
            }
        };
        value.ok_or_else(|| self.not_provisioned(target, path))
    }

    /// `Fn::Sub text` or `Fn::Sub [text, {variables}]`: `${Name}`, `${Resource.Attribute}`, `${!Literal}`.
    fn substitute(&self, argument: &Json, path: &str) -> Result<String, TemplateError> {
        let (text, variables) = match argument {
            Json::String(text) => (text.as_str(), None),
            Json::Array(parts) => match parts.as_slice() {
                [Json::String(text), Json::Object(variables)] => (text.as_str(), Some(variables)),
                _ => return Err(self.invalid(path, "Fn::Sub takes a string or [string, {variables}]")),
            },
            _ => return Err(self.invalid(path, "Fn::Sub takes a string or [string, {variables}]")),
        };
        let mut result = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            result.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| self.invalid(path, "an unclosed ${ in Fn::Sub"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                result.push_str("${");
                result.push_str(literal);
                result.push('}');
            } else {
                result.push_str(&self.variable(name.trim(), variables, path)?);
            }
            rest = &after[end + 1..];
        }
        result.push_str(rest);
        Ok(result)
    }

    fn variable(
        &self,
        name: &str,
        variables: Option<&Map<String, Json>>,
        path: &str,
    ) -> Result<String, TemplateError> {
        let value = if let Some(expression) = variables.and_then(|variables| variables.get(name)) {
            self.eval(expression, path)?
        } else if let (Some((target, attribute)), false) = (name.split_once('.'), name.starts_with("AWS::")) {
            Some(Json::String(self.attribute(target, attribute, path)?))
        } else {
            self.reference(name, path)?
        };
        value
            .as_ref()
            .and_then(scalar_string)
            .ok_or_else(|| self.invalid(path, &format!("${{{name}}} does not come to a string")))
    }

    fn not_provisioned(&self, target: &str, path: &str) -> TemplateError {
        self.invalid(path, &format!("{target} is used before it is created"))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `(name, argument)` when `map` is an intrinsic function: one key, `Ref` or `Fn::*`.
pub(super) fn as_intrinsic(map: &Map<String, Json>) -> Option<(&str, &Json)> {
    if map.len() != 1 {
        return None;
    }
    let (name, argument) = map.iter().next()?;
    (name == "Ref" || name.starts_with("Fn::")).then_some((name.as_str(), argument))
}

/// Fails on the first intrinsic function that is not evaluated here.
pub(super) fn check_intrinsics(value: &Json, resource: &str, path: &str) -> Result<(), TemplateError> {
    match value {
        Json::Object(map) => {
            if let Some((name, _)) = as_intrinsic(map) {
                if !SUPPORTED_INTRINSICS.contains(&name) {
                    return Err(TemplateError::UnsupportedIntrinsic {
                        intrinsic: name.to_owned(),
                        resource: resource.to_owned(),
                        path: path.to_owned(),
                    });
                }
            }
            map.iter()
                .try_for_each(|(key, value)| check_intrinsics(value, resource, &join(path, key)))
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(index, item)| check_intrinsics(item, resource, &format!("{path}[{index}]"))),
        _ => Ok(()),
    }
}

/// A scalar written out as CloudFormation does (numbers and booleans as text).
pub(super) fn scalar_string(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        Json::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

pub(super) fn truthy(value: Option<&Json>) -> bool {
    match value {
        Some(Json::Bool(flag)) => *flag,
        Some(Json::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A whole number, written as a number or as text (a `Ref` of a Number parameter is text).
pub(super) fn integer(value: &Json, resource: &str, path: &str) -> Result<i64, TemplateError> {
    match value {
        Json::Number(number) => number.as_i64(),
        Json::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(resource, path, "must be a whole number"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{STACK, fake_provisioned, function, parse, real};
    use super::super::{ACCOUNT_ID, DEFAULT_MAXIMUM_CONCURRENCY, HttpRoute, Provisioned, TemplateError};

    #[test]
    fn an_unknown_intrinsic_fails_naming_the_intrinsic_and_the_resource() {
        let short = "
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Select [0, [a, b]]
";
        let long = "
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Environment:
        Variables:
          TABLE: { 'Fn::ImportValue': shared-table }
";
        for (source, intrinsic, resource) in
            [(short, "Fn::Select", "Jobs"), (long, "Fn::ImportValue", "Worker")]
        {
            let error = parse(source, &[]).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(&error, TemplateError::UnsupportedIntrinsic { intrinsic: i, resource: r, .. }
                    if i == intrinsic && r == resource),
                "{message}"
            );
            assert!(
                message.contains(intrinsic) && message.contains(resource),
                "{message}"
            );
        }
    }

    #[test]
    fn sub_handles_variables_literals_attributes_and_pseudo_parameters() {
        let source = r"
Resources:
  Jobs: { Type: AWS::SQS::Queue }
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Timeout: 7
      Environment:
        Variables:
          WHERE: !Sub '${AWS::Region}/${AWS::AccountId}/${AWS::Partition}/${AWS::URLSuffix}/${AWS::StackName}'
          ARN: !Sub '${Jobs.Arn}|${!Literal}|${Name}'
          NAME: !GetAtt Jobs.QueueName
          LIST_FORM: { 'Fn::Sub': ['${Greeting}, ${Who}', { Greeting: hello, Who: !Ref Jobs }] }
          SAME: !Equals [a, a]
      Events:
        Work: { Type: SQS, Properties: { Queue: { 'Fn::GetAtt': [Jobs, Arn] } } }
        Root: { Type: HttpApi }
Parameters:
  Name: { Type: String, Default: x }
";
        let template = parse(source, &[]).unwrap();
        let worker = function(&template, "worker");
        assert_eq!((worker.timeout_seconds, worker.memory_mb), (7, 128));
        assert_eq!(
            worker.http_routes,
            [HttpRoute {
                method: "ANY".into(),
                path: "$default".into()
            }]
        );
        assert_eq!(worker.sqs_events[0].queue, "Jobs");
        assert_eq!(worker.sqs_events[0].batch_size, 10);
        assert_eq!(
            worker.sqs_events[0].maximum_concurrency,
            DEFAULT_MAXIMUM_CONCURRENCY
        );
        assert!(!worker.sqs_events[0].report_batch_item_failures);
        let queue = &template.queues()[0];
        assert_eq!(queue.name, format!("{STACK}-Jobs"));
        let environment = template
            .environment(&worker, &fake_provisioned(&template))
            .unwrap();
        assert_eq!(
            environment["WHERE"],
            format!("eu-west-1/{ACCOUNT_ID}/aws/amazonaws.com/{STACK}")
        );
        assert_eq!(
            environment["ARN"],
            format!("arn:aws:sqs:us-east-1:123456789012:{STACK}-Jobs|${{Literal}}|x")
        );
        assert_eq!(environment["NAME"], format!("{STACK}-Jobs"));
        assert_eq!(
            environment["LIST_FORM"],
            format!("hello, http://localhost:5000/123456789012/{STACK}-Jobs")
        );
        assert_eq!(environment["SAME"], "true");
    }

    #[test]
    fn references_to_unknown_or_unprovisioned_resources_fail() {
        let source = "
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Environment: { Variables: { QUEUE: !Ref Missing } }
";
        let error = parse(source, &[]).unwrap_err();
        assert!(error.to_string().contains("Missing"), "{error}");
        let template = real();
        let error = template
            .environment(&function(&template, "email"), &Provisioned::default())
            .unwrap_err();
        assert!(error.to_string().contains("EmailFunction"), "{error}");
    }
}
