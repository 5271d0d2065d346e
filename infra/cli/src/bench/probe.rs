//! The running local stack as the benchmark sees it from outside: its three URLs, the emulator's process
//! (for its memory) and the emulator's own capacity, measured with plain conditional puts.

use super::BenchError;
use crate::local::emulator;
use crate::local::up::{Ports, local_template};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use futures::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Requests served by the emulator, and the CPU time they took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCount {
    pub all: u64,
    pub dynamodb: u64,
    /// Per operation (`dynamodb.UpdateItem`): requests, and CPU seconds inside moto's handler.
    pub by_operation: BTreeMap<String, OperationCost>,
    /// The emulator processes' CPU seconds, HTTP serving included.
    pub process_cpu_seconds: f64,
    /// Of which DynamoDB's process (the local stack gives DynamoDB one of its own).
    pub dynamodb_process_cpu_seconds: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OperationCost {
    pub requests: u64,
    /// Items the requests touched (DynamoDB bills capacity per item); the requests for other services.
    pub items: u64,
    pub cpu_seconds: f64,
}

impl RequestCount {
    /// What was served between `earlier` and `self`.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let by_operation = self
            .by_operation
            .iter()
            .map(|(operation, now)| {
                let before = earlier.by_operation.get(operation).copied().unwrap_or_default();
                let cost = OperationCost {
                    requests: now.requests.saturating_sub(before.requests),
                    items: now.items.saturating_sub(before.items),
                    cpu_seconds: (now.cpu_seconds - before.cpu_seconds).max(0.0),
                };
                (operation.clone(), cost)
            })
            .filter(|(_, cost)| cost.requests > 0)
            .collect();
        Self {
            all: self.all.saturating_sub(earlier.all),
            dynamodb: self.dynamodb.saturating_sub(earlier.dynamodb),
            by_operation,
            process_cpu_seconds: (self.process_cpu_seconds - earlier.process_cpu_seconds).max(0.0),
            dynamodb_process_cpu_seconds: (self.dynamodb_process_cpu_seconds
                - earlier.dynamodb_process_cpu_seconds)
                .max(0.0),
        }
    }

    /// Two processes' counts as one (their operations are disjoint unless they are one process).
    #[must_use]
    fn plus(mut self, other: &Self) -> Self {
        for (operation, cost) in &other.by_operation {
            let mine = self.by_operation.entry(operation.clone()).or_default();
            mine.requests += cost.requests;
            mine.items += cost.items;
            mine.cpu_seconds += cost.cpu_seconds;
        }
        self.all += other.all;
        self.dynamodb += other.dynamodb;
        self.process_cpu_seconds += other.process_cpu_seconds;
        self.dynamodb_process_cpu_seconds += other.dynamodb_process_cpu_seconds;
        self
    }

    /// From the emulator's `/moto-api/herald/requests` answer.
    fn from_counters(counters: &Value) -> Option<Self> {
        let cpu = &counters["cpu_seconds_by_operation"];
        let items = &counters["items_by_operation"];
        let by_operation = counters["by_operation"]
            .as_object()?
            .iter()
            .map(|(operation, requests)| {
                let requests = requests.as_u64().unwrap_or(0);
                let cost = OperationCost {
                    requests,
                    items: items[operation].as_u64().unwrap_or(requests),
                    cpu_seconds: cpu[operation].as_f64().unwrap_or(0.0),
                };
                (operation.clone(), cost)
            })
            .collect();
        Some(Self {
            all: counters["all"].as_u64()?,
            dynamodb: counters["dynamodb"].as_u64()?,
            by_operation,
            process_cpu_seconds: counters["process_cpu_seconds"].as_f64().unwrap_or(0.0),
            dynamodb_process_cpu_seconds: 0.0,
        })
    }
}

/// The local stack under test.
#[derive(Debug)]
pub struct Stack {
    pub api: String,
    pub emulator: String,
    pub sink: String,
    /// The Slack sink's full record (a JSON line per captured message).
    pub sink_log: PathBuf,
    pub http: reqwest::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    /// The URLs of the queues the channel functions consume.
    channel_queues: Vec<String>,
    /// DynamoDB's emulator process first, then the other services' (one port when they are one process).
    emulator_ports: Vec<u16>,
    /// Where `herald local up` itself listens: its function processes are its children.
    pub front_port: u16,
}

impl Stack {
    /// Finds the stack on the ports `herald local up` uses, failing clearly when any part does not answer.
    pub async fn connect(ports: Ports) -> Result<Self, BenchError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|error| BenchError::Setup {
                what: "building the HTTP client".into(),
                detail: error.to_string(),
            })?;
        let api = format!("http://127.0.0.1:{}", ports.front);
        let endpoints = ports.endpoints();
        let emulator = endpoints.aws.clone();
        let sink = format!("http://127.0.0.1:{}", ports.sink);
        get_json(&http, &format!("{api}/v1/health")).await?;
        let sink_info = get_json(&http, &format!("{sink}/")).await?;
        let sink_log =
            sink_info["log_file"]
                .as_str()
                .map(PathBuf::from)
                .ok_or_else(|| BenchError::NoStack {
                    url: sink.clone(),
                    detail: "the Slack sink did not say where its record is".into(),
                })?;
        let aws = emulator::sdk_config(&endpoints).await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let channel_queues = channel_queue_urls(&sqs).await?;
        Ok(Self {
            api,
            emulator,
            sink,
            sink_log,
            http,
            dynamodb: aws_sdk_dynamodb::Client::new(&aws),
            sqs,
            channel_queues,
            emulator_ports: vec![ports.dynamodb, ports.emulator],
            front_port: ports.front,
        })
    }

    /// Messages on the channel queues, visible, in flight (a retry waiting out its backoff included) or
    /// delayed. Zero means every notification has settled: a function deletes its message only once the
    /// outcome is recorded, and a message that ran out of receives is in its DLQ.
    pub async fn messages_in_channel_queues(&self) -> Result<u64, BenchError> {
        let mut total = 0;
        for url in &self.channel_queues {
            let attributes = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .send()
                .await
                .map_err(|e| BenchError::Setup {
                    what: format!("reading the depth of {url}"),
                    detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                })?;
            total += attributes
                .attributes()
                .into_iter()
                .flat_map(|map| map.values())
                .filter_map(|count| count.parse::<u64>().ok())
                .sum::<u64>();
        }
        Ok(total)
    }

    /// The emulator processes' resident memory together, in bytes, when it can be found (Linux: through
    /// `/proc`).
    pub fn emulator_memory(&self) -> Option<u64> {
        self.emulator_ports.iter().map(|&port| process_memory(port)).sum()
    }

    /// Requests the emulator processes have served so far, all and DynamoDB's, when their launcher counts
    /// them.
    pub async fn emulator_requests(&self) -> Option<RequestCount> {
        let mut total: Option<RequestCount> = None;
        for (index, port) in self.emulator_ports.iter().enumerate() {
            let url = format!("{}/moto-api/herald/requests", emulator::endpoint(*port));
            let mut counts = RequestCount::from_counters(&get_json(&self.http, &url).await.ok()?)?;
            if index == 0 {
                counts.dynamodb_process_cpu_seconds = counts.process_cpu_seconds;
            }
            total = Some(match total {
                None => counts,
                Some(sum) => sum.plus(&counts),
            });
        }
        total
    }

    /// Conditional puts per second the emulator serves on a table of its own at `concurrency`: the
    /// cheapest useful DynamoDB write, so the ceiling for anything built on the emulator.
    pub async fn raw_put_rate(&self, run: &str, puts: usize, concurrency: usize) -> Result<f64, BenchError> {
        let table = format!("herald-bench-raw-{run}");
        let failed = |error: &dyn std::fmt::Display| BenchError::RawPuts(error.to_string());
        self.dynamodb
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| failed(&e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| failed(&e))?,
            )
            .send()
            .await
            .map_err(|e| failed(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        let started = Instant::now();
        let outcomes: Vec<Result<(), String>> = futures::stream::iter(0..puts)
            .map(|n| {
                let request = self
                    .dynamodb
                    .put_item()
                    .table_name(&table)
                    .item("pk", AttributeValue::S(format!("item-{n}")))
                    .item("payload", AttributeValue::S("x".repeat(200)))
                    .condition_expression("attribute_not_exists(pk)");
                async move {
                    request
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let elapsed = started.elapsed();
        let _ = self.dynamodb.delete_table().table_name(&table).send().await;
        if let Some(Err(error)) = outcomes.into_iter().find(Result::is_err) {
            return Err(BenchError::RawPuts(error));
        }
        // A few thousand puts: exact as f64.
        #[allow(clippy::cast_precision_loss)]
        Ok(puts as f64 / elapsed.as_secs_f64())
    }
}

/// The queues the template's functions consume (the channel queues), as the local stack named them.
async fn channel_queue_urls(sqs: &aws_sdk_sqs::Client) -> Result<Vec<String>, BenchError> {
    let template = local_template(&emulator::project_root().map_err(crate::local::LocalError::from)?)?;
    let queues = template.queues();
    let mut urls = Vec::new();
    for event in template.functions().iter().flat_map(|f| f.sqs_events.clone()) {
        let Some(queue) = queues.iter().find(|q| q.logical_id == event.queue) else {
            continue;
        };
        let url = sqs
            .get_queue_url()
            .queue_name(&queue.name)
            .send()
            .await
            .map_err(|e| BenchError::Setup {
                what: format!("finding queue {} (is the local stack up?)", queue.name),
                detail: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            })?;
        urls.extend(url.queue_url);
    }
    Ok(urls)
}

/// `GET url` as JSON; anything but a 2xx JSON answer means the stack is not there.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, BenchError> {
    let not_there = |detail: String| BenchError::NoStack {
        url: url.to_owned(),
        detail,
    };
    let response = http.get(url).send().await.map_err(|e| not_there(e.to_string()))?;
    if !response.status().is_success() {
        return Err(not_there(format!("status {}", response.status())));
    }
    response.json().await.map_err(|e| not_there(e.to_string()))
}

/// The resident memory of the process listening on `port`, in bytes.
fn process_memory(port: u16) -> Option<u64> {
    let pid = listening_pid(port)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The process listening on 127.0.0.1:`port`, found through `/proc` (the socket's inode, then the process
/// holding it). `None` off Linux, or when this user may not see it.
pub fn listening_pid(port: u16) -> Option<u32> {
    let wanted = format!(":{port:04X}");
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(table).ok()?;
        text.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, ..., st (0A is LISTEN), ..., inode
            let listening = fields.get(3) == Some(&"0A");
            (listening && fields.get(1)?.ends_with(&wanted))
                .then(|| fields.get(9).map(|s| (*s).to_owned()))?
        })
    })?;
    let socket = format!("socket:[{inode}]");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let holds = std::fs::read_dir(entry.path().join("fd"))
            .ok()?
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == socket.as_str())
            });
        holds.then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(operation: &str, requests: u64, cpu_seconds: f64) -> RequestCount {
        let cost = OperationCost {
            requests,
            items: requests,
            cpu_seconds,
        };
        RequestCount {
            all: requests,
            dynamodb: if operation.starts_with("dynamodb.") {
                requests
            } else {
                0
            },
            by_operation: BTreeMap::from([(operation.to_owned(), cost)]),
            process_cpu_seconds: cpu_seconds * 2.0,
            dynamodb_process_cpu_seconds: 0.0,
        }
    }

    #[test]
    fn two_processes_add_up_as_one() {
        let mut dynamodb = counted("dynamodb.UpdateItem", 10, 0.5);
        dynamodb.dynamodb_process_cpu_seconds = dynamodb.process_cpu_seconds;
        let mut both = dynamodb.plus(&counted("sqs.SendMessageBatch", 4, 0.25));
        both = both.plus(&counted("dynamodb.UpdateItem", 1, 0.5));
        assert_eq!(both.all, 15);
        assert_eq!(both.dynamodb, 11);
        assert_eq!(both.by_operation["dynamodb.UpdateItem"].requests, 11);
        assert_eq!(both.by_operation["sqs.SendMessageBatch"].requests, 4);
        assert!((both.process_cpu_seconds - 2.5).abs() < 1e-9);
        assert!((both.dynamodb_process_cpu_seconds - 1.0).abs() < 1e-9);
    }
}
