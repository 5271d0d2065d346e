//! The template's YAML, read as JSON with CloudFormation's short-form tags in their long forms.

use super::{TemplateError, invalid};
use serde_json::{Map, Value as Json};

/// Parses `source` (named `origin` in errors) into the template as JSON.
pub(super) fn read(source: &str, origin: &str) -> Result<Json, TemplateError> {
    let yaml: serde_norway::Value = serde_norway::from_str(source).map_err(|source| TemplateError::Yaml {
        origin: origin.to_owned(),
        source,
    })?;
    to_json(yaml).map_err(|reason| invalid("the template", "", &reason))
}

/// The YAML document as JSON, short-form tags turned into their long forms: `!Ref X` into
/// `{"Ref": "X"}`, `!GetAtt A.B` into `{"Fn::GetAtt": ["A", "B"]}`, any other `!Name x` into
/// `{"Fn::Name": x}`.
fn to_json(value: serde_norway::Value) -> Result<Json, String> {
    use serde_norway::Value as Yaml;
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(flag) => Json::Bool(flag),
        Yaml::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Json::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Json::from(integer)
            } else {
                number
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
                    .ok_or_else(|| format!("the number {number} cannot be used"))?
            }
        }
        Yaml::String(text) => Json::String(text),
        Yaml::Sequence(items) => Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Yaml::String(key) => key,
                    Yaml::Number(key) => key.to_string(),
                    Yaml::Bool(key) => key.to_string(),
                    other => return Err(format!("a mapping key must be a string, not {other:?}")),
                };
                map.insert(key, to_json(value)?);
            }
            Json::Object(map)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let argument = to_json(tagged.value)?;
            let (name, argument) = match tag.trim_start_matches('!') {
                "Ref" => ("Ref".to_owned(), argument),
                "GetAtt" => {
                    let argument = match argument {
                        Json::String(dotted) => match dotted.split_once('.') {
                            Some((target, attribute)) => Json::from(vec![target, attribute]),
                            None => Json::String(dotted),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), argument)
                }
                other => (format!("Fn::{other}"), argument),
            };
            Json::Object(Map::from_iter([(name, argument)]))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::read;
    use serde_json::json;

    #[test]
    fn short_form_tags_become_their_long_forms() {
        let source = "
ref: !Ref Name
get_att: !GetAtt Jobs.Arn
sub: !Sub '${AWS::StackName}-jobs'
if: !If [IsProd, 1, 2]
long: { 'Fn::GetAtt': [Jobs, Arn] }
";
        assert_eq!(
            read(source, "test").unwrap(),
            json!({
                "ref": {"Ref": "Name"},
                "get_att": {"Fn::GetAtt": ["Jobs", "Arn"]},
                "sub": {"Fn::Sub": "${AWS::StackName}-jobs"},
                "if": {"Fn::If": ["IsProd", 1, 2]},
                "long": {"Fn::GetAtt": ["Jobs", "Arn"]},
            })
        );
        assert!(
            matches!(read("a: [", "broken.yaml"), Err(super::TemplateError::Yaml { origin, .. }) if origin == "broken.yaml")
        );
    }
}
