//! `verify`'s scan of a table's Kafka coordinates (the `delta.kafka_metadata` topic, partition
//! and offset columns): offsets held by more than one row, and offsets missing between the first
//! and last of each partition that the dead-letter table does not account for either. One
//! DataFusion query each over the newest version; only the coordinate columns are read.

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Int32Type, Int64Type};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use napi_derive::napi;

use crate::error::{CoreError, CoreResult};

/// Where a table keeps the Kafka coordinates of its rows.
#[napi(object)]
#[derive(Clone)]
pub struct OffsetColumns {
    /// The topic column; absent when the table holds one topic, named by `topic`.
    pub topic_column: Option<String>,
    /// The topic of every row when there is no topic column.
    pub topic: Option<String>,
    pub partition_column: String,
    pub offset_column: String,
}

/// One topic-partition's offsets in the table (with the dead letters').
#[napi(object)]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: i32,
    pub first: f64,
    pub last: f64,
    /// Distinct offsets held.
    pub offsets: f64,
}

/// An offset more than one row holds.
#[napi(object)]
pub struct DuplicateOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: f64,
    pub rows: u32,
}

/// Offsets `from..=to` of a partition that neither table holds.
#[napi(object)]
pub struct OffsetGap {
    pub topic: String,
    pub partition: i32,
    pub from: f64,
    pub to: f64,
}

/// What the scan found; the lists hold at most `limit` entries each, the counts all.
#[napi(object)]
pub struct OffsetAudit {
    pub partitions: Vec<PartitionOffsets>,
    pub duplicates: Vec<DuplicateOffset>,
    pub duplicate_count: f64,
    pub gaps: Vec<OffsetGap>,
    pub gap_count: f64,
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `(topic, partition, offset)` of every row of `table`, as SQL.
fn coordinates(table: &str, columns: &OffsetColumns) -> CoreResult<String> {
    let topic = match (&columns.topic_column, &columns.topic) {
        (Some(column), _) => format!("CAST({} AS VARCHAR)", quoted(column)),
        (None, Some(topic)) => literal(topic),
        (None, None) => {
            return Err(CoreError::InvalidArgument(
                "verify needs a topic column, or the one topic the table holds".into(),
            ))
        }
    };
    // Rows without coordinates (written by another writer) are not Kafka's to account for.
    let (p, o) = (
        quoted(&columns.partition_column),
        quoted(&columns.offset_column),
    );
    Ok(format!(
        "SELECT {topic} AS tp, CAST({p} AS INT) AS p, CAST({o} AS BIGINT) AS o FROM {table} \
         WHERE {p} IS NOT NULL AND {o} IS NOT NULL"
    ))
}

/// Scans the table (and the dead-letter table, whose rows fill gaps) for duplicate and missing
/// offsets.
pub async fn audit_offsets(
    table: &DeltaTable,
    columns: &OffsetColumns,
    dead_letters: Option<&DeltaTable>,
    limit: u32,
) -> CoreResult<OffsetAudit> {
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    ctx.register_table("target", table.table_provider().await?)?;
    let rows = coordinates("target", columns)?;
    // Offsets either table holds, in the partitions the target holds.
    let held = match dead_letters {
        Some(dead) => {
            ctx.register_table("dead_letters", dead.table_provider().await?)?;
            format!(
                "SELECT DISTINCT h.tp, h.p, h.o FROM ({rows} UNION ALL SELECT CAST(topic AS VARCHAR), \
                 CAST(\"partition\" AS INT), CAST(\"offset\" AS BIGINT) FROM dead_letters) h \
                 JOIN (SELECT DISTINCT tp, p FROM ({rows})) r ON h.tp = r.tp AND h.p = r.p"
            )
        }
        None => format!("SELECT DISTINCT tp, p, o FROM ({rows})"),
    };
    let duplicates = ctx
        .sql(&format!(
            "SELECT tp, p, o, CAST(COUNT(*) AS BIGINT) AS n FROM ({rows}) GROUP BY tp, p, o \
             HAVING COUNT(*) > 1 ORDER BY tp, p, o"
        ))
        .await?
        .collect()
        .await?;
    let gaps = ctx
        .sql(&format!(
            "SELECT tp, p, prev + 1 AS gap_from, o - 1 AS gap_to FROM (SELECT tp, p, o, \
             LAG(o) OVER (PARTITION BY tp, p ORDER BY o) AS prev FROM ({held})) \
             WHERE o - prev > 1 ORDER BY tp, p, gap_from"
        ))
        .await?
        .collect()
        .await?;
    let ranges = ctx
        .sql(&format!(
            "SELECT tp, p, MIN(o), MAX(o), CAST(COUNT(*) AS BIGINT) FROM ({held}) \
             GROUP BY tp, p ORDER BY tp, p"
        ))
        .await?
        .collect()
        .await?;
    let limit = limit as usize;
    let mut audit = OffsetAudit {
        partitions: Vec::new(),
        duplicates: Vec::new(),
        duplicate_count: 0.0,
        gaps: Vec::new(),
        gap_count: 0.0,
    };
    for_each_row(&ranges, |tp, p, [first, last, offsets]| {
        audit.partitions.push(PartitionOffsets {
            topic: tp.to_string(),
            partition: p,
            first: first as f64,
            last: last as f64,
            offsets: offsets as f64,
        })
    })?;
    let mut duplicate_list = Vec::new();
    audit.duplicate_count = for_each_limited(
        &duplicates,
        limit,
        &mut duplicate_list,
        |tp, p, [offset, rows, _]| DuplicateOffset {
            topic: tp.to_string(),
            partition: p,
            offset: offset as f64,
            rows: rows as u32,
        },
    )?;
    audit.duplicates = duplicate_list;
    let mut gap_list = Vec::new();
    audit.gap_count = for_each_limited(&gaps, limit, &mut gap_list, |tp, p, [from, to, _]| {
        OffsetGap {
            topic: tp.to_string(),
            partition: p,
            from: from as f64,
            to: to as f64,
        }
    })?;
    audit.gaps = gap_list;
    Ok(audit)
}

/// Keeps the first `limit` rows as `make` builds them; returns how many rows there were.
fn for_each_limited<T>(
    batches: &[RecordBatch],
    limit: usize,
    kept: &mut Vec<T>,
    make: impl Fn(&str, i32, [i64; 3]) -> T,
) -> CoreResult<f64> {
    let mut count = 0.0;
    for_each_row(batches, |tp, p, values| {
        count += 1.0;
        if kept.len() < limit {
            kept.push(make(tp, p, values));
        }
    })?;
    Ok(count)
}

/// Calls `each(topic, partition, [the following integer columns, 0 past the last])` per row.
fn for_each_row(
    batches: &[RecordBatch],
    mut each: impl FnMut(&str, i32, [i64; 3]),
) -> CoreResult<()> {
    for batch in batches {
        let topics = cast(batch.column(0), &DataType::Utf8)?;
        let partitions = cast(batch.column(1), &DataType::Int32)?;
        let numbers = (2..batch.num_columns().min(5))
            .map(|i| cast(batch.column(i), &DataType::Int64))
            .collect::<Result<Vec<_>, _>>()?;
        let (topics, partitions) = (
            topics.as_string::<i32>(),
            partitions.as_primitive::<Int32Type>(),
        );
        for row in 0..batch.num_rows() {
            if topics.is_null(row) || partitions.is_null(row) {
                continue;
            }
            let mut values = [0i64; 3];
            for (slot, column) in values.iter_mut().zip(&numbers) {
                *slot = column.as_primitive::<Int64Type>().value(row);
            }
            each(topics.value(row), partitions.value(row), values);
        }
    }
    Ok(())
}
