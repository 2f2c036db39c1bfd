//! The work behind `Stage`'s calls, run off the JavaScript thread: decoding and staging a
//! batch (spilling past the memory cap, or holding on when the staging disk is full), retrying
//! a blocked spill, and recovering spilled rows at start.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use deltalake::arrow::array::{RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;

use crate::day::EpochDay;
use crate::dead_letters::dead_letter_batch;
use crate::decode::{DecodeSpec, Messages};
use crate::error::{lock, CoreResult};
use crate::positions::{batch_last_offsets, PartitionKey, PartitionPosition};
use crate::schema_change::conform;
use crate::segment::SegmentData;
use crate::spill::{Generation, Staging};
use crate::stage::{AppendResult, MessageBatch, RejectedMessage, StageState, StagingRecovery};

pub(crate) fn append_blocking(
    spec_cell: &Mutex<Arc<DecodeSpec>>,
    state: &Mutex<StageState>,
    batch: &MessageBatch,
) -> CoreResult<AppendResult> {
    let messages = Messages {
        payloads: &batch.payloads,
        payload_ends: &batch.payload_ends,
        payload_starts: None,
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
    let spec = lock(spec_cell)?.clone();
    let (decoded, evolved) =
        crate::threads::install(|| crate::evolve::decode_evolving(&spec, &messages))??;
    let spec = match evolved {
        Some(next) => evolve_stage(spec_cell, &spec, state, next)?,
        None => spec,
    };
    crate::metrics::DECODE.record(started.elapsed(), messages.len());
    let by_day = match &decoded.rows {
        Some(rows) => split_by_day(rows, &decoded.days)?,
        None => Vec::new(),
    };
    let dead = if decoded.rejected.is_empty() {
        None
    } else {
        Some(dead_letter_batch(&spec, &messages, &decoded.rejected)?)
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
    let mut filtered = vec![0u32; spec.options.topics.len()];
    for &i in &decoded.filtered {
        let key = (messages.topic_indexes[i], messages.partitions[i]);
        if let Some(count) = filtered
            .get_mut(usize::from(key.0))
            .filter(|_| !unowned.contains(&key))
        {
            *count += 1;
        }
    }
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
        if state.spill_blocked.is_none() && over_memory_cap(segment, &staging) {
            match segment.spill_into(&mut staging, None) {
                Ok(()) => spilled = true,
                Err(err) if err.is_disk_full() => state.spill_blocked = Some(err.to_string()),
                Err(err) => return Err(err),
            }
        }
        spilled_bytes = staging.disk_bytes();
    }
    let segment = &state.segment;
    Ok(AppendResult {
        staged,
        rejected,
        filtered,
        staged_rows: (segment.rows + segment.spilled_rows()) as u32,
        staged_bytes: segment.bytes as f64,
        spilled_rows: segment.spilled_rows() as f64,
        spilled_bytes: spilled_bytes as f64,
        spilled,
        spill_blocked: state.spill_blocked.clone(),
    })
}

/// Installs the spec a batch widened the schema to (unless the schema changed since the batch
/// began: then both changes together) and returns the spec the batch's rows are in.
fn evolve_stage(
    spec_cell: &Mutex<Arc<DecodeSpec>>,
    decoded_with: &Arc<DecodeSpec>,
    state: &Mutex<StageState>,
    next: DecodeSpec,
) -> CoreResult<Arc<DecodeSpec>> {
    let mut spec = lock(spec_cell)?;
    let next = if Arc::ptr_eq(&spec, decoded_with) {
        next
    } else {
        let both = crate::evolve::union(&spec.table_schema, &next.table_schema);
        // The current spec's options: topics may have been added since the batch began.
        DecodeSpec::evolved(Arc::new(both), spec.committed.clone(), spec.options.clone())?
    };
    for path in crate::evolve::added_paths(spec.table_schema.fields(), next.table_schema.fields()) {
        tracing::info!(column = %path, "a new field is staged as a column");
    }
    adopt(&mut spec, state, next)?;
    Ok(spec.clone())
}

/// Makes `next` the stage's spec and brings the rows in memory into its staged schema.
pub(crate) fn adopt(
    spec: &mut Arc<DecodeSpec>,
    state: &Mutex<StageState>,
    next: DecodeSpec,
) -> CoreResult<()> {
    let mut state = lock(state)?;
    let schema = next.staged_schema.clone();
    for batches in state.segment.by_day.values_mut() {
        for batch in batches.iter_mut() {
            *batch = conform(batch.clone(), &schema)?;
        }
    }
    state.schema = schema;
    *spec = Arc::new(next);
    Ok(())
}

/// Whether the rows and dead letters in memory are over the staging's memory cap.
pub(crate) fn over_memory_cap(segment: &SegmentData, staging: &Staging) -> bool {
    let dead_bytes: usize = segment
        .dead_letters
        .iter()
        .map(RecordBatch::get_array_memory_size)
        .sum();
    segment.bytes + dead_bytes > staging.max_memory_bytes
}

/// Tries the spill a full disk stopped again, when the rows in memory are still over the cap.
/// Returns why it is still blocked, or None.
pub(crate) fn retry_spill_blocking(state: &Mutex<StageState>) -> CoreResult<Option<String>> {
    let mut guard = lock(state)?;
    let state = &mut *guard;
    let Some(staging) = state.staging.clone() else {
        return Ok(None);
    };
    let mut staging = lock(&staging)?;
    if state.spill_blocked.is_some() && over_memory_cap(&state.segment, &staging) {
        state.spill_blocked = match state.segment.spill_into(&mut staging, None) {
            Ok(()) => None,
            Err(err) if err.is_disk_full() => Some(err.to_string()),
            Err(err) => return Err(err),
        };
    } else {
        // A flush took the rows meanwhile: nothing is over the cap.
        state.spill_blocked = None;
    }
    Ok(state.spill_blocked.clone())
}

/// A decoded batch: rows by day and the dead letters.
pub(crate) type DecodedParts = (Vec<(EpochDay, RecordBatch)>, Option<RecordBatch>);

/// Rows and dead letters without those of the given partitions.
pub(crate) fn drop_partitions(
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

pub(crate) fn recover_blocking(
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
pub(crate) fn split_by_day(
    rows: &RecordBatch,
    days: &[EpochDay],
) -> CoreResult<Vec<(EpochDay, RecordBatch)>> {
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

/// `Stage.persist`: spills what is in memory, durably, when there is anything and staging.
pub(crate) fn persist_blocking(state: &Mutex<StageState>) -> CoreResult<bool> {
    let mut guard = lock(state)?;
    let state = &mut *guard;
    let Some(staging) = state.staging.clone() else {
        return Ok(false);
    };
    if state.segment.coverage.is_empty() {
        return Ok(false);
    }
    let mut staging = lock(&staging)?;
    match state.segment.spill_into(&mut staging, None) {
        Ok(()) => Ok(true),
        // Not committed, so not lost: the next start reads them from Kafka again.
        Err(err) if err.is_disk_full() => {
            tracing::warn!(error = %err, "staging disk full: rows in memory not persisted; the next start reads them from Kafka");
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// `Stage.forgetPartitions`: drops the partitions from memory, ownership and every generation.
pub(crate) fn forget_blocking(state: &Mutex<StageState>, lost: &[PartitionKey]) -> CoreResult<()> {
    let mut guard = lock(state)?;
    let state = &mut *guard;
    for key in lost {
        state.ownership.forget(key);
    }
    state.segment.forget_partitions(lost)?;
    if let Some(staging) = state.staging.clone() {
        lock(&staging)?.withdraw(&mut state.segment.spilled, lost)?;
    }
    Ok(())
}
