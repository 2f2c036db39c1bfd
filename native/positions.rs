//! Kafka positions: the one place that decides which offsets of a topic-partition staged data
//! covers, what a commit may write, and which txn versions it records.
//!
//! The rules, stated once:
//! - A partition's rows are staged only while this stage owns it (between `assign` and
//!   `forget`), and every staged part (the rows in memory, each spilled generation) records, per
//!   partition, the range `(previous, last]` its owner read without interruption.
//! - A commit writes a row only when its own part covers it, and only inside the partition's
//!   *window*: above the table's recorded version and up to the furthest offset the parts reach
//!   contiguously from it. The window's end is the txn version the commit records.
//! - A part's range that starts beyond what the table recorded would skip offsets nobody wrote:
//!   such a commit is refused instead of recording a position past them.
//!
//! Several owners of one partition over time (rebalances, a recovered staging directory, a late
//! revoke) are safe under these rules: each writes only what lies above the recorded version,
//! and records only what it read contiguously from there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake::arrow::array::{BooleanArray, Int32Array, Int64Array, RecordBatch, UInt16Array};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::Transaction;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use napi_derive::napi;
use serde::{Deserialize, Serialize};

use crate::decode::{OFFSET_COLUMN, PARTITION_COLUMN, TOPIC_COLUMN};
use crate::error::{lock, CoreError, CoreResult};
use crate::messages::Messages;
use crate::retry::{with_commit_retry, StorageRetry};

/// Table property that expires txn entries; set, it would make us forget our Kafka positions.
const TXN_RETENTION_PROPERTY: &str = "delta.setTransactionRetentionDuration";

/// The last Kafka offset consumed for one topic-partition (staged or rejected).
#[napi(object)]
#[derive(Clone)]
pub struct PartitionPosition {
    pub topic_index: u32,
    pub partition: i32,
    pub last_offset: f64,
}

/// Where a stage starts reading a topic-partition.
#[napi(object)]
pub struct PartitionStartPosition {
    pub topic_index: u32,
    pub partition: i32,
    /// The first offset to read; absent when Kafka decides (`start_from` with nothing recorded).
    pub next_offset: Option<f64>,
    /// The recorded offset this reading continues, when it is not `nextOffset - 1`: a range
    /// lost to retention that `kafka.on_position_lost` chose to skip.
    pub continues_after: Option<f64>,
    /// The table's recorded version this reading replaces, when the partition's log was
    /// recreated below it (`kafka.on_position_lost` chose to go on): the first commit records
    /// the new, lower position, if the table still holds this one.
    pub replaces: Option<f64>,
}

/// The txn application id that records one topic-partition's position.
#[napi(object)]
pub struct PartitionAppId {
    pub topic_index: u32,
    pub partition: i32,
    pub app_id: String,
}

/// The version recorded in the table's log for an application id (a Kafka position).
#[napi(object)]
pub struct TxnVersion {
    pub app_id: String,
    /// The last offset committed for the app id, or absent when none was ever written.
    pub version: Option<f64>,
}

/// The txn application ids of a commit, by topic-partition.
pub struct AppIds {
    by_key: HashMap<PartitionKey, String>,
    list: Vec<String>,
}

impl AppIds {
    pub fn new(app_ids: Vec<PartitionAppId>) -> Self {
        let by_key: HashMap<PartitionKey, String> = app_ids
            .into_iter()
            .map(|a| ((a.topic_index as u16, a.partition), a.app_id))
            .collect();
        let list = by_key.values().cloned().collect();
        Self { by_key, list }
    }

    pub fn of(&self, key: &PartitionKey) -> Option<String> {
        self.by_key.get(key).cloned()
    }

    /// The versions a table records for these ids, by topic-partition.
    pub async fn recorded_in(&self, table: &DeltaTable) -> CoreResult<HashMap<PartitionKey, i64>> {
        let versions = read_txn_versions(table, &self.list).await?;
        Ok(self
            .by_key
            .iter()
            .filter_map(|(key, id)| versions.get(id).map(|&v| (*key, v)))
            .collect())
    }
}

/// A topic-partition: the topic's index in the stage's topic list and the partition id.
pub type PartitionKey = (u16, i32);

/// The offsets of one topic-partition a part of staged data covers: `(previous, last]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRange {
    pub topic: u16,
    pub partition: i32,
    /// The last offset read before this part's first message of the partition (the table's
    /// recorded version, or the previous part's last); absent when the partition started where
    /// Kafka chose (`start_from: earliest` with nothing recorded).
    pub previous: Option<i64>,
    /// The last offset read. Equal to `previous` for a partition assigned but not read yet:
    /// the commit still records where it starts.
    pub last: i64,
    /// The recorded version this reading replaces (a recreated topic), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<i64>,
}

impl PartitionRange {
    pub fn key(&self) -> PartitionKey {
        (self.topic, self.partition)
    }

    fn covers(&self, offset: i64) -> bool {
        offset <= self.last && self.previous.is_none_or(|p| offset > p)
    }
}

/// Per topic-partition, the range one part of staged data covers.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    ranges: HashMap<PartitionKey, PartitionRange>,
}

impl Coverage {
    pub fn from_ranges(ranges: &[PartitionRange]) -> Self {
        Self {
            ranges: ranges.iter().map(|r| (r.key(), *r)).collect(),
        }
    }

    /// The ranges, ordered by topic and partition (as the manifest stores them).
    pub fn ranges(&self) -> Vec<PartitionRange> {
        let mut list: Vec<PartitionRange> = self.ranges.values().copied().collect();
        list.sort_by_key(PartitionRange::key);
        list
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn covers(&self, key: &PartitionKey, offset: i64) -> bool {
        self.ranges.get(key).is_some_and(|r| r.covers(offset))
    }

    /// Extends the partition's range to `last`; a partition new to this part starts after
    /// what `read` says.
    pub fn extend(&mut self, key: PartitionKey, read: Read, last: i64) {
        let range = self.ranges.entry(key).or_insert(PartitionRange {
            topic: key.0,
            partition: key.1,
            previous: read.last,
            last,
            replaces: read.replaces,
        });
        range.last = range.last.max(last);
    }

    /// Withdraws the partitions: rows of them in this part can no longer be committed.
    pub fn withdraw(&mut self, lost: &[PartitionKey]) -> bool {
        let before = self.ranges.len();
        self.ranges.retain(|key, _| !lost.contains(key));
        self.ranges.len() != before
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

/// How far an owned partition was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Read {
    /// The last offset read (absent before the first message when Kafka chose the start).
    pub last: Option<i64>,
    /// The recorded version this reading replaces (a recreated topic), if any.
    pub replaces: Option<i64>,
}

/// Which partitions this stage owns, and how far each was read.
#[derive(Debug, Default)]
pub struct Ownership {
    owned: HashMap<PartitionKey, Read>,
}

impl Ownership {
    /// Takes ownership; `after` is the offset the reading continues from.
    pub fn assign(&mut self, key: PartitionKey, after: Option<i64>, replaces: Option<i64>) {
        let read = Read {
            last: after,
            replaces,
        };
        self.owned.insert(key, read);
    }

    pub fn forget(&mut self, key: &PartitionKey) {
        self.owned.remove(key);
    }

    #[cfg(test)]
    pub fn owns(&self, key: &PartitionKey) -> bool {
        self.owned.contains_key(key)
    }

    /// Records that the partition was read up to `last`; returns how far it was read before,
    /// which is where a new part's range for it starts. `None` when the partition is not owned.
    pub fn advance(&mut self, key: PartitionKey, last: i64) -> Option<Read> {
        let read = self.owned.get_mut(&key)?;
        let before = *read;
        read.last = Some(before.last.map_or(last, |p| p.max(last)));
        Some(before)
    }
}

/// What one commit may write of a partition, and the version it records.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// The table's recorded version: rows at or below it are already there.
    recorded: Option<i64>,
    /// The furthest offset the parts reach contiguously from `recorded`.
    reach: i64,
    /// The recorded version the parts replace (a recreated topic's old position, still in the
    /// table): `recorded` is then where the new reading started.
    replaced: Option<i64>,
}

/// The windows of one commit attempt, from the parts' coverages and the table's versions.
#[derive(Debug, Clone)]
pub struct CommitWindows {
    windows: HashMap<PartitionKey, Window>,
}

impl CommitWindows {
    /// Plans one attempt: `parts` are the coverages of every part the commit writes from,
    /// `recorded` the versions the table holds now.
    pub fn plan(
        parts: &[&Coverage],
        recorded: &dyn Fn(&PartitionKey) -> Option<i64>,
    ) -> CoreResult<Self> {
        let mut by_key: HashMap<PartitionKey, Vec<PartitionRange>> = HashMap::new();
        for part in parts {
            for range in part.ranges.values() {
                by_key.entry(range.key()).or_default().push(*range);
            }
        }
        let mut windows = HashMap::with_capacity(by_key.len());
        for (key, mut ranges) in by_key {
            let recorded = recorded(&key);
            windows.insert(key, Window::reach(key, recorded, &mut ranges)?);
        }
        Ok(Self { windows })
    }

    /// Whether a row of `part` at `offset` is written by this commit.
    pub fn keeps(&self, part: &Coverage, key: &PartitionKey, offset: i64) -> bool {
        part.covers(key, offset)
            && self
                .windows
                .get(key)
                .is_some_and(|w| offset <= w.reach && w.recorded.is_none_or(|done| offset > done))
    }

    /// The txn actions that move each partition's version in the table written into (`own`:
    /// its recorded versions) to the window's end, where that is a move forward.
    pub fn transactions(
        &self,
        own: &dyn Fn(&PartitionKey) -> Option<i64>,
        app_id: &dyn Fn(&PartitionKey) -> Option<String>,
    ) -> CoreResult<Vec<Transaction>> {
        let mut txns = Vec::new();
        for (key, w) in &self.windows {
            let own = own(key);
            // Moving back is right only over the very version the new reading replaces.
            let replacing = w.replaced.is_some() && own == w.replaced;
            if own.is_some_and(|done| w.reach <= done) && !replacing {
                continue;
            }
            let id = app_id(key).ok_or_else(|| {
                CoreError::InvalidArgument(format!(
                    "no application id given for topic #{} partition {}",
                    key.0, key.1
                ))
            })?;
            txns.push(Transaction::new(&id, w.reach));
        }
        txns.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        Ok(txns)
    }

    /// Each partition's window: the recorded version it starts after, and its end. Windows
    /// that replace a recreated topic's position are left out: their offsets are a new log's.
    pub fn iter(&self) -> impl Iterator<Item = (PartitionKey, Option<i64>, i64)> + '_ {
        self.windows
            .iter()
            .filter(|(_, w)| w.replaced.is_none())
            .map(|(k, w)| (*k, w.recorded, w.reach))
    }

    /// The rows of `batch` (from `part`) this commit writes, without the position columns.
    pub fn select(&self, part: &Coverage, batch: &RecordBatch) -> CoreResult<Option<RecordBatch>> {
        let topics = column::<UInt16Array>(batch, TOPIC_COLUMN)?;
        let partitions = column::<Int32Array>(batch, PARTITION_COLUMN)?;
        let offsets = column::<Int64Array>(batch, OFFSET_COLUMN)?;
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|r| {
                let key = (topics.value(r), partitions.value(r));
                Some(self.keeps(part, &key, offsets.value(r)))
            })
            .collect();
        let kept = match keep.true_count() {
            0 => return Ok(None),
            n if n == batch.num_rows() => batch.clone(),
            _ => filter_record_batch(batch, &keep)?,
        };
        Ok(Some(strip_positions(&kept)?))
    }
}

impl Window {
    /// Walks the ranges in order from the recorded version; a range that starts beyond what was
    /// reached so far would leave offsets nobody wrote between the two.
    fn reach(
        key: PartitionKey,
        recorded: Option<i64>,
        ranges: &mut [PartitionRange],
    ) -> CoreResult<Self> {
        ranges.sort_by_key(|r| (r.previous, r.last));
        // A reading that replaces the recorded version (its log was recreated below it) starts
        // the partition over from its own first offset; once the table records the new
        // position, the old one no longer matches and the ordinary rule holds again.
        let replaced = recorded.filter(|&r| ranges.iter().any(|range| range.replaces == Some(r)));
        let recorded = match replaced {
            Some(_) => ranges
                .iter()
                .filter(|range| range.replaces == replaced)
                .map(|range| range.previous)
                .min()
                .flatten(),
            None => recorded,
        };
        let mut reach: Option<i64> = recorded;
        for range in ranges.iter() {
            match (range.previous, reach) {
                // Kafka chose the start, or nothing is recorded and nothing reached yet.
                (None, _) | (_, None) => {
                    reach = Some(reach.map_or(range.last, |r| r.max(range.last)))
                }
                (Some(previous), Some(r)) if previous <= r => reach = Some(r.max(range.last)),
                (Some(previous), Some(r)) => {
                    return Err(CoreError::Internal(format!(
                        "topic #{} partition {}: staged offsets start after {previous} but the \
                         table records {r}; committing would skip offsets {}..={previous}",
                        key.0,
                        key.1,
                        r + 1
                    )))
                }
            }
        }
        Ok(Self {
            recorded,
            reach: reach.unwrap_or(-1),
            replaced,
        })
    }
}

/// Reads the recorded version of each application id (`crate::txn_index`: one read for all).
pub async fn read_txn_versions(
    table: &DeltaTable,
    app_ids: &[String],
) -> CoreResult<HashMap<String, i64>> {
    crate::txn_index::txn_versions_at(table, app_ids).await
}

/// Fails with `UNSUPPORTED_TABLE` when the table would expire the txn entries that record our
/// Kafka positions (`delta.setTransactionRetentionDuration`).
pub fn check_positions_kept(table: &DeltaTable) -> CoreResult<()> {
    let state = table.snapshot()?;
    if let Some(retention) = state.metadata().configuration().get(TXN_RETENTION_PROPERTY) {
        return Err(CoreError::UnsupportedTable(format!(
            "the table at {} sets {TXN_RETENTION_PROPERTY}={retention}: Delta would expire the \
             Kafka positions recorded in its log and exactly-once delivery could not hold; unset it",
            table.table_url()
        )));
    }
    Ok(())
}

/// A commit that carries only txn actions: every message of the segment was rejected or
/// already written, but the positions must still move past them.
pub async fn commit_positions_only(
    table: &DeltaTable,
    properties: CommitProperties,
) -> Result<DeltaTable, DeltaTableError> {
    let state = table.snapshot()?;
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    CommitBuilder::from(properties)
        .build(Some(state), table.log_store(), operation)
        .await?;
    let mut updated = table.clone();
    updated.update_state().await?;
    Ok(updated)
}

/// Records start positions for app ids the table has no version for, in one commit of txn
/// actions only (retried on conflicts, re-reading what is recorded). Returns the ids recorded.
pub async fn record_starts(
    table: Arc<Mutex<DeltaTable>>,
    starts: Vec<TxnVersion>,
    max_attempts: u32,
    retry: StorageRetry,
) -> CoreResult<Vec<String>> {
    let ids: Vec<String> = starts.iter().map(|s| s.app_id.clone()).collect();
    with_commit_retry(retry, "recording start positions", max_attempts, |_| {
        record_starts_once(&table, &starts, &ids)
    })
    .await
}

/// One attempt of [`record_starts`] against the newest version.
async fn record_starts_once(
    table: &Arc<Mutex<DeltaTable>>,
    starts: &[TxnVersion],
    ids: &[String],
) -> CoreResult<Vec<String>> {
    let mut current = lock(table)?.clone();
    current.update_state().await?;
    check_positions_kept(&current)?;
    let recorded = read_txn_versions(&current, ids).await?;
    let txns: Vec<Transaction> = starts
        .iter()
        .filter(|s| !recorded.contains_key(&s.app_id))
        .filter_map(|s| s.version.map(|v| Transaction::new(&s.app_id, v as i64)))
        .collect();
    if txns.is_empty() {
        *lock(table)? = current;
        return Ok(Vec::new());
    }
    let written: Vec<String> = txns.iter().map(|t| t.app_id.clone()).collect();
    let properties = CommitProperties::default().with_application_transactions(txns);
    let updated = commit_positions_only(&current, properties).await?;
    *lock(table)? = updated;
    Ok(written)
}

/// The last offset per topic-partition of a batch. A batch holds a few partitions, each in long
/// runs, so this is a comparison per message and a short scan per run.
pub fn batch_last_offsets(messages: &Messages<'_>) -> Vec<(PartitionKey, i64)> {
    let mut out: Vec<(PartitionKey, i64)> = Vec::new();
    let mut current: Option<usize> = None;
    for i in 0..messages.len() {
        let key = (messages.topic_indexes[i], messages.partitions[i]);
        let offset = messages.offset(i);
        let slot = match current {
            Some(c) if out[c].0 == key => c,
            _ => match out.iter().position(|(k, _)| *k == key) {
                Some(found) => found,
                None => {
                    out.push((key, offset));
                    out.len() - 1
                }
            },
        };
        out[slot].1 = out[slot].1.max(offset);
        current = Some(slot);
    }
    out
}

/// Drops the internal position columns (always the last three).
pub fn strip_positions(batch: &RecordBatch) -> CoreResult<RecordBatch> {
    let keep: Vec<usize> = (0..batch.num_columns() - 3).collect();
    Ok(batch.project(&keep)?)
}

pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> CoreResult<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| CoreError::Internal(format!("staged rows lack column {name:?}")))
}

/// The topic-partition of each row of a staged batch.
pub fn row_keys(batch: &RecordBatch) -> CoreResult<Vec<PartitionKey>> {
    let topics = column::<UInt16Array>(batch, TOPIC_COLUMN)?;
    let partitions = column::<Int32Array>(batch, PARTITION_COLUMN)?;
    Ok((0..batch.num_rows())
        .map(|r| (topics.value(r), partitions.value(r)))
        .collect())
}

#[cfg(test)]
#[path = "positions_tests.rs"]
mod tests;
