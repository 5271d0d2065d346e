//! `template.yaml` as YAML, for the tests that check the template's own invariants (not its evaluation,
//! which `herald_cli::local::template` does).

use serde_norway::Value;

/// The template, parsed; short-form intrinsics (`!Ref`, `!Sub`, …) stay tagged values.
pub fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).expect("read template.yaml"))
        .expect("template.yaml is YAML")
}

/// The resources of one type, by logical id.
pub fn resources<'t>(template: &'t Value, kind: &str) -> Vec<(&'t str, &'t Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .filter_map(|(id, resource)| Some((id.as_str()?, resource)))
        .collect()
}

/// A value, or the logical id a `!Ref` / `!GetAtt X.Arn` names.
pub fn reference(value: &Value) -> String {
    match value {
        Value::Tagged(tagged) => tagged
            .value
            .as_str()
            .unwrap_or_default()
            .trim_end_matches(".Arn")
            .to_owned(),
        other => other.as_str().map_or_else(|| format!("{other:?}"), str::to_owned),
    }
}

/// An intrinsic as `(tag, its string argument)`: `!GetAtt EmailQueue.QueueName` is
/// `("!GetAtt", "EmailQueue.QueueName")`; a plain string is `("", it)`.
pub fn intrinsic(value: &Value) -> Option<(String, &str)> {
    match value {
        Value::Tagged(tagged) => Some((tagged.tag.to_string(), tagged.value.as_str()?)),
        Value::String(plain) => Some((String::new(), plain)),
        _ => None,
    }
}
