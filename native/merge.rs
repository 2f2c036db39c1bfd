//! MERGE commits: consolidated rows merged into the table on the merge keys, restricted to the
//! day partitions present in the batch so only those are scanned and rewritten.

use std::ops::Not;
use std::sync::Arc;

use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::prelude::{coalesce, lit, Column, DataFrame, Expr, SessionContext};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::merge::MergeMetrics;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::{DeltaTable, DeltaTableError};
use napi_derive::napi;

use crate::dedup::DedupStrategy;

/// How rows are merged.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    pub keys: Vec<String>,
    pub partition_column: String,
    /// A SQL predicate over the incoming row; matching rows delete their target row and are not
    /// inserted.
    pub delete_when: Option<String>,
    /// How rows were consolidated; decides which of a table row and an incoming row wins.
    pub strategy: DedupStrategy,
    /// The column ordering rows of a key; without it, arrival order (the table's row arrived
    /// before any incoming row).
    pub order_by: Option<String>,
    /// The rows add columns to the table (schema evolution): the MERGE adds them to its schema.
    pub merge_schema: bool,
}

impl MergeSpec {
    /// When an incoming row may replace (or delete) the table's row: the same order the flush's
    /// consolidation used, so a late record with an older version never overwrites a newer one.
    /// `None`: always; `Some(false)`: never (`first` without an order column).
    fn replaces(&self) -> Option<Expr> {
        match (&self.order_by, self.strategy) {
            (None, DedupStrategy::First) => Some(lit(false)),
            (None, _) => None,
            // Nulls order first, as in consolidation.
            (Some(o), DedupStrategy::First) => Some(
                source(o)
                    .is_null()
                    .and(target(o).is_not_null())
                    .or(source(o).lt(target(o))),
            ),
            (Some(o), _) => Some(target(o).is_null().or(source(o).gt_eq(target(o)))),
        }
    }
}

/// What a MERGE did, from delta-rs's merge metrics.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct MergeStats {
    pub rows_inserted: u32,
    pub rows_updated: u32,
    pub rows_deleted: u32,
    /// Unchanged rows rewritten because they share a file with changed ones.
    pub rows_copied: u32,
    /// Files of the table read to find matches.
    pub files_scanned: u32,
    /// Files pruned before the scan.
    pub files_skipped: u32,
    pub files_added: u32,
    pub files_removed: u32,
}

impl From<&MergeMetrics> for MergeStats {
    fn from(m: &MergeMetrics) -> Self {
        let n = |v: usize| v as u32;
        MergeStats {
            rows_inserted: n(m.num_target_rows_inserted),
            rows_updated: n(m.num_target_rows_updated),
            rows_deleted: n(m.num_target_rows_deleted),
            rows_copied: n(m.num_target_rows_copied),
            files_scanned: n(m.num_target_files_scanned),
            files_skipped: n(m.num_target_files_skipped_during_scan),
            files_added: n(m.num_target_files_added),
            files_removed: n(m.num_target_files_removed),
        }
    }
}

const SOURCE: &str = "source";
const TARGET: &str = "target";
/// Carried by change events' rows, or added to the source when `delete_when` is set; never
/// written (it is not a table column).
const DELETE_FLAG: &str = crate::debezium::DELETE_COLUMN;

fn source(name: &str) -> Expr {
    Expr::Column(Column::new(Some(SOURCE), name))
}

fn target(name: &str) -> Expr {
    Expr::Column(Column::new(Some(TARGET), name))
}

/// Merges `rows` (consolidated: one row per key and day, table columns only) into `table` in
/// one commit carrying `properties`. `days`: the partition values the rows hold. The rows are
/// read once, as a stream (see `staged_source.rs` for how the join keeps them off its build
/// side).
pub async fn merge_rows(
    table: &DeltaTable,
    mut rows: DataFrame,
    days: Vec<ScalarValue>,
    spec: &MergeSpec,
    properties: CommitProperties,
    writer: &WriterProperties,
    session: Arc<dyn Session>,
) -> Result<(DeltaTable, MergeStats), DeltaTableError> {
    let columns: Vec<String> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|name| name != DELETE_FLAG)
        .collect();
    let days: Vec<Expr> = days.into_iter().map(lit).collect();
    // Change events bring their own flag (`debezium.rs`); `delete_when` computes one.
    let flagged = rows.schema().has_column_with_unqualified_name(DELETE_FLAG);
    let deleting = match &spec.delete_when {
        Some(sql) => {
            let mut condition = SessionContext::new().parse_sql_expr(sql, rows.schema())?;
            if flagged {
                condition = condition.or(Expr::Column(Column::from_name(DELETE_FLAG)));
            }
            rows = rows.with_column(DELETE_FLAG, coalesce(vec![condition, lit(false)]))?;
            true
        }
        None => flagged,
    };

    // The literal days let delta-rs prune every other partition before it scans.
    let partition = spec.partition_column.as_str();
    let mut predicate = target(partition)
        .in_list(days, false)
        .and(target(partition).eq(source(partition)));
    for key in &spec.keys {
        predicate = predicate.and(target(key).eq(source(key)));
    }

    let updated: Vec<&String> = columns
        .iter()
        .filter(|c| c.as_str() != partition && !spec.keys.contains(c))
        .collect();

    let replaces = spec.replaces();
    let updates = !updated.is_empty() && replaces != Some(lit(false));
    let with_guard = |condition: Option<Expr>| match (condition, replaces.clone()) {
        (Some(c), Some(r)) => Some(c.and(r)),
        (c, r) => c.or(r),
    };
    let mut merge = table
        .clone()
        .merge(rows, predicate)
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_streaming(true)
        .with_merge_schema(spec.merge_schema)
        .with_session_state(session)
        .with_writer_properties(writer.clone())
        .with_commit_properties(properties);
    if deleting {
        let condition = with_guard(Some(source(DELETE_FLAG))).unwrap_or(lit(true));
        merge = merge.when_matched_delete(|delete| delete.predicate(condition))?;
    }
    if updates {
        merge = merge.when_matched_update(|mut update| {
            if let Some(condition) = with_guard(None) {
                update = update.predicate(condition);
            }
            for column in &updated {
                let value = if spec.strategy == DedupStrategy::Merge {
                    coalesce(vec![source(column), target(column)])
                } else {
                    source(column)
                };
                update = update.update(column.as_str(), value);
            }
            update
        })?;
    }
    merge = merge.when_not_matched_insert(|mut insert| {
        if deleting {
            insert = insert.predicate(source(DELETE_FLAG).not());
        }
        for column in &columns {
            insert = insert.set(column.as_str(), source(column));
        }
        insert
    })?;
    let (table, metrics) = merge.await?;
    Ok((table, MergeStats::from(&metrics)))
}

/// Checks that `delete_when` is a boolean SQL predicate over the table's columns, so a typo
/// fails at startup rather than at the first flush.
pub fn check_delete_when(
    schema: &deltalake::arrow::datatypes::Schema,
    sql: &str,
) -> Result<(), String> {
    use deltalake::arrow::datatypes::DataType;
    use deltalake::datafusion::common::DFSchema;
    use deltalake::datafusion::logical_expr::ExprSchemable;

    let df_schema = DFSchema::try_from(schema.clone()).map_err(|e| e.to_string())?;
    let expr = SessionContext::new()
        .parse_sql_expr(sql, &df_schema)
        .map_err(|e| e.to_string())?;
    match expr.get_type(&df_schema).map_err(|e| e.to_string())? {
        DataType::Boolean | DataType::Null => Ok(()),
        other => Err(format!("is of type {other}, not a condition")),
    }
}
