//! Reading a segment's rows back for its commit: spilled files (oldest generation first) then
//! the rows still in memory. Appends without consolidation stream them into the Delta writer
//! batch by batch, so a flush of a whole day does not need the day in memory; consolidation
//! and MERGE need every row of a day at once and read them into memory.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::datasource::provider_as_source;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::streaming::PartitionStream;

use crate::day::EpochDay;
use crate::error::{CoreError, CoreResult};
use crate::segment::SegmentData;
use crate::spill::{read_batches, PartitionKey};
use crate::write::uncommitted_rows;

/// One part of a segment (its rows or its dead letters), wherever its rows are.
pub struct SegmentPart {
    /// Spill files with the day of their rows (absent for dead letters), oldest first.
    pub files: Vec<(Option<EpochDay>, PathBuf, u64)>,
    /// Rows in memory by day; dead letters under no day.
    pub memory: BTreeMap<Option<EpochDay>, Vec<RecordBatch>>,
    /// Rows consolidated away while spilling.
    pub spilled_deduplicated: usize,
}

impl SegmentPart {
    /// The rows part of a segment.
    pub fn rows(data: &SegmentData) -> CoreResult<Self> {
        let mut part = Self::files_of(data, true)?;
        part.memory = data
            .by_day
            .iter()
            .map(|(&day, batches)| (Some(day), batches.clone()))
            .collect();
        part.spilled_deduplicated = data.spilled_deduplicated();
        Ok(part)
    }

    /// The dead-letters part of a segment.
    pub fn dead_letters(data: &SegmentData) -> CoreResult<Self> {
        let mut part = Self::files_of(data, false)?;
        part.memory.insert(None, data.dead_letters.clone());
        Ok(part)
    }

    fn files_of(data: &SegmentData, rows: bool) -> CoreResult<Self> {
        let mut files = Vec::new();
        if let Some(staging) = &data.staging {
            let staging = crate::stage::lock(staging)?;
            for file in data.spilled.iter().flat_map(|g| &g.files) {
                if file.day.is_some() == rows {
                    files.push((file.day, staging.path_of(file), file.rows));
                }
            }
        }
        Ok(Self {
            files,
            memory: BTreeMap::new(),
            spilled_deduplicated: 0,
        })
    }

    pub fn total_rows(&self) -> usize {
        let on_disk: u64 = self.files.iter().map(|f| f.2).sum();
        let in_memory: usize = self
            .memory
            .values()
            .flatten()
            .map(RecordBatch::num_rows)
            .sum();
        on_disk as usize + in_memory
    }

    pub fn has_files(&self) -> bool {
        !self.files.is_empty()
    }

    /// Every row, grouped by day (spilled rows of a day before its rows in memory).
    pub fn read_by_day(&self) -> CoreResult<Vec<Vec<RecordBatch>>> {
        let mut by_day: BTreeMap<Option<EpochDay>, Vec<RecordBatch>> = BTreeMap::new();
        for (day, path, _) in &self.files {
            let batches = by_day.entry(*day).or_default();
            for batch in read_batches(path)? {
                batches.push(batch?);
            }
        }
        for (day, batches) in &self.memory {
            by_day
                .entry(*day)
                .or_default()
                .extend(batches.iter().cloned());
        }
        Ok(by_day.into_values().filter(|b| !b.is_empty()).collect())
    }

    /// A plan that streams the rows the table does not hold yet (per `recorded`) without the
    /// internal position columns; `written` counts them as they pass.
    pub fn streaming_plan(
        &self,
        recorded: HashMap<PartitionKey, i64>,
        written: Arc<AtomicUsize>,
    ) -> CoreResult<LogicalPlan> {
        let staged_schema = self.staged_schema()?;
        let fields = staged_schema.fields();
        let schema: SchemaRef = Arc::new(deltalake::arrow::datatypes::Schema::new(
            fields[..fields.len() - 3].to_vec(),
        ));
        let source = SpilledRows {
            schema: schema.clone(),
            files: self.files.iter().map(|f| f.1.clone()).collect(),
            memory: self.memory.values().flatten().cloned().collect(),
            recorded: Arc::new(recorded),
            written,
        };
        let table = StreamingTable::try_new(schema, vec![Arc::new(source)])?;
        Ok(
            LogicalPlanBuilder::scan("staged_rows", provider_as_source(Arc::new(table)), None)?
                .build()?,
        )
    }

    fn staged_schema(&self) -> CoreResult<SchemaRef> {
        if let Some(batch) = self.memory.values().flatten().next() {
            return Ok(batch.schema());
        }
        let (_, path, _) = self
            .files
            .first()
            .ok_or_else(|| CoreError::Internal("streaming an empty segment".into()))?;
        let file = std::fs::File::open(path)
            .map_err(|e| CoreError::Staging(format!("cannot open {}: {e}", path.display())))?;
        let reader = deltalake::arrow::ipc::reader::FileReader::try_new(file, None)?;
        Ok(reader.schema())
    }
}

/// Spilled files then in-memory batches, read lazily each time DataFusion executes the scan.
#[derive(Debug)]
struct SpilledRows {
    schema: SchemaRef,
    files: Vec<PathBuf>,
    memory: Vec<RecordBatch>,
    recorded: Arc<HashMap<PartitionKey, i64>>,
    written: Arc<AtomicUsize>,
}

impl PartitionStream for SpilledRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        self.written.store(0, Ordering::Relaxed);
        let recorded = self.recorded.clone();
        let written = self.written.clone();
        let from_files = self.files.clone().into_iter().flat_map(|path| {
            let batches: Box<dyn Iterator<Item = CoreResult<RecordBatch>> + Send> =
                match read_batches(&path) {
                    Ok(reader) => Box::new(reader),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                };
            batches
        });
        let all = from_files.chain(self.memory.clone().into_iter().map(Ok));
        let fresh = all.filter_map(move |batch| {
            let recorded_for = |key: &PartitionKey| recorded.get(key).copied();
            let kept = batch.and_then(|b| uncommitted_rows(&[b], &recorded_for));
            match kept {
                Ok(mut batches) => batches.pop().map(|b| {
                    written.fetch_add(b.num_rows(), Ordering::Relaxed);
                    Ok(b)
                }),
                Err(e) => Some(Err(DataFusionError::External(Box::new(e)))),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(fresh),
        ))
    }
}
