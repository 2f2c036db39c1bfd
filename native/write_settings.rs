//! How a commit writes: the Parquet settings, the DataFusion session, and the share of
//! `buffer.max_memory` a flush's consolidation unit may hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::catalog::Session;
use deltalake::delta_datafusion::DeltaSessionContext;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;

use crate::error::{lock, CoreResult};
use crate::segment::SegmentData;

/// The Parquet settings: delta-rs's (snappy), with row groups closed by size so the writer's
/// in-progress row group (held encoded in memory until it closes, by default up to a million
/// rows) stays within a quarter of the memory budget (4 to 128 MiB). Top-level binary columns
/// (the dead letters' key and payload) get no statistics: Delta's data skipping has no use for
/// them, delta-rs skips them with a WARN on every commit, and their min/max would copy payload
/// bytes into every file footer.
pub fn writer_properties(
    memory_budget: Option<usize>,
    schema: Option<&SchemaRef>,
) -> WriterProperties {
    let row_group_bytes = memory_budget
        .map_or(MAX_ROW_GROUP_BYTES, |m| m / 4)
        .clamp(MIN_ROW_GROUP_BYTES, MAX_ROW_GROUP_BYTES);
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_bytes(Some(row_group_bytes));
    let binary = schema
        .into_iter()
        .flat_map(|s| s.fields().iter())
        .filter(|f| {
            matches!(
                f.data_type(),
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            )
        });
    for field in binary {
        builder = builder.set_column_statistics_enabled(
            ColumnPath::from(field.name().as_str()),
            EnabledStatistics::None,
        );
    }
    builder.build()
}

/// The DataFusion session of every write and MERGE: delta-rs's defaults, with one partition.
/// With more, DataFusion spreads the staged stream round-robin over partitions and delta-rs then
/// hash-repartitions it by the day column; all of a day's rows go to one output, and the
/// repartition keeps queuing them (measured: a 10 M-row single-day INSERT from spill files
/// peaked at ~1.8 GiB while its writer was still on the first file). One partition streams.
pub fn write_session() -> CoreResult<Arc<dyn Session>> {
    let overrides = HashMap::from([(
        "datafusion.execution.target_partitions".to_string(),
        "1".to_string(),
    )]);
    Ok(Arc::new(
        DeltaSessionContext::new_with_session_overrides(&overrides)?.state(),
    ))
}

const MIN_ROW_GROUP_BYTES: usize = 4 * 1024 * 1024;
const MAX_ROW_GROUP_BYTES: usize = 128 * 1024 * 1024;

/// Staged bytes one consolidation unit may hold: a quarter of `buffer.max_memory`, as the unit
/// is held about twice (its rows, then their concatenation and the consolidated output) while
/// the stage fills again up to its budget. Without staging, a day is one unit.
pub fn unit_budget(segment: &Mutex<Option<SegmentData>>) -> CoreResult<u64> {
    Ok(memory_budget(segment)?.map_or(u64::MAX, |m| (m as u64 / 4).max(MIN_UNIT_BYTES)))
}

/// `buffer.max_memory` of the segment's staging; `None` without staging.
pub fn memory_budget(segment: &Mutex<Option<SegmentData>>) -> CoreResult<Option<usize>> {
    let staging = lock(segment)?.as_ref().and_then(|d| d.staging.clone());
    Ok(match staging {
        Some(staging) => Some(lock(&staging)?.max_memory_bytes),
        None => None,
    })
}

const MIN_UNIT_BYTES: u64 = 256 * 1024;
