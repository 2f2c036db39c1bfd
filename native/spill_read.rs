//! Reading a segment's rows back for its commit: spilled files (oldest generation first) then
//! the rows still in memory, each with the coverage of the part it comes from, so the commit
//! can keep exactly the rows its windows allow (`positions.rs`). Appends without consolidation
//! stream them into the Delta writer batch by batch, so a flush of a whole day does not need the
//! day in memory; consolidation and MERGE read them a unit of key buckets at a time
//! (`consolidate.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::datasource::provider_as_source;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::streaming::PartitionStream;

use crate::day::EpochDay;
use crate::error::{lock, CoreError, CoreResult};
use crate::positions::{CommitWindows, Coverage};
use crate::segment::SegmentData;
use crate::spill::read_batches;

/// A spilled file of a segment.
pub struct PartFile {
    /// The day of its rows; absent for dead letters.
    pub day: Option<EpochDay>,
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    /// What its generation covers.
    pub coverage: Arc<Coverage>,
}

/// Staged rows read back, with the coverage of the part they come from.
pub type CoveredBatch = (Arc<Coverage>, RecordBatch);

/// One part of a segment (its rows or its dead letters), wherever its rows are.
pub struct SegmentPart {
    /// Spill files, oldest generation first.
    pub files: Vec<PartFile>,
    /// Rows in memory by day; dead letters under no day.
    pub memory: BTreeMap<Option<EpochDay>, Vec<RecordBatch>>,
    /// What the rows in memory cover.
    pub memory_coverage: Arc<Coverage>,
    /// What each spilled generation covers, whether or not it has files of this part (a
    /// generation of dead letters only still covers its offsets for the rows' commit).
    pub generation_coverages: Vec<Arc<Coverage>>,
    /// The staged schema of the table when the commit began: rows staged in an older one (the
    /// table changed under the pipeline) are read into it. Absent: as staged.
    pub schema: Option<SchemaRef>,
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
        let mut generation_coverages = Vec::with_capacity(data.spilled.len());
        if let Some(staging) = &data.staging {
            let staging = lock(staging)?;
            for generation in &data.spilled {
                let coverage = Arc::new(generation.coverage());
                generation_coverages.push(coverage.clone());
                for file in &generation.files {
                    if file.day.is_some() == rows {
                        files.push(PartFile {
                            day: file.day,
                            path: staging.path_of(file),
                            rows: file.rows,
                            bytes: file.bytes,
                            coverage: coverage.clone(),
                        });
                    }
                }
            }
        }
        Ok(Self {
            files,
            memory: BTreeMap::new(),
            memory_coverage: Arc::new(data.coverage.clone()),
            generation_coverages,
            schema: None,
        })
    }

    /// Reads every row into the table's schema of now (`table_schema`), with the delete flag
    /// of change events when `changes`.
    pub fn conform_to(
        &mut self,
        table_schema: &deltalake::arrow::datatypes::Schema,
        changes: bool,
    ) {
        self.schema = Some(crate::schema_change::staged_schema(table_schema, changes));
    }

    /// The table columns of all the part's rows together: spill files keep the staged schema of
    /// their time, so a column added by schema evolution may be in only the later ones.
    pub fn staged_columns(&self) -> CoreResult<deltalake::arrow::datatypes::Schema> {
        let table_part = |schema: &SchemaRef| {
            let fields = schema.fields();
            deltalake::arrow::datatypes::Schema::new(fields[..fields.len() - 3].to_vec())
        };
        // Oldest first: spill files in order, then the rows in memory.
        let mut schemas: Vec<SchemaRef> = Vec::new();
        for file in &self.files {
            let opened = std::fs::File::open(&file.path).map_err(|e| {
                CoreError::Staging(format!("cannot open {}: {e}", file.path.display()))
            })?;
            schemas
                .push(deltalake::arrow::ipc::reader::FileReader::try_new(opened, None)?.schema());
        }
        schemas.extend(
            self.memory
                .values()
                .flatten()
                .next()
                .map(RecordBatch::schema),
        );
        // A staged schema only grows and widens: the newer one's types win.
        let mut schemas = schemas.iter().rev().map(table_part);
        let newest = schemas
            .next()
            .ok_or_else(|| CoreError::Internal("a segment part without rows".into()))?;
        Ok(schemas.fold(newest, |all, older| crate::evolve::union(&all, &older)))
    }

    /// A staged batch in the schema this part is read in.
    pub fn conformed(&self, batch: RecordBatch) -> CoreResult<RecordBatch> {
        match &self.schema {
            Some(schema) => crate::schema_change::conform(batch, schema),
            None => Ok(batch),
        }
    }

    /// The coverages of every part (to plan the commit's windows).
    pub fn coverages(&self) -> Vec<&Coverage> {
        let mut parts: Vec<&Coverage> = self.generation_coverages.iter().map(Arc::as_ref).collect();
        parts.push(self.memory_coverage.as_ref());
        parts
    }

    pub fn total_rows(&self) -> usize {
        let on_disk: u64 = self.files.iter().map(|f| f.rows).sum();
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

    /// The days the part holds rows of (for dead letters, `None`), ascending.
    pub fn days(&self) -> Vec<Option<EpochDay>> {
        let mut days: Vec<Option<EpochDay>> = self.files.iter().map(|f| f.day).collect();
        days.extend(
            self.memory
                .iter()
                .filter(|(_, b)| b.iter().any(|b| b.num_rows() > 0))
                .map(|(d, _)| *d),
        );
        days.sort_unstable();
        days.dedup();
        days
    }

    /// Approximate Arrow bytes of every row (spilled files count their size on disk).
    pub fn total_bytes(&self) -> usize {
        let on_disk: u64 = self.files.iter().map(|f| f.bytes).sum();
        let in_memory: usize = self
            .memory
            .values()
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        on_disk as usize + in_memory
    }

    /// The table's columns: the staged schema without the internal position columns.
    pub fn table_schema(&self) -> CoreResult<SchemaRef> {
        let staged_schema = self.staged_schema()?;
        let fields = staged_schema.fields();
        Ok(Arc::new(deltalake::arrow::datatypes::Schema::new(
            fields[..fields.len() - 3].to_vec(),
        )))
    }

    /// The value of `column` for each day of the part (from its first row), for a MERGE's
    /// partition filter.
    pub fn day_values(&self, column: &str) -> CoreResult<Vec<ScalarValue>> {
        let mut values = Vec::new();
        for day in self.days() {
            let in_memory = self
                .memory
                .get(&day)
                .into_iter()
                .flatten()
                .find(|b| b.num_rows() > 0)
                .cloned();
            let first = match in_memory {
                Some(batch) => Some(batch),
                None => self.first_spilled(day)?,
            };
            if let Some(batch) = first {
                let index = batch.schema().index_of(column)?;
                values.push(ScalarValue::try_from_array(batch.column(index), 0)?);
            }
        }
        Ok(values)
    }

    fn first_spilled(&self, day: Option<EpochDay>) -> CoreResult<Option<RecordBatch>> {
        for file in self.files.iter().filter(|f| f.day == day && f.rows > 0) {
            for batch in read_batches(&file.path)? {
                let batch = batch?;
                if batch.num_rows() > 0 {
                    return Ok(Some(batch));
                }
            }
        }
        Ok(None)
    }

    /// Every row, grouped by day (spilled rows of a day before its rows in memory).
    pub fn read_by_day(&self) -> CoreResult<Vec<Vec<CoveredBatch>>> {
        let mut by_day: BTreeMap<Option<EpochDay>, Vec<CoveredBatch>> = BTreeMap::new();
        for file in &self.files {
            let batches = by_day.entry(file.day).or_default();
            for batch in read_batches(&file.path)? {
                batches.push((file.coverage.clone(), self.conformed(batch?)?));
            }
        }
        for (day, batches) in &self.memory {
            let batches = batches
                .iter()
                .map(|b| Ok((self.memory_coverage.clone(), self.conformed(b.clone())?)))
                .collect::<CoreResult<Vec<_>>>()?;
            by_day.entry(*day).or_default().extend(batches);
        }
        Ok(by_day.into_values().filter(|b| !b.is_empty()).collect())
    }

    /// A plan that streams the rows the windows keep, without the internal position columns;
    /// `written` counts them as they pass.
    pub fn streaming_plan(
        &self,
        windows: Arc<CommitWindows>,
        written: Arc<AtomicUsize>,
    ) -> CoreResult<LogicalPlan> {
        let schema = self.table_schema()?;
        let source = SpilledRows {
            schema: schema.clone(),
            staged: self.schema.clone(),
            files: self
                .files
                .iter()
                .map(|f| (f.path.clone(), f.coverage.clone()))
                .collect(),
            memory: self
                .memory
                .values()
                .flatten()
                .map(|b| (self.memory_coverage.clone(), b.clone()))
                .collect(),
            windows,
            written,
        };
        let table = StreamingTable::try_new(schema, vec![Arc::new(source)])?;
        Ok(
            LogicalPlanBuilder::scan("staged_rows", provider_as_source(Arc::new(table)), None)?
                .build()?,
        )
    }

    fn staged_schema(&self) -> CoreResult<SchemaRef> {
        if let Some(schema) = &self.schema {
            return Ok(schema.clone());
        }
        if let Some(batch) = self.memory.values().flatten().next() {
            return Ok(batch.schema());
        }
        let file = self
            .files
            .first()
            .ok_or_else(|| CoreError::Internal("streaming an empty segment".into()))?;
        let opened = std::fs::File::open(&file.path)
            .map_err(|e| CoreError::Staging(format!("cannot open {}: {e}", file.path.display())))?;
        let reader = deltalake::arrow::ipc::reader::FileReader::try_new(opened, None)?;
        Ok(reader.schema())
    }
}

/// Spilled files then in-memory batches, read lazily each time DataFusion executes the scan.
#[derive(Debug)]
struct SpilledRows {
    schema: SchemaRef,
    /// The staged schema rows are read into (see `SegmentPart::schema`).
    staged: Option<SchemaRef>,
    files: Vec<(PathBuf, Arc<Coverage>)>,
    memory: Vec<CoveredBatch>,
    windows: Arc<CommitWindows>,
    written: Arc<AtomicUsize>,
}

impl PartitionStream for SpilledRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        self.written.store(0, Ordering::Relaxed);
        let windows = self.windows.clone();
        let written = self.written.clone();
        let from_files = self.files.clone().into_iter().flat_map(|(path, coverage)| {
            let batches: Box<dyn Iterator<Item = CoreResult<CoveredBatch>> + Send> =
                match read_batches(&path) {
                    Ok(reader) => Box::new(reader.map(move |b| b.map(|b| (coverage.clone(), b)))),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                };
            batches
        });
        let all = from_files.chain(self.memory.clone().into_iter().map(Ok));
        let staged = self.staged.clone();
        let conformed = all.map(move |batch| match &staged {
            Some(schema) => {
                batch.and_then(|(c, b)| Ok((c, crate::schema_change::conform(b, schema)?)))
            }
            None => batch,
        });
        let fresh = conformed.filter_map(move |batch| {
            let kept = batch.and_then(|(coverage, b)| windows.select(&coverage, &b));
            match kept {
                Ok(kept) => kept.map(|b| {
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
