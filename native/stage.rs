//! Staging: decoded rows held per target day until a flush, with the Kafka positions they cover
//! and the messages rejected on the way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use deltalake::arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt16Array, UInt32Array,
};
use deltalake::arrow::compute::take_record_batch;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use napi::bindgen_prelude::{
    Buffer, Float64Array, Int32Array as JsInt32Array, Uint16Array, Uint32Array,
};
use napi_derive::napi;

use crate::day::{self, EpochDay};
use crate::decode::{
    utc_millis, DecodeSpec, Messages, Rejection, OFFSET_COLUMN, PARTITION_COLUMN, TOPIC_COLUMN,
};
use crate::error::{CoreError, CoreResult};
use crate::spill::{Generation, GenerationRange, PartitionKey, Staging};

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

/// Everything taken out of a stage for one commit.
#[derive(Default)]
pub struct SegmentData {
    pub by_day: BTreeMap<EpochDay, Vec<RecordBatch>>,
    pub dead_letters: Vec<RecordBatch>,
    pub positions: HashMap<(u16, i32), i64>,
    /// Rows and bytes held in memory (`by_day`).
    pub rows: usize,
    pub bytes: usize,
    /// Generations spilled to disk, oldest first; their rows come before `by_day`'s.
    pub spilled: Vec<Generation>,
    /// The staging the spilled generations live in (to read and then release them).
    pub staging: Option<Arc<Mutex<Staging>>>,
}

impl SegmentData {
    pub fn position_list(&self) -> Vec<PartitionPosition> {
        let mut list: Vec<PartitionPosition> = self
            .positions
            .iter()
            .map(|(&(topic, partition), &offset)| PartitionPosition {
                topic_index: u32::from(topic),
                partition,
                last_offset: offset as f64,
            })
            .collect();
        list.sort_by_key(|p| (p.topic_index, p.partition));
        list
    }

    pub fn dead_letter_count(&self) -> usize {
        let spilled: u64 = self
            .spilled
            .iter()
            .flat_map(|g| &g.files)
            .filter(|f| f.day.is_none())
            .map(|f| f.rows)
            .sum();
        self.dead_letters
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
            + spilled as usize
    }

    /// Rows spilled to disk.
    pub fn spilled_rows(&self) -> usize {
        self.spilled.iter().map(|g| g.rows() as usize).sum()
    }

    /// Rows consolidated away while spilling.
    pub fn spilled_deduplicated(&self) -> usize {
        self.spilled.iter().map(|g| g.deduplicated as usize).sum()
    }

    /// The days the segment writes into, memory and disk.
    pub fn days(&self) -> Vec<EpochDay> {
        let mut days: Vec<EpochDay> = self.by_day.keys().copied().collect();
        days.extend(
            self.spilled
                .iter()
                .flat_map(|g| g.files.iter().filter_map(|f| f.day)),
        );
        days.sort_unstable();
        days.dedup();
        days
    }

    /// Drops everything staged for the given topic-partitions (after a revoke), so the new owner
    /// reads them again from the table's committed position.
    pub fn forget_partitions(&mut self, lost: &[(u16, i32)]) -> CoreResult<()> {
        let keep_owned = |batches: &[RecordBatch]| -> CoreResult<Vec<RecordBatch>> {
            let mut kept = Vec::with_capacity(batches.len());
            for batch in batches {
                let topic = column::<UInt16Array>(batch, TOPIC_COLUMN)?;
                let partition = column::<Int32Array>(batch, PARTITION_COLUMN)?;
                kept.extend(keep_rows(batch, |r| {
                    !lost.contains(&(topic.value(r), partition.value(r)))
                })?);
            }
            Ok(kept)
        };
        for batches in self.by_day.values_mut() {
            *batches = keep_owned(batches)?;
        }
        self.by_day.retain(|_, batches| !batches.is_empty());
        self.dead_letters = keep_owned(&self.dead_letters)?;
        self.positions.retain(|key, _| !lost.contains(key));
        self.recount();
        Ok(())
    }

    fn recount(&mut self) {
        let batches = self.by_day.values().flatten();
        self.rows = batches.clone().map(RecordBatch::num_rows).sum();
        self.bytes = batches.map(RecordBatch::get_array_memory_size).sum();
    }
}

/// The rows of `batch` for which `keep` holds; `None` when no row is left.
fn keep_rows(batch: &RecordBatch, keep: impl Fn(usize) -> bool) -> CoreResult<Option<RecordBatch>> {
    let rows: Vec<u32> = (0..batch.num_rows())
        .filter(|&r| keep(r))
        .map(|r| r as u32)
        .collect();
    if rows.len() == batch.num_rows() {
        return Ok(Some(batch.clone()));
    }
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(take_record_batch(batch, &UInt32Array::from(rows))?))
}

pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> CoreResult<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| CoreError::Internal(format!("staged rows lack column {name:?}")))
}

/// The schema of the dead-letter table.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(dead_letter_fields()))
}

/// Dead letters as staged: the table's columns plus the internal position columns.
fn staged_dead_letter_schema() -> SchemaRef {
    let mut fields = dead_letter_fields();
    fields.push(Field::new(TOPIC_COLUMN, DataType::UInt16, false));
    fields.push(Field::new(PARTITION_COLUMN, DataType::Int32, false));
    fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

fn dead_letter_fields() -> Vec<Field> {
    vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", utc_millis(), true),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("failed_at", utc_millis(), false),
        Field::new("day", DataType::Utf8, false),
    ]
}

/// Rows staged for the next flush. Shared with the background tasks that fill it.
pub struct StageState {
    pub segment: SegmentData,
    pub staging: Option<Arc<Mutex<Staging>>>,
    /// The last offset consumed per topic-partition (across flushes), so a generation can
    /// record where it continues from.
    consumed: HashMap<PartitionKey, i64>,
    /// Ranges of the rows in memory since the last spill or take.
    pending: HashMap<PartitionKey, GenerationRange>,
}

#[napi]
pub struct Stage {
    pub(crate) spec: Arc<DecodeSpec>,
    pub(crate) state: Arc<Mutex<StageState>>,
}

pub fn lock<T>(mutex: &Mutex<T>) -> CoreResult<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| {
        CoreError::Internal("a previous native call panicked while holding the stage".into())
    })
}

impl Stage {
    pub fn new(spec: DecodeSpec, staging: Option<Staging>) -> Self {
        Self {
            spec: Arc::new(spec),
            state: Arc::new(Mutex::new(StageState {
                segment: SegmentData::default(),
                staging: staging.map(|s| Arc::new(Mutex::new(s))),
                consumed: HashMap::new(),
                pending: HashMap::new(),
            })),
        }
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
        let spec = self.spec.clone();
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
        let mut data = std::mem::take(&mut state.segment);
        // Rows in memory leave with the segment: the next generation continues after them.
        state.pending.clear();
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
            if state.pending.is_empty() {
                return Ok(false);
            }
            let mut staging = lock(&staging)?;
            spill(&mut state.segment, &mut state.pending, &mut staging)?;
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
        let keys = lock(&staging)?.manifest_partitions()?;
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

    /// Records where consumption of newly assigned partitions starts, so that spilled
    /// generations can prove they continue the table.
    #[napi]
    pub fn assigned(&self, starts: Vec<PartitionStartPosition>) -> napi::Result<()> {
        let mut state = lock(&self.state)?;
        for start in starts {
            let key = (start.topic_index as u16, start.partition);
            match start.next_offset {
                Some(next) if next >= 0.0 => state.consumed.insert(key, next as i64 - 1),
                _ => state.consumed.remove(&key),
            };
            state.pending.remove(&key);
        }
        Ok(())
    }

    /// Drops staged rows and positions of partitions this consumer no longer owns.
    #[napi]
    pub fn forget_partitions(&self, lost: Vec<PartitionPosition>) -> napi::Result<()> {
        let lost: Vec<(u16, i32)> = lost
            .iter()
            .map(|p| (p.topic_index as u16, p.partition))
            .collect();
        let mut state = lock(&self.state)?;
        state.segment.forget_partitions(&lost)?;
        for key in &lost {
            state.pending.remove(key);
            state.consumed.remove(key);
        }
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
    let rejected = decoded
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
    let staged = decoded.days.len() as u32;

    let mut guard = lock(state)?;
    let state = &mut *guard;
    for i in 0..messages.len() {
        let key = (messages.topic_indexes[i], messages.partitions[i]);
        let offset = messages.offset(i);
        let last = state.segment.positions.entry(key).or_insert(offset);
        *last = (*last).max(offset);
        let previous = state.consumed.get(&key).copied();
        let range = state.pending.entry(key).or_insert(GenerationRange {
            topic: key.0,
            partition: key.1,
            previous,
            last: offset,
        });
        range.last = range.last.max(offset);
        state
            .consumed
            .insert(key, previous.map_or(offset, |p| p.max(offset)));
    }
    let segment = &mut state.segment;
    for (day, rows) in by_day {
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
            spill(segment, &mut state.pending, &mut staging)?;
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

/// Moves the rows in memory (and dead letters) into a new durable generation.
fn spill(
    segment: &mut SegmentData,
    pending: &mut HashMap<PartitionKey, GenerationRange>,
    staging: &mut Staging,
) -> CoreResult<()> {
    let started = std::time::Instant::now();
    let by_day: Vec<(EpochDay, Vec<RecordBatch>)> =
        std::mem::take(&mut segment.by_day).into_iter().collect();
    let dead_letters = std::mem::take(&mut segment.dead_letters);
    let mut ranges: Vec<GenerationRange> = pending.drain().map(|(_, r)| r).collect();
    ranges.sort_by_key(|r| (r.topic, r.partition));
    let rows = segment.rows;
    let generation = staging.spill(by_day, dead_letters, ranges)?;
    tracing::debug!(
        generation = generation.id,
        rows,
        kept = generation.rows(),
        bytes = generation.bytes(),
        ms = started.elapsed().as_millis() as u64,
        "staged rows spilled to disk"
    );
    segment.rows = 0;
    segment.bytes = 0;
    segment.spilled.push(generation);
    Ok(())
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
    for generation in &found.generations {
        for range in &generation.ranges {
            let key = (range.topic, range.partition);
            let last = segment.positions.entry(key).or_insert(range.last);
            *last = (*last).max(range.last);
            state.consumed.insert(key, *last);
        }
    }
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

fn dead_letter_batch(
    spec: &DecodeSpec,
    messages: &Messages<'_>,
    rejected: &[Rejection],
) -> CoreResult<RecordBatch> {
    let now = chrono::Utc::now();
    let today = now.format("%Y-%m-%d").to_string();
    let idx = |r: &Rejection| r.message_index;
    let topics = &spec.options.topics;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rejected.iter().map(|r| {
            let t = messages.topic_indexes[idx(r)] as usize;
            topics.get(t).map_or("", String::as_str)
        }))),
        Arc::new(Int32Array::from_iter_values(
            rejected.iter().map(|r| messages.partitions[idx(r)]),
        )),
        Arc::new(Int64Array::from_iter_values(
            rejected.iter().map(|r| messages.offset(idx(r))),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter(rejected.iter().map(|r| {
                let ts = messages.timestamps[idx(r)];
                (ts.is_finite() && ts >= 0.0).then_some(ts as i64)
            }))
            .with_timezone("UTC"),
        ),
        Arc::new(BinaryArray::from_iter(
            rejected.iter().map(|r| messages.key(idx(r))),
        )),
        Arc::new(BinaryArray::from_iter(
            rejected.iter().map(|r| Some(messages.payload(idx(r)))),
        )),
        Arc::new(StringArray::from_iter_values(
            rejected.iter().map(|r| r.kind),
        )),
        Arc::new(StringArray::from_iter_values(
            rejected.iter().map(|r| r.detail.as_str()),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(
                rejected.iter().map(|_| now.timestamp_millis()),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            rejected.iter().map(|_| today.as_str()),
        )),
        Arc::new(UInt16Array::from_iter_values(
            rejected.iter().map(|r| messages.topic_indexes[idx(r)]),
        )),
        Arc::new(Int32Array::from_iter_values(
            rejected.iter().map(|r| messages.partitions[idx(r)]),
        )),
        Arc::new(Int64Array::from_iter_values(
            rejected.iter().map(|r| messages.offset(idx(r))),
        )),
    ];
    Ok(RecordBatch::try_new(staged_dead_letter_schema(), columns)?)
}

/// A segment taken from a stage, waiting for its commit.
#[napi]
pub struct StagedSegment {
    pub(crate) data: Arc<Mutex<Option<SegmentData>>>,
}

impl StagedSegment {
    fn new(data: SegmentData) -> Self {
        Self {
            data: Arc::new(Mutex::new(Some(data))),
        }
    }
}

#[napi]
impl StagedSegment {
    /// Rows in the segment, in memory and spilled.
    #[napi(getter)]
    pub fn rows(&self) -> napi::Result<u32> {
        Ok(lock(&self.data)?
            .as_ref()
            .map_or(0, |d| d.rows + d.spilled_rows()) as u32)
    }

    /// Dead letters in the segment.
    #[napi(getter)]
    pub fn dead_letters(&self) -> napi::Result<u32> {
        Ok(lock(&self.data)?
            .as_ref()
            .map_or(0, SegmentData::dead_letter_count) as u32)
    }

    /// The days the segment writes into, as `YYYY-MM-DD`.
    #[napi(getter)]
    pub fn days(&self) -> napi::Result<Vec<String>> {
        Ok(lock(&self.data)?
            .as_ref()
            .map(|d| d.days().into_iter().map(day::format_day).collect())
            .unwrap_or_default())
    }

    /// Rows of the segment that were spilled to disk.
    #[napi(getter)]
    pub fn spilled_rows(&self) -> napi::Result<f64> {
        Ok(lock(&self.data)?
            .as_ref()
            .map_or(0, SegmentData::spilled_rows) as f64)
    }

    /// After the segment's commits: deletes its spill files (the table now holds their rows).
    #[napi]
    pub async fn release(&self) -> napi::Result<()> {
        let data = self.data.clone();
        tokio::task::spawn_blocking(move || -> CoreResult<()> {
            let guard = lock(&data)?;
            let Some(segment) = guard.as_ref() else {
                return Ok(());
            };
            if let Some(staging) = &segment.staging {
                let ids: Vec<u64> = segment.spilled.iter().map(|g| g.id).collect();
                lock(staging)?.release(&ids)?;
            }
            Ok(())
        })
        .await
        .map_err(CoreError::from)??;
        Ok(())
    }

    /// The last offset the segment covers for each topic-partition it holds.
    #[napi]
    pub fn positions(&self) -> napi::Result<Vec<PartitionPosition>> {
        Ok(lock(&self.data)?
            .as_ref()
            .map(SegmentData::position_list)
            .unwrap_or_default())
    }
}
