//! Staging: decoded rows held per target day until a flush, with the Kafka positions they cover
//! and the messages rejected on the way.

use std::sync::{Arc, Mutex};

use deltalake::arrow::datatypes::SchemaRef;
use napi::bindgen_prelude::{
    Buffer, Float64Array, Int32Array as JsInt32Array, PromiseRaw, Uint16Array, Uint32Array,
    Uint8Array,
};
use napi::Env;
use napi_derive::napi;

use crate::decode::DecodeSpec;
use crate::error::{lock, off_thread, CoreError, CoreResult};
use crate::js_error::{spawn, OrThrow};
use crate::positions::{Ownership, PartitionKey, PartitionPosition, PartitionStartPosition};
use crate::schema_change::added_columns;
use crate::segment::{SegmentData, StagedSegment};
use crate::spill::Staging;
use crate::stage_work::{
    adopt, append_blocking, forget_blocking, persist_blocking, recover_blocking,
    retry_spill_blocking,
};

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
    /// Messages `transform.filter` dropped, by topic index (their positions advance all the same).
    pub filtered: Vec<u32>,
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
    /// Set while the rows over the memory cap cannot be spilled because the staging disk is
    /// full: the reason. They stay in memory; stop consuming and call `retrySpill`.
    pub spill_blocked: Option<String>,
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
    pub(crate) ownership: Ownership,
    /// The staged schema of the rows in memory: a batch decoded with an older spec (in flight
    /// while `follow_schema` changed it) is brought into it, so every spill file has one schema.
    pub(crate) schema: SchemaRef,
    /// Why the last spill failed on a full disk; appends do not try again until `retry_spill`.
    pub(crate) spill_blocked: Option<String>,
}

#[napi]
pub struct Stage {
    /// How messages are decoded; replaced when the table's schema changes (`follow_schema`).
    pub(crate) spec: Arc<Mutex<Arc<DecodeSpec>>>,
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
                spill_blocked: None,
            })),
            spec: Arc::new(Mutex::new(Arc::new(spec))),
        }
    }

    /// Decodes with `table_schema` from now on (another writer changed the table) and brings
    /// the rows in memory into it; returns the columns added. Spilled rows keep their schema
    /// until a commit reads them (`schema_change.rs`).
    pub fn follow(&self, table_schema: SchemaRef) -> CoreResult<Vec<String>> {
        let mut spec = lock(&self.spec)?;
        // Columns this stage added that no commit has written yet stay in the schema it
        // decodes with (`evolve.rs`).
        let decoding = if spec.options.add_columns {
            Arc::new(crate::evolve::union(&table_schema, &spec.table_schema))
        } else {
            table_schema.clone()
        };
        if spec.table_schema.fields() == decoding.fields()
            && spec.committed.fields() == table_schema.fields()
        {
            return Ok(Vec::new());
        }
        let added = added_columns(&spec.table_schema, &decoding);
        let next = DecodeSpec::evolved(decoding, table_schema, spec.options.clone())?;
        adopt(&mut spec, &self.state, next)?;
        Ok(added)
    }

    /// Settles the types of the columns schema evolution added: the rows taken now carry them
    /// into the table, so from here on a record of another type is a dead letter.
    fn settle_pending(&self) -> CoreResult<bool> {
        let mut spec = lock(&self.spec)?;
        if spec.options.add_columns && spec.committed.fields() != spec.table_schema.fields() {
            let settled = DecodeSpec::new(spec.table_schema.clone(), spec.options.clone())?;
            *spec = Arc::new(settled);
        }
        Ok(spec.options.add_columns)
    }

    fn extend_topics(&self, names: &[String]) -> CoreResult<Vec<String>> {
        let mut spec = lock(&self.spec)?;
        let mut options = spec.options.clone();
        crate::spill::append_missing(&mut options.topics, names);
        if options.topics.len() == spec.options.topics.len() {
            return Ok(options.topics);
        }
        if options.topics.len() > usize::from(u16::MAX) + 1 {
            return Err(CoreError::InvalidArgument(format!(
                "a stage consumes at most {} topics",
                usize::from(u16::MAX) + 1
            )));
        }
        // Decoding first: a batch of a new topic is appended only after this returns, and the
        // manifest written with its rows must name it.
        let next = DecodeSpec::evolved(
            spec.table_schema.clone(),
            spec.committed.clone(),
            options.clone(),
        )?;
        *spec = Arc::new(next);
        if let Some(staging) = self.staging()? {
            lock(&staging)?.add_topics(&options.topics);
        }
        Ok(options.topics)
    }

    fn staging(&self) -> CoreResult<Option<Arc<Mutex<Staging>>>> {
        Ok(lock(&self.state)?.staging.clone())
    }
}

#[napi]
impl Stage {
    /// Decodes a batch of messages (in parallel, off the JavaScript thread) and stages its rows
    /// by day. Rejected messages are staged for the dead-letter table and reported back.
    #[napi(ts_return_type = "Promise<AppendResult>")]
    pub fn append<'env>(
        &self,
        env: &'env Env,
        batch: MessageBatch,
    ) -> napi::Result<PromiseRaw<'env, AppendResult>> {
        let spec = self.spec.clone();
        let state = self.state.clone();
        spawn(
            env,
            off_thread(move || append_blocking(&spec, &state, &batch)),
        )
    }

    /// Takes everything staged so far, leaving the stage empty for the batches that follow.
    #[napi(catch_unwind)]
    pub fn take(&self, env: &Env) -> napi::Result<StagedSegment> {
        let add_columns = self.settle_pending().or_throw(env)?;
        let changes = lock(&self.spec).or_throw(env)?.options.changes;
        let mut state = lock(&self.state).or_throw(env)?;
        // Rows in memory leave with the segment, with their coverage: the next part continues
        // after them (the ownership keeps how far each partition was read).
        let mut data = std::mem::take(&mut state.segment);
        data.staging = state.staging.clone();
        data.add_columns = add_columns;
        data.changes = changes;
        Ok(StagedSegment::new(data))
    }

    /// Gives up the staging directory once the pipeline is done with the stage, so that a
    /// stage opened after it (a restart within the process) can take it. Rows staged later
    /// stay in memory.
    #[napi(catch_unwind)]
    pub fn close(&self, env: &Env) -> napi::Result<()> {
        let staging = lock(&self.state).or_throw(env)?.staging.take();
        if let Some(staging) = staging {
            lock(&staging).or_throw(env)?.close();
        }
        Ok(())
    }

    /// Spills the rows in memory to disk now, durably (a stop that leaves them for the next
    /// scheduled flush). Returns whether anything was written; without staging, nothing is.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn persist<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, bool>> {
        let state = self.state.clone();
        spawn(env, off_thread(move || persist_blocking(&state)))
    }

    /// After an append reported `spillBlocked` (a full staging disk): spills the rows over the
    /// memory cap now if there is room again. Returns why it is still blocked, or null.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn retry_spill<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let state = self.state.clone();
        spawn(env, off_thread(move || retry_spill_blocking(&state)))
    }

    /// Topic-partitions the staging directory holds rows for (look up their recorded
    /// positions in the table, then call `recover`).
    #[napi(catch_unwind)]
    pub fn staging_partitions(&self, env: &Env) -> napi::Result<Vec<PartitionPosition>> {
        let Some(staging) = self.staging().or_throw(env)? else {
            return Ok(Vec::new());
        };
        let keys = lock(&staging).or_throw(env)?.manifest_partitions();
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
    #[napi(ts_return_type = "Promise<StagingRecovery>")]
    pub fn recover<'env>(
        &self,
        env: &'env Env,
        recorded: Vec<PartitionPosition>,
    ) -> napi::Result<PromiseRaw<'env, StagingRecovery>> {
        let state = self.state.clone();
        spawn(env, off_thread(move || recover_blocking(&state, &recorded)))
    }

    /// Takes ownership of newly assigned partitions and records where their consumption
    /// starts, so that every staged part can prove it continues the table. Messages of
    /// partitions not assigned are never staged.
    #[napi(catch_unwind)]
    pub fn assigned(&self, env: &Env, starts: Vec<PartitionStartPosition>) -> napi::Result<()> {
        let mut state = lock(&self.state).or_throw(env)?;
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
    #[napi(ts_return_type = "Promise<void>")]
    pub fn forget_partitions<'env>(
        &self,
        env: &'env Env,
        lost: Vec<PartitionPosition>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let lost: Vec<PartitionKey> = lost
            .iter()
            .map(|p| (p.topic_index as u16, p.partition))
            .collect();
        let state = self.state.clone();
        spawn(env, off_thread(move || forget_blocking(&state, &lost)))
    }

    /// The topics messages refer to by index (`MessageBatch.topicIndexes`): the configured
    /// ones, or with `topicsGrow` those the staging directory's rows refer to, then the rest.
    #[napi(getter, catch_unwind)]
    pub fn topics(&self, env: &Env) -> napi::Result<Vec<String>> {
        Ok(lock(&self.spec).or_throw(env)?.options.topics.clone())
    }

    /// Appends topics a pattern subscription found (the ones listed already are ignored);
    /// returns the whole list, whose indexes stay as they were.
    #[napi(catch_unwind)]
    pub fn add_topics(&self, env: &Env, names: Vec<String>) -> napi::Result<Vec<String>> {
        self.extend_topics(&names).or_throw(env)
    }

    /// Rows staged now, in memory and spilled to disk.
    #[napi(getter, catch_unwind)]
    pub fn staged_rows(&self, env: &Env) -> napi::Result<f64> {
        let state = lock(&self.state).or_throw(env)?;
        Ok((state.segment.rows + state.segment.spilled_rows()) as f64)
    }

    /// Rows of this stage spilled to disk (not those of a flush in flight).
    #[napi(getter, catch_unwind)]
    pub fn spilled_rows(&self, env: &Env) -> napi::Result<f64> {
        Ok(lock(&self.state).or_throw(env)?.segment.spilled_rows() as f64)
    }

    /// Bytes of spill files not yet released, including those of a flush in flight.
    #[napi(getter, catch_unwind)]
    pub fn spilled_bytes(&self, env: &Env) -> napi::Result<f64> {
        let Some(staging) = self.staging().or_throw(env)? else {
            return Ok(0.0);
        };
        let bytes = lock(&staging).or_throw(env)?.disk_bytes();
        Ok(bytes as f64)
    }

    /// Approximate Arrow memory staged now, in bytes.
    #[napi(getter, catch_unwind)]
    pub fn staged_bytes(&self, env: &Env) -> napi::Result<f64> {
        Ok(lock(&self.state).or_throw(env)?.segment.bytes as f64)
    }
}
