//! What a run's AWS requests would cost on AWS, per million events, beside the floor Herald's design
//! implies: from the requests and items the emulator counted, at list prices. An estimate, and says what
//! it assumes: every item at most 1 KB to write and 4 KB to read (the benchmark's events are small), reads
//! strongly consistent (Herald's are), and no free tier.

// Counts of one run, far below 2^52: exact as f64.
#![allow(clippy::cast_precision_loss)]

use super::probe::RequestCount;

/// US East (N. Virginia) list prices in US dollars, as published when this was written: DynamoDB
/// on-demand, SQS standard queues, API Gateway HTTP APIs. Lambda is not here: its duration on the local
/// runtime says nothing of AWS's (docs/benchmarks.md estimates it from the function benchmarks).
pub const WRITE_REQUEST_UNIT: f64 = 0.625 / 1e6;
pub const READ_REQUEST_UNIT: f64 = 0.125 / 1e6;
pub const SQS_REQUEST: f64 = 0.40 / 1e6;
pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
/// Messages Lambda's event source takes in one receive, and deletes in one request.
const BATCH_SIZE: f64 = 10.0;

/// Per event, in request units or requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerEvent {
    pub write_units: f64,
    pub read_units: f64,
    pub sqs_requests: f64,
    pub api_requests: f64,
}

impl PerEvent {
    /// US dollars per million events.
    pub fn dollars_per_million(&self) -> f64 {
        1e6 * (self.write_units * WRITE_REQUEST_UNIT
            + self.read_units * READ_REQUEST_UNIT
            + self.sqs_requests * SQS_REQUEST
            + self.api_requests * HTTP_API_REQUEST)
    }

    /// The design's minimum for an event with an idempotency key fanned out to `channels` notifications:
    /// one transaction (the event, its notifications and its key, two units each); per notification a
    /// claim (one unit), a settle transaction (the notification and its attempt, two units each) and a read
    /// of the event; one SQS send per channel, and a receive and a delete per batch; one HTTP request.
    pub fn floor(channels: u32) -> Self {
        let channels = f64::from(channels);
        Self {
            write_units: 2.0 * (channels + 2.0) + channels * (1.0 + 2.0 * 2.0),
            read_units: channels,
            sqs_requests: channels + 2.0 * channels / BATCH_SIZE,
            api_requests: 1.0,
        }
    }

    /// What `requests` (a run of `events` events, `http_requests` HTTP posts with retries) came to.
    pub fn measured(requests: &RequestCount, events: usize, http_requests: usize) -> Self {
        let events = events.max(1) as f64;
        let mut per_event = Self {
            api_requests: http_requests as f64 / events,
            ..Self::default()
        };
        for (operation, cost) in &requests.by_operation {
            let (requests, items) = (cost.requests as f64, cost.items as f64);
            match operation.split_once('.') {
                Some(("dynamodb", action)) => match action {
                    "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" => {
                        per_event.write_units += items / events;
                    }
                    "TransactWriteItems" => per_event.write_units += 2.0 * items / events,
                    "GetItem" | "BatchGetItem" => per_event.read_units += items / events,
                    "TransactGetItems" => per_event.read_units += 2.0 * items / events,
                    // At least one unit each; Herald's queries read a handful of small items.
                    "Query" | "Scan" => per_event.read_units += requests / events,
                    _ => {}
                },
                // Most queue-depth reads are the benchmark's own, waiting for the queues to drain.
                Some(("sqs", "GetQueueAttributes")) => {}
                Some(("sqs", _)) => per_event.sqs_requests += requests / events,
                _ => {}
            }
        }
        per_event
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::bench::probe::OperationCost;
    use std::collections::BTreeMap;

    fn counted(operations: &[(&str, u64, u64)]) -> RequestCount {
        let by_operation: BTreeMap<String, OperationCost> = operations
            .iter()
            .map(|(operation, requests, items)| {
                let cost = OperationCost {
                    requests: *requests,
                    items: *items,
                    cpu_seconds: 0.0,
                };
                ((*operation).to_owned(), cost)
            })
            .collect();
        RequestCount {
            by_operation,
            ..RequestCount::default()
        }
    }

    #[test]
    fn the_floor_of_three_channels() {
        let floor = PerEvent::floor(3);
        // 5 items × 2 at ingest; per notification 1 + 2 × 2.
        assert!((floor.write_units - 25.0).abs() < 1e-9, "{floor:?}");
        assert!((floor.read_units - 3.0).abs() < 1e-9);
        assert!((floor.sqs_requests - 3.6).abs() < 1e-9);
        // 25 × 0.625 + 3 × 0.125 + 3.6 × 0.40 + 1.00 dollars per million.
        assert!((floor.dollars_per_million() - 18.44).abs() < 1e-6, "{floor:?}");
    }

    #[test]
    fn a_run_that_makes_exactly_the_minimum_costs_the_floor() {
        // 10 events × 3 notifications, as the design would make them.
        let requests = counted(&[
            ("dynamodb.TransactWriteItems", 10 + 30, 50 + 60),
            ("dynamodb.UpdateItem", 30, 30),
            ("dynamodb.GetItem", 30, 30),
            ("sqs.SendMessageBatch", 30, 30),
            ("sqs.ReceiveMessage", 3, 3),
            ("sqs.DeleteMessageBatch", 3, 3),
            ("sqs.GetQueueAttributes", 50, 50),
            ("sns.Publish", 10, 10),
            ("dynamodb.DescribeTable", 2, 2),
        ]);
        let measured = PerEvent::measured(&requests, 10, 10);
        assert_eq!(measured, PerEvent::floor(3));
    }
}
