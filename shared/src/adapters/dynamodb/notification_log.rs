//! The notification log's two indexes on the activity table, both KEYS_ONLY and keyed by `created_at`:
//!
//! - `log_by_user`: `log_user` = `T#<t>#U#<user>`, for `?user_id=`; one user's notifications are few a
//!   minute (the rate limit), so one partition holds them.
//! - `log_by_tenant`: `log_tenant` = `T#<t>#L#<0-7>`, for every other query. A busy tenant's every
//!   notification lands here, so the key is sharded by the notification's random id and a page is the
//!   newest of eight queries, merged.
//!
//! Neither key nor `created_at` ever changes after the notification is written, and a KEYS_ONLY index
//! holds no other attribute, so a status change writes neither index: each costs one index write per
//! notification in its life. The log reads the notifications themselves afterwards, as the event's own
//! list does (`?event_id=` needs no index: the event item lists its notifications).

use super::activity_store::{DynamoActivityStore, notification_key};
use super::unsettled::notification_from_key;
use super::{Item, ItemExt, corrupt, n, s};
use crate::adapters::backend_error;
use crate::domain::log_query::{LogPosition, LogWindow};
use crate::domain::notification::Notification;
use crate::domain::{NotificationId, TenantId, Timestamp};
use crate::ports::{BackendError, NotificationLog, Page};

pub(super) const BY_USER: &str = "log_by_user";
pub(super) const BY_TENANT: &str = "log_by_tenant";
/// A partition takes 1,000 index writes a second; eight carry 8,000 notifications a second of one tenant.
/// Changing the count moves existing notifications between partitions: the index would have to be rebuilt.
const SHARDS: u8 = 8;

/// The index keys of a new notification.
pub(super) fn index_keys(item: &mut Item, notification: &Notification) {
    let tenant = &notification.tenant;
    item.insert(
        "log_tenant".into(),
        s(format!(
            "T#{tenant}#L#{}",
            super::spread(&notification.id) % SHARDS
        )),
    );
    if let Some(user) = &notification.user_id {
        item.insert("log_user".into(), s(user_partition(tenant, user)));
    }
}

fn user_partition(tenant: &TenantId, user: &str) -> String {
    format!("T#{tenant}#U#{user}")
}

/// Where one partition's reading stands between pages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ShardPosition {
    Start,
    After(LogPosition),
    Done,
}

impl ShardPosition {
    fn encode(&self) -> String {
        match self {
            Self::Start => String::new(),
            Self::After(position) => position.encode(),
            Self::Done => "-".into(),
        }
    }

    fn decode(raw: &str) -> Option<Self> {
        match raw {
            "" => Some(Self::Start),
            "-" => Some(Self::Done),
            _ => LogPosition::decode(raw).map(Self::After),
        }
    }
}

/// The sharded index's `next`: each partition's position, comma-separated.
fn encode_shards(positions: &[ShardPosition]) -> String {
    positions
        .iter()
        .map(ShardPosition::encode)
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_shards(raw: &str) -> Option<Vec<ShardPosition>> {
    let positions = raw
        .split(',')
        .map(ShardPosition::decode)
        .collect::<Option<Vec<_>>>()?;
    (positions.len() == usize::from(SHARDS)).then_some(positions)
}

/// One partition's answer: its positions in the index's order, and whether it holds more past them.
#[derive(Debug, Default)]
struct PartitionRead {
    positions: Vec<LogPosition>,
    more: bool,
}

/// The newest `limit` of the partitions' answers, and where each partition stands after them. A partition
/// moves past what the page took from it and no further, so every item is on exactly one page.
fn merge_newest_first(
    reads: &[PartitionRead],
    prior: Vec<ShardPosition>,
    limit: usize,
) -> (Vec<LogPosition>, Vec<ShardPosition>) {
    let mut taken = vec![0_usize; reads.len()];
    let mut page = Vec::with_capacity(limit);
    while page.len() < limit {
        let newest = reads
            .iter()
            .enumerate()
            .filter_map(|(shard, read)| read.positions.get(taken[shard]).map(|position| (shard, position)))
            .min_by(|(_, a), (_, b)| a.newest_first(b));
        let Some((shard, position)) = newest else { break };
        page.push(position.clone());
        taken[shard] += 1;
    }
    let positions = prior
        .into_iter()
        .zip(reads)
        .zip(taken)
        .map(|((prior, read), taken)| {
            if taken == read.positions.len() && !read.more {
                ShardPosition::Done
            } else if let Some(last) = taken.checked_sub(1).and_then(|last| read.positions.get(last)) {
                ShardPosition::After(last.clone())
            } else {
                prior
            }
        })
        .collect();
    (page, positions)
}

impl DynamoActivityStore {
    /// Up to `limit` positions of one index partition, newest first, after `after`.
    async fn read_partition(
        &self,
        (index, key_attribute, partition): (&str, &str, String),
        window: &LogWindow,
        limit: u16,
        after: Option<&LogPosition>,
        tenant: &TenantId,
    ) -> Result<PartitionRead, BackendError> {
        let mut condition = format!("{key_attribute} = :partition");
        let mut query = self.client.query().table_name(&self.table).index_name(index);
        match (window.since, window.until) {
            (Some(since), Some(until)) => {
                condition.push_str(" AND created_at BETWEEN :since AND :last");
                query = query
                    .expression_attribute_values(":since", n(since.millis()))
                    .expression_attribute_values(":last", n(until.millis().saturating_sub(1)));
            }
            (Some(since), None) => {
                condition.push_str(" AND created_at >= :since");
                query = query.expression_attribute_values(":since", n(since.millis()));
            }
            (None, Some(until)) => {
                condition.push_str(" AND created_at < :until");
                query = query.expression_attribute_values(":until", n(until.millis()));
            }
            (None, None) => {}
        }
        if let Some(after) = after {
            let mut start = notification_key(tenant, &after.id);
            start.insert(key_attribute.to_owned(), s(partition.clone()));
            start.insert("created_at".into(), n(after.created_at.millis()));
            query = query.set_exclusive_start_key(Some(start));
        }
        let output = query
            .key_condition_expression(condition)
            .expression_attribute_values(":partition", s(partition))
            .scan_index_forward(false)
            .limit(i32::from(limit))
            .send()
            .await
            .map_err(|error| backend_error("DynamoDB", "Query(notification log)", &error))?;
        let positions = output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let pk = item.str("pk")?;
                let (_, id) = notification_from_key(pk)
                    .ok_or_else(|| corrupt("read", format!("notification key {pk}")))?;
                Ok(LogPosition {
                    created_at: Timestamp::from_millis(item.int("created_at")?),
                    id,
                })
            })
            .collect::<Result<_, BackendError>>()?;
        Ok(PartitionRead {
            positions,
            more: output.last_evaluated_key.is_some(),
        })
    }
}

impl NotificationLog for DynamoActivityStore {
    async fn log_page(
        &self,
        tenant: &TenantId,
        window: &LogWindow,
        limit: u16,
        after: Option<&str>,
    ) -> Result<Page<NotificationId>, BackendError> {
        let corrupt_position = || corrupt("read", "a log position this store did not give");
        if let Some(user) = &window.user_id {
            let after = after
                .map(|raw| LogPosition::decode(raw).ok_or_else(corrupt_position))
                .transpose()?;
            let partition = (BY_USER, "log_user", user_partition(tenant, user));
            let read = self
                .read_partition(partition, window, limit, after.as_ref(), tenant)
                .await?;
            return Ok(Page {
                next: read
                    .more
                    .then(|| read.positions.last().map(LogPosition::encode))
                    .flatten(),
                items: read.positions.into_iter().map(|position| position.id).collect(),
            });
        }
        let prior = match after {
            Some(raw) => decode_shards(raw).ok_or_else(corrupt_position)?,
            None => vec![ShardPosition::Start; usize::from(SHARDS)],
        };
        let reads =
            futures::future::try_join_all(prior.iter().enumerate().map(|(shard, position)| async move {
                let after = match position {
                    ShardPosition::Done => return Ok(PartitionRead::default()),
                    ShardPosition::Start => None,
                    ShardPosition::After(after) => Some(after),
                };
                let partition = (BY_TENANT, "log_tenant", format!("T#{tenant}#L#{shard}"));
                self.read_partition(partition, window, limit, after, tenant).await
            }))
            .await?;
        let (page, positions) = merge_newest_first(&reads, prior, usize::from(limit));
        let finished = positions.iter().all(|position| *position == ShardPosition::Done);
        Ok(Page {
            items: page.into_iter().map(|position| position.id).collect(),
            next: (!finished).then(|| encode_shards(&positions)),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(millis: i64, id: u8) -> LogPosition {
        LogPosition {
            created_at: Timestamp::from_millis(millis),
            id: NotificationId::parse(&format!("ntf_{id:032x}")).unwrap(),
        }
    }

    fn read(positions: Vec<LogPosition>, more: bool) -> PartitionRead {
        PartitionRead { positions, more }
    }

    #[test]
    fn a_page_is_the_newest_of_every_partition_and_each_partition_resumes_after_what_it_gave() {
        let reads = [
            read(vec![at(9, 1), at(5, 2), at(1, 3)], true),
            read(vec![at(8, 4), at(7, 5)], false),
            read(vec![], false),
        ];
        let prior = vec![
            ShardPosition::Start,
            ShardPosition::Start,
            ShardPosition::After(at(20, 9)),
        ];
        let (page, positions) = merge_newest_first(&reads, prior, 3);
        assert_eq!(page, vec![at(9, 1), at(8, 4), at(7, 5)]);
        assert_eq!(
            positions,
            vec![
                ShardPosition::After(at(9, 1)),
                ShardPosition::Done,
                ShardPosition::Done
            ]
        );
    }

    #[test]
    fn a_partition_nothing_was_taken_from_keeps_its_place() {
        let reads = [read(vec![at(9, 1), at(8, 2)], true), read(vec![at(3, 3)], false)];
        let prior = vec![ShardPosition::After(at(10, 7)), ShardPosition::After(at(4, 8))];
        let (page, positions) = merge_newest_first(&reads, prior, 2);
        assert_eq!(page, vec![at(9, 1), at(8, 2)]);
        assert_eq!(
            positions,
            vec![ShardPosition::After(at(8, 2)), ShardPosition::After(at(4, 8))]
        );
    }

    #[test]
    fn equal_times_are_ordered_by_id_across_partitions() {
        let reads = [read(vec![at(5, 1)], false), read(vec![at(5, 2)], false)];
        let (page, _) = merge_newest_first(&reads, vec![ShardPosition::Start; 2], 2);
        assert_eq!(page, vec![at(5, 2), at(5, 1)]);
    }

    #[test]
    fn positions_read_back_and_a_wrong_count_is_refused() {
        let mut positions = vec![ShardPosition::Start; usize::from(SHARDS)];
        positions[2] = ShardPosition::Done;
        positions[5] = ShardPosition::After(at(1_795_000_000_123, 42));
        assert_eq!(decode_shards(&encode_shards(&positions)), Some(positions));
        assert_eq!(decode_shards(",,-"), None);
        assert_eq!(decode_shards(&",".repeat(7).replacen(',', "x,", 1)), None);
    }

    #[test]
    fn notifications_spread_over_every_partition() {
        let accepted = crate::test_fixtures::acceptance("acme", None, &[crate::domain::Channel::Email]);
        let mut partitions = std::collections::BTreeSet::new();
        for id in 0..200_u8 {
            let mut item = Item::new();
            let mut notification = accepted.notifications[0].clone();
            notification.id = NotificationId::parse(&format!("ntf_{:032x}", u128::from(id) * 7919)).unwrap();
            index_keys(&mut item, &notification);
            partitions.insert(item.str("log_tenant").unwrap().to_owned());
        }
        assert_eq!(partitions.len(), usize::from(SHARDS));
    }
}
