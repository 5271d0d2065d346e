//! What every function reports about itself: JSON logs ([`logs`]), and metrics, written to stdout as
//! CloudWatch Embedded Metric Format lines at the end of each invocation.
//!
//! The shared code emits metrics through [`record`]; [`catalogue`] names each metric, its unit and its
//! dimensions (docs/operations.md lists them).

pub mod catalogue;
mod emf;
mod logs;
pub mod record;

pub use catalogue::Function;
pub use emf::{Flushed, flush, flush_into, flushing, install};

use crate::config::{ConfigError, Env};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not install the metrics recorder: {0}")]
    Recorder(String),
}

/// The metrics' settings (`HERALD_METRICS_NAMESPACE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The CloudWatch namespace of every metric: one per stack (`Herald/<stack>`), so two stacks in one
    /// account never add up into each other's alarms.
    pub namespace: String,
}

impl MetricsSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        const NAME: &str = "HERALD_METRICS_NAMESPACE";
        let namespace = env.required(NAME)?;
        let invalid = |reason| ConfigError::Invalid {
            name: NAME,
            value: namespace.clone(),
            reason,
        };
        if namespace.len() > 255 {
            return Err(invalid("a CloudWatch namespace is at most 255 characters"));
        }
        if namespace.starts_with("AWS/") {
            return Err(invalid("namespaces starting with AWS/ are AWS's own"));
        }
        if !namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c))
        {
            return Err(invalid(
                "a CloudWatch namespace holds letters, digits and . - _ / # : and spaces only",
            ));
        }
        Ok(Self { namespace })
    }
}

/// Installs the logs' subscriber and the metrics' recorder, and counts this cold start of `function`.
/// Then serve the handler through [`flushing`], so each invocation writes its metrics.
pub fn init(function: Function) -> Result<(), TelemetryError> {
    logs::init();
    let settings = MetricsSettings::from_env(&Env::process())?;
    install(&settings.namespace).map_err(TelemetryError::Recorder)?;
    record::cold_start(function);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn namespace(value: Option<&str>) -> Result<MetricsSettings, ConfigError> {
        let value = value.map(str::to_owned);
        MetricsSettings::from_env(&Env::from_fn(move |_| value.clone()))
    }

    #[test]
    fn the_namespace_is_required_and_must_be_one_cloudwatch_takes() {
        assert_eq!(
            namespace(None),
            Err(ConfigError::Missing("HERALD_METRICS_NAMESPACE"))
        );
        assert_eq!(
            namespace(Some("Herald/herald-prod")).unwrap().namespace,
            "Herald/herald-prod"
        );
        for wrong in ["AWS/Lambda", "Herald/{stack}", &"x".repeat(256)] {
            assert!(namespace(Some(wrong)).is_err(), "{wrong}");
        }
    }
}
