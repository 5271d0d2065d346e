//! The CPU time each function of the local stack spent in a run, read from `/proc`, and the Lambda memory
//! size that minimises cost × duration given it: a power-tuning argument from measured figures.
//!
//! Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB. An invocation that needs
//! `c` seconds of one core and waits `w` seconds on the network lasts `d(M) = c·1769/M + w` at M MB (below
//! 1,769) and is billed `∝ M·d(M)`. Cost × duration, `M·d(M)²`, has the derivative
//! `(c·1769/M + w)·(w − c·1769/M)`: it is smallest at `M* = 1769·c/w`, where computing takes as long as
//! waiting (between Lambda's least, 128 MB, and one full vCPU). `c` is measured here; `w` is AWS's round trips and the
//! provider's answer, which only AWS can measure, so the report gives `M*` for a range of waits. Near its
//! minimum the product is flat: at half or twice `M*` it is 12.5 % higher.

use super::probe::listening_pid;
use std::collections::BTreeMap;

/// The memory at which Lambda gives a function one full vCPU.
pub const FULL_VCPU_MB: f64 = 1769.0;
/// Lambda's least memory size.
pub const LEAST_MB: f64 = 128.0;
/// Linux reports a process's CPU time in `/proc/<pid>/stat` in these ticks per second (`USER_HZ`, 100 on
/// every architecture Lambda and this benchmark run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user and system) of the local stack's function processes, by function name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionCpu {
    pub seconds: BTreeMap<String, f64>,
}

impl FunctionCpu {
    /// The function processes of the local stack whose front listens on `front_port`: its children that
    /// carry `AWS_LAMBDA_FUNCTION_NAME`. `None` when the stack's process cannot be found (off Linux, or
    /// another user's).
    pub fn sample(front_port: u16) -> Option<Self> {
        let stack = listening_pid(front_port)?;
        let mut seconds = BTreeMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(stat) = std::fs::read_to_string(entry.path().join("stat")).ok() else {
                continue;
            };
            let Some((parent, ticks)) = parent_and_cpu_ticks(&stat) else {
                continue;
            };
            if parent != stack {
                continue;
            }
            let environment = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if let Some(name) = function_name(&environment) {
                // A process's ticks stay far below 2^52.
                #[allow(clippy::cast_precision_loss)]
                let spent = ticks as f64 / TICKS_PER_SECOND;
                *seconds.entry(name).or_insert(0.0) += spent;
            }
        }
        Some(Self { seconds })
    }

    /// What was spent between `earlier` and `self`. A process started since (a restart) counts whole; one
    /// that ended since is lost with its time, which only ever makes the figures smaller.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let seconds = self
            .seconds
            .iter()
            .map(|(name, now)| {
                let before = earlier.seconds.get(name).copied().unwrap_or(0.0);
                (name.clone(), (now - before).max(0.0))
            })
            .collect();
        Self { seconds }
    }
}

/// The parent pid and the user + system CPU ticks in a `/proc/<pid>/stat` line. The command name (field 2)
/// is in parentheses and may hold spaces or parentheses itself, so fields are counted after its last `)`.
fn parent_and_cpu_ticks(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid (4), …, utime (14), stime (15), numbered as in proc(5).
    let parent = fields.get(1)?.parse().ok()?;
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((parent, user + system))
}

/// `AWS_LAMBDA_FUNCTION_NAME` in a NUL-separated environment.
fn function_name(environment: &[u8]) -> Option<String> {
    environment.split(|byte| *byte == 0).find_map(|variable| {
        let value = variable.strip_prefix(b"AWS_LAMBDA_FUNCTION_NAME=")?;
        String::from_utf8(value.to_vec()).ok()
    })
}

/// The memory size in MB that minimises cost × duration for an invocation needing `cpu_seconds` of one
/// core and waiting `wait_seconds` on the network. Never above one full vCPU: Herald's work per
/// invocation is mostly one task's, and a second vCPU would be billed without making it faster.
pub fn best_memory_mb(cpu_seconds: f64, wait_seconds: f64) -> f64 {
    if wait_seconds <= 0.0 {
        return FULL_VCPU_MB;
    }
    (FULL_VCPU_MB * cpu_seconds / wait_seconds).clamp(LEAST_MB, FULL_VCPU_MB)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cost × duration at `memory_mb`, straight from the model (the price per GB-s is a constant factor).
    fn cost_times_duration(memory_mb: f64, cpu: f64, wait: f64) -> f64 {
        let duration = cpu * (FULL_VCPU_MB / memory_mb).max(1.0) + wait;
        memory_mb * duration * duration
    }

    /// The memory size, in whole MB within Lambda's limits, with the least cost × duration: found by trying
    /// every one, so the closed form in the module's doc is checked rather than assumed.
    fn best_by_search(cpu: f64, wait: f64) -> f64 {
        (128..=10_240)
            .map(f64::from)
            .min_by(|a, b| cost_times_duration(*a, cpu, wait).total_cmp(&cost_times_duration(*b, cpu, wait)))
            .unwrap_or(LEAST_MB)
    }

    #[test]
    fn the_best_memory_is_where_computing_takes_as_long_as_waiting() {
        for (cpu, wait) in [(0.010, 0.020), (0.0265, 0.1), (0.0043, 0.03), (0.05, 0.01)] {
            let searched = best_by_search(cpu, wait);
            let closed = best_memory_mb(cpu, wait);
            assert!(
                (searched - closed).abs() <= 1.0,
                "cpu {cpu} wait {wait}: {searched} against {closed}"
            );
        }
    }

    #[test]
    fn a_function_that_mostly_waits_is_best_at_the_smallest_memory() {
        let cpu = 0.002;
        let wait = cpu * FULL_VCPU_MB / LEAST_MB * 1.01;
        assert!((best_by_search(cpu, wait) - LEAST_MB).abs() < f64::EPSILON);
        assert!((best_memory_mb(cpu, wait) - LEAST_MB).abs() < f64::EPSILON);
        assert!(best_by_search(cpu, wait * 0.8) > LEAST_MB);
    }

    #[test]
    fn cpu_ticks_and_parent_are_read_after_the_command_name() {
        let stat = "4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0 99 0 0";
        assert_eq!(parent_and_cpu_ticks(stat), Some((17, 168)));
        assert_eq!(parent_and_cpu_ticks("garbage"), None);
    }

    #[test]
    fn the_function_name_is_found_in_a_process_environment() {
        let environment = b"PATH=/bin\0AWS_LAMBDA_FUNCTION_NAME=EmailFunction\0TZ=:UTC\0";
        assert_eq!(function_name(environment).as_deref(), Some("EmailFunction"));
        assert_eq!(function_name(b"PATH=/bin\0"), None);
    }

    #[test]
    fn time_spent_is_the_difference_and_never_negative() {
        let earlier = FunctionCpu {
            seconds: BTreeMap::from([("a".to_owned(), 1.0), ("b".to_owned(), 5.0)]),
        };
        let now = FunctionCpu {
            seconds: BTreeMap::from([
                ("a".to_owned(), 3.5),
                ("b".to_owned(), 0.5),
                ("c".to_owned(), 2.0),
            ]),
        };
        let spent = now.since(&earlier);
        let spent: Vec<(&str, f64)> = spent.seconds.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(format!("{spent:?}"), r#"[("a", 2.5), ("b", 0.0), ("c", 2.0)]"#);
    }
}
