//! The flush's consolidated rows as a DataFusion table for a MERGE's source: streamed unit by
//! unit (`consolidate.rs`), and reporting their estimated size. A streamed source has no
//! statistics of its own, and DataFusion's hash join then keeps it on the build side, holding
//! every staged row in memory; with its size known, the join builds on the smaller side (the
//! table's rows of the flushed days, often none) and the staged rows flow through it.

use std::sync::Arc;

use async_trait::async_trait;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::stats::Precision;
use deltalake::datafusion::common::tree_node::TreeNodeRecursion;
use deltalake::datafusion::common::Result;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::logical_expr::{Expr, TableType};
use deltalake::datafusion::physical_plan::{
    ChildStats, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr,
    PlanProperties, ReplaceChildrenOptions, Statistics, StatisticsArgs,
};

/// A streaming table with a known (estimated) size.
#[derive(Debug)]
pub struct SizedTable {
    inner: StreamingTable,
    rows: usize,
    bytes: usize,
}

impl SizedTable {
    pub fn new(inner: StreamingTable, rows: usize, bytes: usize) -> Self {
        Self { inner, rows, bytes }
    }
}

#[async_trait]
impl TableProvider for SizedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = self.inner.scan(state, projection, filters, limit).await?;
        Ok(Arc::new(SizedExec {
            input,
            rows: self.rows,
            bytes: self.bytes,
        }))
    }
}

/// Passes its input through and reports its size as inexact statistics.
#[derive(Debug)]
struct SizedExec {
    input: Arc<dyn ExecutionPlan>,
    rows: usize,
    bytes: usize,
}

impl DisplayAs for SizedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "SizedExec: rows≈{}, bytes≈{}", self.rows, self.bytes)
    }
}

impl ExecutionPlan for SizedExec {
    fn name(&self) -> &'static str {
        "SizedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.into_iter().next() {
            Some(input) => Ok(Arc::new(SizedExec {
                input,
                rows: self.rows,
                bytes: self.bytes,
            })),
            None => Ok(self),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn child_stats_requests(&self, _partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::Skip]
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let stats = Statistics::new_unknown(&self.schema())
            .with_num_rows(Precision::Inexact(self.rows))
            .with_total_byte_size(Precision::Inexact(self.bytes));
        Ok(Arc::new(stats))
    }
}
