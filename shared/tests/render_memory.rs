//! The template sandbox holds memory, measured: the peak heap of rendering each hostile template.
//!
//! One test in its own binary, with a global allocator that records the peak, so no other test's
//! allocations are counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use herald::domain::template::TemplateContent;
use herald::domain::template::sandbox::BUILD_BUDGET_BYTES;
use peak_alloc::PeakAlloc;
use serde_json::json;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

#[path = "../src/domain/template/hostile.rs"]
mod hostile;

/// The build budget, plus room for what fuel allows of small values, the output and transients: a small
/// part of a 256 MB function, where each of these templates, unbounded, takes 100 MB to many GB.
const BOUND: usize = BUILD_BUDGET_BYTES + 16 * 1024 * 1024;

#[test]
fn no_hostile_template_takes_more_than_the_budget_and_a_little() {
    let event =
        json!({"payload": {"n": 100_000_000, "name": "Ada"}, "recipient": {}, "event": {"name": "x"}});
    let mut worst = (0, "");
    for source in hostile::HOSTILE {
        let base = PEAK.current_usage();
        PEAK.reset_peak_usage();
        let content =
            TemplateContent::from_json(&json!({"channel": "email", "subject": "s", "text": source}));
        let rendered = content.map(|content| content.render(&event));
        let peak = PEAK.peak_usage().saturating_sub(base);
        assert!(
            !matches!(rendered, Ok(Ok(_))),
            "{source} rendered; it must be stopped"
        );
        assert!(
            peak <= BOUND,
            "{source} took {peak} bytes at its peak; the bound is {BOUND}"
        );
        worst = worst.max((peak, source));
    }
    eprintln!(
        "the worst hostile template peaked at {} bytes: {}",
        worst.0, worst.1
    );
}
