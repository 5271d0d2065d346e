//! `herald dlq redrive`: dead-lettered messages back to their queue. Whole queues go by SQS's own
//! `StartMessageMoveTask` where the endpoint has it; chosen notifications, and endpoints without it (the
//! local emulator), by receive → send → delete, in that order, so a crash between the two leaves a copy in
//! both queues (harmless: the delivery loop claims before it sends) and never loses one.

use super::{DeadLettered, DlqError, Options, Target, about, pace};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Messages per second when `--rate` is not given: well inside every provider's default quota.
const DEFAULT_RATE: u32 = 10;
/// How long a received message stays ours while it is being moved.
const HOLD_SECONDS: i32 = 60;

pub(super) async fn run(target: &Target, options: &Options) -> Result<(), DlqError> {
    let rate = options.rate.unwrap_or(DEFAULT_RATE);
    let mut total = 0;
    for queue in target.chosen(options)? {
        let dlq = &queue.dlq;
        let dlq_url = target.url(dlq).await?;
        let queue_url = target.url(&queue.queue).await?;
        let moved = if options.ids.is_empty() {
            match move_task(target, &dlq_url, &queue_url, rate).await {
                Ok(moved) => moved,
                Err(why) => {
                    eprintln!(
                        "{dlq}: StartMessageMoveTask is not available here ({why}); moving messages one by one"
                    );
                    one_by_one(target, &queue, &dlq_url, &queue_url, rate, None).await?
                }
            }
        } else {
            let ids: HashSet<&str> = options.ids.iter().map(String::as_str).collect();
            one_by_one(target, &queue, &dlq_url, &queue_url, rate, Some(&ids)).await?
        };
        println!("{dlq}: {moved} message(s) back on {}", queue.queue);
        total += moved;
    }
    println!("redriven: {total}");
    Ok(())
}

/// An SDK error in a few words: its code, else its HTTP status, else what went wrong.
fn brief<E>(error: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    match error {
        aws_sdk_sqs::error::SdkError::ServiceError(context) => context.err().code().map_or_else(
            || format!("HTTP {}", context.raw().status().as_u16()),
            str::to_owned,
        ),
        other => other.to_string(),
    }
}

async fn arn(target: &Target, url: &str) -> Result<String, String> {
    let output = target
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| brief(&error))?;
    output
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| "no QueueArn".to_owned())
}

/// SQS moves the whole DLQ itself; this follows its progress until it is done.
async fn move_task(target: &Target, dlq_url: &str, queue_url: &str, rate: u32) -> Result<u64, String> {
    let source = arn(target, dlq_url).await?;
    let destination = arn(target, queue_url).await?;
    target
        .sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .max_number_of_messages_per_second(i32::try_from(rate).unwrap_or(i32::MAX))
        .send()
        .await
        .map_err(|error| brief(&error))?;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let tasks = target
            .sqs
            .list_message_move_tasks()
            .source_arn(&source)
            .max_results(1)
            .send()
            .await
            .map_err(|error| brief(&error))?;
        let Some(task) = tasks.results.unwrap_or_default().into_iter().next() else {
            return Err("the move task disappeared".to_owned());
        };
        let moved = u64::try_from(task.approximate_number_of_messages_moved).unwrap_or(0);
        match task.status.as_deref() {
            Some("RUNNING" | "CANCELLING") => eprintln!("  {moved} moved so far"),
            Some("COMPLETED") => return Ok(moved),
            other => {
                return Err(format!(
                    "the move task ended {}: {}",
                    other.unwrap_or("?"),
                    task.failure_reason.unwrap_or_default()
                ));
            }
        }
    }
}

/// Receive → send → delete, `rate` messages a second at most; with `only`, just the messages of those
/// notifications (the others are made visible again at once).
async fn one_by_one(
    target: &Target,
    queue: &DeadLettered,
    dlq_url: &str,
    queue_url: &str,
    rate: u32,
    only: Option<&HashSet<&str>>,
) -> Result<u64, DlqError> {
    let started = Instant::now();
    let mut moved = 0u64;
    let mut seen: HashSet<String> = HashSet::new();
    let mut passed_over: Vec<Message> = Vec::new();
    loop {
        let received = target
            .sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD_SECONDS)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|error| DlqError::sqs(dlq_url, error))?
            .messages
            .unwrap_or_default();
        // Done when the queue is empty, or only gives back what was already passed over.
        let fresh: Vec<Message> = received
            .into_iter()
            .filter(|message| seen.insert(message.message_id().unwrap_or_default().to_owned()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let (wanted, others): (Vec<Message>, Vec<Message>) = fresh
            .into_iter()
            .partition(|message| only.is_none_or(|ids| ids.contains(notification_id(message).as_str())));
        passed_over.extend(others);
        moved += move_batch(target, dlq_url, queue_url, &wanted).await?;
        eprint!("\r  {}: {moved} moved", queue.name);
        pace(started, moved, rate).await;
    }
    if moved > 0 {
        eprintln!();
    }
    release(target, dlq_url, &passed_over).await?;
    Ok(moved)
}

fn notification_id(message: &Message) -> String {
    about(message.body().unwrap_or_default())
        .map(|(_, id, _)| id.to_string())
        .unwrap_or_default()
}

/// Sends `messages` to their queue, then deletes from the DLQ those that were sent.
async fn move_batch(
    target: &Target,
    dlq_url: &str,
    queue_url: &str,
    messages: &[Message],
) -> Result<u64, DlqError> {
    if messages.is_empty() {
        return Ok(0);
    }
    let entries = messages
        .iter()
        .enumerate()
        .map(|(index, message)| {
            SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(message.body().unwrap_or_default())
                .build()
                .map_err(|error| DlqError::sqs(queue_url, error))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sent = target
        .sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|error| DlqError::sqs(queue_url, error))?;
    for failed in &sent.failed {
        eprintln!(
            "\n  not moved ({}): {}; it stays in the DLQ",
            failed.code,
            failed.message.as_deref().unwrap_or("")
        );
    }
    let deletes = sent
        .successful
        .iter()
        .filter_map(|ok| {
            let message = messages.get(ok.id.parse::<usize>().ok()?)?;
            DeleteMessageBatchRequestEntry::builder()
                .id(&ok.id)
                .receipt_handle(message.receipt_handle()?)
                .build()
                .ok()
        })
        .collect::<Vec<_>>();
    let count = u64::try_from(deletes.len()).unwrap_or(0);
    if !deletes.is_empty() {
        target
            .sqs
            .delete_message_batch()
            .queue_url(dlq_url)
            .set_entries(Some(deletes))
            .send()
            .await
            .map_err(|error| DlqError::sqs(dlq_url, error))?;
    }
    Ok(count)
}

/// Makes messages that were received but not chosen visible again at once.
async fn release(target: &Target, dlq_url: &str, messages: &[Message]) -> Result<(), DlqError> {
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(index, message)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(message.receipt_handle()?)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        target
            .sqs
            .change_message_visibility_batch()
            .queue_url(dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| DlqError::sqs(dlq_url, error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput;
    use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput;
    use aws_sdk_sqs::operation::list_message_move_tasks::ListMessageMoveTasksOutput;
    use aws_sdk_sqs::operation::start_message_move_task::StartMessageMoveTaskOutput;
    use aws_sdk_sqs::types::ListMessageMoveTasksResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    const DLQ_ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:herald-slack-dlq";
    const QUEUE_ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:herald-slack";

    /// A redrive of a whole queue, on an endpoint that has StartMessageMoveTask, is SQS's own move task
    /// from the DLQ to its source queue, followed until done; no message passes through this process.
    #[tokio::test]
    async fn a_whole_queue_is_redriven_by_sqs_own_move_task() {
        let dlq_url = mock!(aws_sdk_sqs::Client::get_queue_url)
            .match_requests(|request| request.queue_name() == Some("herald-slack-dlq"))
            .then_output(|| {
                GetQueueUrlOutput::builder()
                    .queue_url("https://sqs/herald-slack-dlq")
                    .build()
            });
        let queue_url = mock!(aws_sdk_sqs::Client::get_queue_url)
            .match_requests(|request| request.queue_name() == Some("herald-slack"))
            .then_output(|| {
                GetQueueUrlOutput::builder()
                    .queue_url("https://sqs/herald-slack")
                    .build()
            });
        let arn = |url: &'static str, arn: &'static str| {
            mock!(aws_sdk_sqs::Client::get_queue_attributes)
                .match_requests(move |request| request.queue_url() == Some(url))
                .then_output(move || {
                    GetQueueAttributesOutput::builder()
                        .attributes(QueueAttributeName::QueueArn, arn)
                        .build()
                })
        };
        let (dlq_arn, queue_arn) = (
            arn("https://sqs/herald-slack-dlq", DLQ_ARN),
            arn("https://sqs/herald-slack", QUEUE_ARN),
        );
        let start = mock!(aws_sdk_sqs::Client::start_message_move_task)
            .match_requests(|request| {
                request.source_arn() == Some(DLQ_ARN)
                    && request.destination_arn() == Some(QUEUE_ARN)
                    && request.max_number_of_messages_per_second() == Some(4)
            })
            .then_output(|| {
                StartMessageMoveTaskOutput::builder()
                    .task_handle("task-1")
                    .build()
            });
        let done = mock!(aws_sdk_sqs::Client::list_message_move_tasks)
            .match_requests(|request| request.source_arn() == Some(DLQ_ARN))
            .then_output(|| {
                ListMessageMoveTasksOutput::builder()
                    .results(
                        ListMessageMoveTasksResultEntry::builder()
                            .status("COMPLETED")
                            .approximate_number_of_messages_moved(7)
                            .build(),
                    )
                    .build()
            });
        let received = mock!(aws_sdk_sqs::Client::receive_message).then_output(|| unreachable!("no receive"));
        let sqs = mock_client!(
            aws_sdk_sqs,
            RuleMode::MatchAny,
            &[
                &dlq_url, &queue_url, &dlq_arn, &queue_arn, &start, &done, &received
            ]
        );
        let target = Target {
            sqs,
            dynamodb: mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[]),
            activity_table: None,
            queues: vec![DeadLettered {
                name: "slack".to_owned(),
                queue: "herald-slack".to_owned(),
                dlq: "herald-slack-dlq".to_owned(),
            }],
        };
        let options = Options {
            queues: vec!["slack".to_owned()],
            rate: Some(4),
            ..Options::default()
        };

        run(&target, &options).await.unwrap();

        assert_eq!((start.num_calls(), done.num_calls()), (1, 1));
        assert_eq!(received.num_calls(), 0, "nothing moved through this process");
    }
}
