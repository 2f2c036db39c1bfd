//! Staging: decoded rows held per target day until a flush, with the Kafka positions they cover
//! and the messages rejected on the way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use deltalake::arrow::array::{RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use deltalake::arrow::datatypes::SchemaRef;
use napi::bindgen_prelude::{
    Buffer, Float64Array, Int32Array as JsInt32Array, Uint16Array, Uint32Array, Uint8Array,
};
use napi_derive::napi;

use crate::day::EpochDay;
use crate::dead_letters::dead_letter_batch;
use crate::decode::{DecodeSpec, Messages};
use crate::error::{lock, CoreError, CoreResult};
use crate::positions::{
    batch_last_offsets, Ownership, PartitionKey, PartitionPosition, PartitionStartPosition,
};
use crate::schema_change::{added_columns, conform};
use crate::segment::{SegmentData, StagedSegment};
use crate::spill::{Generation, Staging};

/// One consumed batch of Kafka messages, packed by `ts/kafka/packer.ts` into a few buffers so
/// that it crosses into native code in one call.
#[napi(object)]
pub struct MessageBatch {
    /// All payloads back to back.
    pub payloads: Buffer,
    /// Exclusive end offset of each payload in `payloads`.
    pub payload_ends: Uint32Array,
    /// Index of each message's topic in the stage's topic list.
    pub topic_indexes: Uint16Array,
    #[napi(ts_type = "Int32Array")]
    pub partitions: JsInt32Array,
    /// Kafka offsets (exact up to 2^53).
    pub offsets: Float64Array,
    /// Kafka timestamps in epoch milliseconds; -1 when absent.
    pub timestamps: Float64Array,
    /// Keys back to back, present when a table column takes the message key.
    pub keys: Option<Buffer>,
    pub key_ends: Option<Uint32Array>,
    /// Headers, each as a JSON object of strings, back to back; present when a table column
    /// takes them. An empty span means the message has no headers.
    pub headers: Option<Buffer>,
    pub header_ends: Option<Uint32Array>,
    /// Per message, what it does not have: bit 1 its value (a tombstone), bit 2 its key. Without
    /// it every message has both (an empty span is an empty value or key).
    pub absent: Option<Uint8Array>,
}

/// What one `append` did.
#[napi(object)]
pub struct AppendResult {
    /// Messages decoded and staged.
    pub staged: u32,
    /// Messages sent to the dead-letter sink, with reasons.
    pub rejected: Vec<RejectedMessage>,
    /// Rows now staged in total, across days.
    pub staged_rows: u32,
    /// Approximate bytes of Arrow memory now staged.
    pub staged_bytes: f64,
    /// Rows staged on disk (spilled) and not yet committed.
    pub spilled_rows: f64,
    /// Bytes of spill files not yet released (including those of a flush in flight).
    pub spilled_bytes: f64,
    /// Whether this append spilled the staged rows to disk.
    pub spilled: bool,
}

/// A message that could not become a row.
#[napi(object)]
pub struct RejectedMessage {
    pub topic_index: u32,
    pub partition: i32,
    pub offset: f64,
    /// A short category, e.g. `malformed_json`, `type_mismatch`, `missing_field`, `no_day`.
    pub reason: String,
    pub detail: String,
}

/// What recovery found in the staging directory.
#[napi(object)]
pub struct StagingRecovery {
    /// Spilled generations recovered (their rows are staged again).
    pub generations: u32,
    pub rows: f64,
    pub bytes: f64,
    /// The last offset the recovered rows cover per topic-partition: consumption resumes after.
    pub positions: Vec<PartitionPosition>,
    /// Files of generations the table already held (a crash after the commit), removed.
    pub committed_files: u32,
    /// Files dropped (incomplete, damaged, or not continuing the table); their ranges are
    /// consumed again from Kafka.
    pub discarded_files: u32,
    pub reasons: Vec<String>,
}

/// Rows staged for the next flush. Shared with the background tasks that fill it.
pub struct StageState {
    pub segment: SegmentData,
    pub staging: Option<Arc<Mutex<Staging>>>,
    /// The partitions this stage owns and how far each was read (across flushes), so every
    /// staged part records where it continues from. Rows of other partitions are not staged.
    ownership: Ownership,
    /// The staged schema of the rows in memory: a batch decoded with an older spec (in flight
    /// while `follow_schema` changed it) is brought into it, so every spill file has one schema.
    schema: SchemaRef,
}

#[napi]
pub struct Stage {
    /// How messages are decoded; replaced when the table's schema changes (`follow_schema`).
    pub(crate) spec: Mutex<Arc<DecodeSpec>>,
    pub(crate) state: Arc<Mutex<StageState>>,
}

impl Stage {
    pub fn new(spec: DecodeSpec, staging: Option<Staging>) -> Self {
        Self {
            state: Arc::new(Mutex::new(StageState {
                segment: SegmentData::default(),
                staging: staging.map(|s| Arc::new(Mutex::new(s))),
                ownership: Ownership::default(),
                schema: spec.staged_schema.clone(),
            })),
            spec: Mutex::new(Arc::new(spec)),
        }
    }

    /// Decodes with `table_schema` from now on (another writer changed the table) and brings
    /// the rows in memory into it; returns the columns added. Spilled rows keep their schema
    /// until a commit reads them (`schema_change.rs`).
    pub fn follow(&self, table_schema: SchemaRef) -> CoreResult<Vec<String>> {
        let mut spec = lock(&self.spec)?;
        if spec.table_schema.fields() == table_schema.fields() {
            return Ok(Vec::new());
        }
        let added = added_columns(&spec.table_schema, &table_schema);
        let next = DecodeSpec::new(table_schema, spec.options.clone())?;
        let mut state = lock(&self.state)?;
        let schema = next.staged_schema.clone();
        for batches in state.segment.by_day.values_mut() {
            for batch in batches.iter_mut() {
                *batch = conform(batch.clone(), &schema)?;
            }
        }
        state.schema = schema;
        *spec = Arc::new(next);
        Ok(added)
    }

    fn staging(&self) -> CoreResult<Option<Arc<Mutex<Staging>>>> {
        Ok(lock(&self.state)?.staging.clone())
    }
}

#[napi]
impl Stage {
    /// Decodes a batch of messages (in parallel, off the JavaScript thread) and stages its rows
    /// by day. Rejected messages are staged for the dead-letter table and reported back.
    #[napi]
    pub async fn append(&self, batch: MessageBatch) -> napi::Result<AppendResult> {
        let spec = lock(&self.spec)?.clone();
        let state = self.state.clone();
        let result = tokio::task::spawn_blocking(move || append_blocking(&spec, &state, &batch))
            .await
            .map_err(CoreError::from)??;
        Ok(result)
    }

    /// Takes everything staged so far, leaving the stage empty for the batches that follow.
    #[napi]
    pub fn take(&self) -> napi::Result<StagedSegment> {
        let mut state = lock(&self.state)?;
        // Rows in memory leave with the segment, with their coverage: the next part continues
        // after them (the ownership keeps how far each partition was read).
        let mut data = std::mem::take(&mut state.segment);
        data.staging = state.staging.clone();
        Ok(StagedSegment::new(data))
    }

    /// Spills the rows in memory to disk now, durably (a stop that leaves them for the next
    /// scheduled flush). Returns whether anything was written; without staging, nothing is.
    #[napi]
    pub async fn persist(&self) -> napi::Result<bool> {
        let state = self.state.clone();
        let written = tokio::task::spawn_blocking(move || -> CoreResult<bool> {
            let mut guard = lock(&state)?;
            let state = &mut *guard;
            let Some(staging) = state.staging.clone() else {
                return Ok(false);
            };
            if state.segment.coverage.is_empty() {
                return Ok(false);
            }
            let mut staging = lock(&staging)?;
            state.segment.spill_into(&mut staging, None)?;
            Ok(true)
        })
        .await
        .map_err(CoreError::from)??;
        Ok(written)
    }

    /// Topic-partitions the staging directory holds rows for (look up their recorded
    /// positions in the table, then call `recover`).
    #[napi]
    pub fn staging_partitions(&self) -> napi::Result<Vec<PartitionPosition>> {
        let Some(staging) = self.staging()? else {
            return Ok(Vec::new());
        };
        let keys = lock(&staging)?.manifest_partitions();
        Ok(keys
            .into_iter()
            .map(|(topic, partition)| PartitionPosition {
                topic_index: u32::from(topic),
                partition,
                last_offset: -1.0,
            })
            .collect())
    }

    /// Stages again the spilled rows that continue the table's recorded positions (`recorded`:
    /// the last offset the table holds per topic-partition; absent ones have none) and removes
    /// the rest of the staging directory. Call before consuming.
    #[napi]
    pub async fn recover(&self, recorded: Vec<PartitionPosition>) -> napi::Result<StagingRecovery> {
        let state = self.state.clone();
        let result = tokio::task::spawn_blocking(move || recover_blocking(&state, &recorded))
            .await
            .map_err(CoreError::from)??;
        Ok(result)
    }

    /// Takes ownership of newly assigned partitions and records where their consumption
    /// starts, so that every staged part can prove it continues the table. Messages of
    /// partitions not assigned are never staged.
    #[napi]
    pub fn assigned(&self, starts: Vec<PartitionStartPosition>) -> napi::Result<()> {
        let mut state = lock(&self.state)?;
        for start in starts {
            let key = (start.topic_index as u16, start.partition);
            let after = match (start.continues_after, start.next_offset) {
                (Some(after), _) if after >= -1.0 => Some(after as i64),
                (_, Some(next)) if next >= 0.0 => Some(next as i64 - 1),
                _ => None,
            };
            let replaces = start.replaces.filter(|r| *r >= -1.0).map(|r| r as i64);
            state.ownership.assign(key, after, replaces);
        }
        Ok(())
    }

    /// Gives up partitions this consumer no longer owns: their rows in memory are dropped and
    /// they are withdrawn from every spilled generation, so nothing of them is committed by
    /// this stage any more; messages of them still arriving are not staged.
    #[napi]
    pub async fn forget_partitions(&self, lost: Vec<PartitionPosition>) -> napi::Result<()> {
        let lost: Vec<PartitionKey> = lost
            .iter()
            .map(|p| (p.topic_index as u16, p.partition))
            .collect();
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || -> CoreResult<()> {
            let mut guard = lock(&state)?;
            let state = &mut *guard;
            for key in &lost {
                state.ownership.forget(key);
            }
            state.segment.forget_partitions(&lost)?;
            if let Some(staging) = state.staging.clone() {
                lock(&staging)?.withdraw(&mut state.segment.spilled, &lost)?;
            }
            Ok(())
        })
        .await
        .map_err(CoreError::from)??;
        Ok(())
    }

    /// Rows staged now, in memory and spilled to disk.
    #[napi(getter)]
    pub fn staged_rows(&self) -> napi::Result<f64> {
        let state = lock(&self.state)?;
        Ok((state.segment.rows + state.segment.spilled_rows()) as f64)
    }

    /// Rows of this stage spilled to disk (not those of a flush in flight).
    #[napi(getter)]
    pub fn spilled_rows(&self) -> napi::Result<f64> {
        Ok(lock(&self.state)?.segment.spilled_rows() as f64)
    }

    /// Bytes of spill files not yet released, including those of a flush in flight.
    #[napi(getter)]
    pub fn spilled_bytes(&self) -> napi::Result<f64> {
        let Some(staging) = self.staging()? else {
            return Ok(0.0);
        };
        let bytes = lock(&staging)?.disk_bytes();
        Ok(bytes as f64)
    }

    /// Approximate Arrow memory staged now, in bytes.
    #[napi(getter)]
    pub fn staged_bytes(&self) -> napi::Result<f64> {
        Ok(lock(&self.state)?.segment.bytes as f64)
    }
}

fn append_blocking(
    spec: &DecodeSpec,
    state: &Mutex<StageState>,
    batch: &MessageBatch,
) -> CoreResult<AppendResult> {
    let messages = Messages {
        payloads: &batch.payloads,
        payload_ends: &batch.payload_ends,
        topic_indexes: &batch.topic_indexes,
        partitions: &batch.partitions,
        offsets: &batch.offsets,
        timestamps: &batch.timestamps,
        keys: match (&batch.keys, &batch.key_ends) {
            (Some(keys), Some(ends)) => Some((&keys[..], &ends[..])),
            _ => None,
        },
        headers: match (&batch.headers, &batch.header_ends) {
            (Some(headers), Some(ends)) => Some((&headers[..], &ends[..])),
            _ => None,
        },
        absent: batch.absent.as_deref(),
    };
    let started = std::time::Instant::now();
    let decoded = crate::threads::install(|| spec.decode(&messages))??;
    crate::metrics::DECODE.record(started.elapsed(), messages.len());
    let by_day = match &decoded.rows {
        Some(rows) => split_by_day(rows, &decoded.days)?,
        None => Vec::new(),
    };
    let dead = if decoded.rejected.is_empty() {
        None
    } else {
        Some(dead_letter_batch(spec, &messages, &decoded.rejected)?)
    };
    let mut rejected: Vec<RejectedMessage> = decoded
        .rejected
        .iter()
        .map(|r| RejectedMessage {
            topic_index: u32::from(messages.topic_indexes[r.message_index]),
            partition: messages.partitions[r.message_index],
            offset: messages.offsets[r.message_index],
            reason: r.kind.to_string(),
            detail: r.detail.clone(),
        })
        .collect();

    let batch_last = batch_last_offsets(&messages);
    let mut guard = lock(state)?;
    let state = &mut *guard;
    // A message of a partition given up (a revoke, with its messages still in flight) is not
    // this stage's to commit: its new owner reads it from the table's position.
    let mut unowned: Vec<PartitionKey> = Vec::new();
    for &(key, offset) in &batch_last {
        match state.ownership.advance(key, offset) {
            Some(read) => state.segment.coverage.extend(key, read, offset),
            None => unowned.push(key),
        }
    }
    let segment = &mut state.segment;
    let (by_day, dead) = if unowned.is_empty() {
        (by_day, dead)
    } else {
        tracing::debug!(
            partitions = unowned.len(),
            "messages of partitions not owned dropped"
        );
        rejected.retain(|r| !unowned.contains(&(r.topic_index as u16, r.partition)));
        drop_partitions(by_day, dead, &unowned)?
    };
    let mut staged = 0u32;
    for (day, rows) in by_day {
        let rows = conform(rows, &state.schema)?;
        staged += rows.num_rows() as u32;
        segment.rows += rows.num_rows();
        segment.bytes += rows.get_array_memory_size();
        segment.by_day.entry(day).or_default().push(rows);
    }
    segment.dead_letters.extend(dead);
    let mut spilled = false;
    let mut spilled_bytes = 0;
    if let Some(staging) = state.staging.clone() {
        let mut staging = lock(&staging)?;
        let dead_bytes: usize = segment
            .dead_letters
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        if segment.bytes + dead_bytes > staging.max_memory_bytes {
            segment.spill_into(&mut staging, None)?;
            spilled = true;
        }
        spilled_bytes = staging.disk_bytes();
    }
    Ok(AppendResult {
        staged,
        rejected,
        staged_rows: (segment.rows + segment.spilled_rows()) as u32,
        staged_bytes: segment.bytes as f64,
        spilled_rows: segment.spilled_rows() as f64,
        spilled_bytes: spilled_bytes as f64,
        spilled,
    })
}

/// A decoded batch: rows by day and the dead letters.
type DecodedParts = (Vec<(EpochDay, RecordBatch)>, Option<RecordBatch>);

/// Rows and dead letters without those of the given partitions.
fn drop_partitions(
    by_day: Vec<(EpochDay, RecordBatch)>,
    dead: Option<RecordBatch>,
    lost: &[PartitionKey],
) -> CoreResult<DecodedParts> {
    let mut kept = Vec::with_capacity(by_day.len());
    for (day, rows) in by_day {
        if let Some(rows) = crate::segment::without_partitions(&rows, lost)? {
            kept.push((day, rows));
        }
    }
    let dead = match dead {
        Some(d) => crate::segment::without_partitions(&d, lost)?,
        None => None,
    };
    Ok((kept, dead))
}

fn recover_blocking(
    state: &Mutex<StageState>,
    recorded: &[PartitionPosition],
) -> CoreResult<StagingRecovery> {
    let mut guard = lock(state)?;
    let state = &mut *guard;
    let Some(staging) = state.staging.clone() else {
        return Ok(StagingRecovery {
            generations: 0,
            rows: 0.0,
            bytes: 0.0,
            positions: Vec::new(),
            committed_files: 0,
            discarded_files: 0,
            reasons: Vec::new(),
        });
    };
    let recorded: HashMap<PartitionKey, i64> = recorded
        .iter()
        .filter(|p| p.last_offset >= 0.0)
        .map(|p| ((p.topic_index as u16, p.partition), p.last_offset as i64))
        .collect();
    let found = lock(&staging)?.recover(&recorded)?;
    let segment = &mut state.segment;
    segment.spilled.extend(found.generations.iter().cloned());
    let recovery = StagingRecovery {
        generations: found.generations.len() as u32,
        rows: found.generations.iter().map(Generation::rows).sum::<u64>() as f64,
        bytes: found.generations.iter().map(Generation::bytes).sum::<u64>() as f64,
        positions: segment.position_list(),
        committed_files: found.committed_files as u32,
        discarded_files: found.discarded_files as u32,
        reasons: found.reasons,
    };
    Ok(recovery)
}

/// Splits decoded rows into one batch per day (usually a single day: no copy then).
fn split_by_day(rows: &RecordBatch, days: &[EpochDay]) -> CoreResult<Vec<(EpochDay, RecordBatch)>> {
    let Some(&first) = days.first() else {
        return Ok(Vec::new());
    };
    if days.iter().all(|&d| d == first) {
        return Ok(vec![(first, rows.clone())]);
    }
    let mut groups: BTreeMap<EpochDay, Vec<u32>> = BTreeMap::new();
    for (row, &d) in days.iter().enumerate() {
        groups.entry(d).or_default().push(row as u32);
    }
    groups
        .into_iter()
        .map(|(d, indices)| Ok((d, take_record_batch(rows, &UInt32Array::from(indices))?)))
        .collect()
}
