//! What the template's unit tests share: the real template, parsed for a test stack, and what the
//! emulator would answer for it.

use super::functions::FunctionSpec;
use super::{Provisioned, StackTemplate, TemplateError};

pub(super) const TEMPLATE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));
pub(super) const STACK: &str = "herald-test";

pub(super) fn parse(source: &str, parameters: &[(&str, &str)]) -> Result<StackTemplate, TemplateError> {
    let parameters = parameters
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    StackTemplate::parse(source, "test", STACK, &parameters, "eu-west-1")
}

pub(super) fn real() -> StackTemplate {
    parse(TEMPLATE, &[]).unwrap()
}

pub(super) fn function(template: &StackTemplate, binary: &str) -> FunctionSpec {
    template
        .functions()
        .into_iter()
        .find(|function| function.binary == binary)
        .unwrap()
}

/// What the emulator would answer, with URLs and ARNs unlike the predicted ones.
pub(super) fn fake_provisioned(template: &StackTemplate) -> Provisioned {
    template.unprovisioned("http://localhost:5000")
}
