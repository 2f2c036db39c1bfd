//! `transform`: a SQL filter and derived columns, evaluated natively on each decoded chunk.
//!
//! The expressions read the table's columns as decoded from the JSON plus the message's Kafka
//! context (`kafka_topic`, `kafka_partition`, `kafka_offset`, `kafka_timestamp`, `kafka_key`,
//! `kafka_headers`).
//! They are parsed and planned once per stage with DataFusion and evaluated per chunk on the
//! decode threads. A chunk whose evaluation fails is evaluated again row by row, so one bad row
//! (a failing cast, say) is a dead letter and never costs the chunk.

use std::sync::Arc;

use deltalake::arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array,
};
use deltalake::arrow::compute::{concat, filter, filter_record_batch, take};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::logical_expr::simplify::SimplifyContext;
use deltalake::datafusion::logical_expr::{Cast, Expr, ExprSchemable};
use deltalake::datafusion::optimizer::simplify_expressions::ExprSimplifier;
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::prelude::SessionContext;

use crate::decode::Rejection;
use crate::error::{CoreError, CoreResult};
use crate::messages::Messages;
use crate::metadata::{MetadataColumn, MetadataPart};

/// The reason of a message whose filter or derived column fails to evaluate.
pub const TRANSFORM_FAILED: &str = "transform_failed";

/// A derived column: a table column computed from an SQL expression.
#[napi_derive::napi(object)]
#[derive(Debug, Clone)]
pub struct DerivedColumn {
    pub name: String,
    pub expression: String,
}

/// The configured transform (`transform.filter`, `transform.columns`).
#[napi_derive::napi(object)]
#[derive(Debug, Clone, Default)]
pub struct TransformOptions {
    /// Rows for which this SQL predicate is not true are dropped (counted, not dead letters).
    pub filter: Option<String>,
    pub columns: Option<Vec<DerivedColumn>>,
}

impl TransformOptions {
    /// The table columns computed rather than read from the JSON.
    pub fn derived_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().flatten().map(|c| c.name.as_str())
    }

    fn is_empty(&self) -> bool {
        self.filter.is_none() && self.columns.as_ref().is_none_or(Vec::is_empty)
    }
}

/// The Kafka context the expressions can read, by name.
const CONTEXT: [(&str, MetadataPart); 6] = [
    ("kafka_topic", MetadataPart::Topic),
    ("kafka_partition", MetadataPart::Partition),
    ("kafka_offset", MetadataPart::Offset),
    ("kafka_timestamp", MetadataPart::Timestamp),
    ("kafka_key", MetadataPart::Key),
    ("kafka_headers", MetadataPart::Headers),
];

/// A transform planned against one decoding schema.
#[derive(Debug)]
pub struct Transform {
    input_schema: SchemaRef,
    /// The Kafka context columns the expressions read (a JSON column of the same name wins).
    context: Vec<MetadataColumn>,
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Each derived column's name and expression, cast to the column's type.
    columns: Vec<(String, Arc<dyn PhysicalExpr>)>,
}

/// What a transform made of a chunk's rows.
pub struct Transformed {
    /// Per input row: kept (passed the filter and every derived column computed).
    pub keep: Vec<bool>,
    /// Message indexes the filter dropped.
    pub filtered: Vec<usize>,
    /// The derived columns of the kept rows, by name.
    pub columns: Vec<(String, ArrayRef)>,
}

/// The JSON columns followed by the given Kafka context columns.
fn input_schema(json_schema: &SchemaRef, context: &[MetadataColumn]) -> SchemaRef {
    let json = json_schema.fields().iter().map(|f| f.as_ref().clone());
    let kafka = context.iter().map(MetadataColumn::field);
    Arc::new(Schema::new(json.chain(kafka).collect::<Vec<Field>>()))
}

/// A parsed filter and derived columns (each cast to its column's type).
type Parsed = (Option<Expr>, Vec<(String, Expr)>);

/// Parses and checks the expressions against `schema`: the filter must be a condition, each
/// derived column a column of the table.
fn parse(
    ctx: &SessionContext,
    options: &TransformOptions,
    schema: &SchemaRef,
    table_schema: &SchemaRef,
) -> CoreResult<Parsed> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let filter = match &options.filter {
        Some(sql) => {
            let key = "transform.filter";
            let expr = ctx
                .parse_sql_expr(sql, &df_schema)
                .map_err(|e| invalid(key, e))?;
            match expr.get_type(&df_schema).map_err(|e| invalid(key, e))? {
                DataType::Boolean | DataType::Null => Some(expr),
                other => return Err(invalid(key, format!("is of type {other}, not a condition"))),
            }
        }
        None => None,
    };
    let mut columns = Vec::new();
    for derived in options.columns.iter().flatten() {
        let key = format!("transform.columns.{}", derived.name);
        let target = table_schema
            .field_with_name(&derived.name)
            .map_err(|_| invalid(&key, "the table has no such column"))?;
        let expr = ctx
            .parse_sql_expr(&derived.expression, &df_schema)
            .map_err(|e| invalid(&key, e))?;
        let cast = Expr::Cast(Cast::new(Box::new(expr), target.data_type().clone()));
        columns.push((derived.name.clone(), cast));
    }
    Ok((filter, columns))
}

/// A planning error as the configuration problem it is, naming the key.
fn invalid(key: &str, err: impl std::fmt::Display) -> CoreError {
    CoreError::InvalidArgument(format!("{key}: {err}"))
}

impl Transform {
    /// Plans `options` over `json_schema` (the decoded JSON columns); `table_schema` gives the
    /// derived columns' types. `None` when nothing is configured.
    pub fn plan(
        options: &TransformOptions,
        json_schema: &SchemaRef,
        table_schema: &SchemaRef,
    ) -> CoreResult<Option<Self>> {
        if options.is_empty() {
            return Ok(None);
        }
        // Parsed against every column they may read, then planned against those they do read:
        // a chunk builds only the Kafka context columns an expression uses.
        let available: Vec<MetadataColumn> = CONTEXT
            .into_iter()
            .filter(|(name, _)| json_schema.field_with_name(name).is_err())
            .map(|(name, part)| MetadataColumn::context(name, part))
            .collect();
        let full = input_schema(json_schema, &available);
        let ctx = SessionContext::new();
        let (filter, columns) = parse(&ctx, options, &full, table_schema)?;
        let used: Vec<MetadataColumn> = available
            .into_iter()
            .filter(|column| {
                let reads = |e: &Expr| e.column_refs().iter().any(|c| c.name == column.name);
                filter.iter().any(reads) || columns.iter().any(|(_, e)| reads(e))
            })
            .collect();
        let input_schema = input_schema(json_schema, &used);
        let df_schema = DFSchema::try_from(input_schema.as_ref().clone())?;
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .build(),
        );
        let empty = RecordBatch::new_empty(input_schema.clone());
        let physical = |key: &str, expr: Expr| {
            // Some functions (coalesce, nvl, ...) are only executable once simplified, which
            // create_physical_expr alone does not do.
            let simplified = simplifier
                .coerce(expr, &df_schema)
                .and_then(|e| simplifier.simplify(e))
                .map_err(|e| invalid(key, e))?;
            let planned = ctx
                .create_physical_expr(simplified, &df_schema)
                .map_err(|e| invalid(key, e))?;
            // An expression that cannot run at all fails here, not as a dead letter per row.
            planned
                .evaluate(&empty)
                .and_then(|v| v.into_array(0))
                .map_err(|e| invalid(key, e))?;
            Ok::<_, CoreError>(planned)
        };
        let filter = match filter {
            Some(expr) => Some(physical("transform.filter", expr)?),
            None => None,
        };
        let columns = columns
            .into_iter()
            .map(|(name, expr)| {
                Ok((
                    name.clone(),
                    physical(&format!("transform.columns.{name}"), expr)?,
                ))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(Some(Self {
            input_schema,
            context: used,
            filter,
            columns,
        }))
    }

    /// Filters and derives the rows of `json_rows` (one per message in `rows`); a row whose
    /// filter or derived column fails to evaluate goes to `rejected`.
    pub fn apply(
        &self,
        json_rows: &RecordBatch,
        messages: &Messages<'_>,
        rows: &[usize],
        topics: &[String],
        rejected: &mut Vec<Rejection>,
    ) -> CoreResult<Transformed> {
        let mut columns: Vec<ArrayRef> = json_rows.columns().to_vec();
        columns.extend(
            self.context
                .iter()
                .map(|column| column.values(messages, rows, topics)),
        );
        let input = RecordBatch::try_new(self.input_schema.clone(), columns)?;
        let mut keep = vec![true; rows.len()];
        let mut filtered = Vec::new();
        if let Some(filter) = &self.filter {
            let passed = evaluate(
                filter,
                &input,
                "transform.filter",
                rows,
                &mut keep,
                rejected,
            )?;
            let passed = passed
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| CoreError::Internal("transform.filter is not boolean".into()))?;
            for (row, message_index) in rows.iter().enumerate() {
                // SQL semantics: a row passes only where the predicate is true (null drops it).
                if keep[row] && !(passed.is_valid(row) && passed.value(row)) {
                    keep[row] = false;
                    filtered.push(*message_index);
                }
            }
        }
        let mut derived = Vec::with_capacity(self.columns.len());
        for (name, expr) in &self.columns {
            let key = format!("transform.columns.{name}");
            derived.push((
                name.clone(),
                evaluate(expr, &input, &key, rows, &mut keep, rejected)?,
            ));
        }
        // The derived values of the rows kept in the end (a later column may fail a row).
        let mask = BooleanArray::from(keep.clone());
        let columns = derived
            .into_iter()
            .map(|(name, values)| Ok((name, filter(&values, &mask)?)))
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(Transformed {
            keep,
            filtered,
            columns,
        })
    }
}

/// Evaluates `expr` over `input`; when the whole batch fails, row by row: a failing row is a
/// dead letter (`keep` false) and takes a null in the result. Rows already dropped are skipped.
fn evaluate(
    expr: &Arc<dyn PhysicalExpr>,
    input: &RecordBatch,
    key: &str,
    rows: &[usize],
    keep: &mut [bool],
    rejected: &mut Vec<Rejection>,
) -> CoreResult<ArrayRef> {
    if let Some(values) = evaluate_live(expr, input, keep) {
        return Ok(values);
    }
    let null = new_null_array(&expr.data_type(input.schema().as_ref())?, 1);
    let mut parts = Vec::with_capacity(rows.len());
    for (row, &message_index) in rows.iter().enumerate() {
        if !keep[row] {
            parts.push(null.clone());
            continue;
        }
        match expr
            .evaluate(&input.slice(row, 1))
            .and_then(|v| v.into_array(1))
        {
            Ok(value) => parts.push(value),
            Err(err) => {
                keep[row] = false;
                let detail = format!("{key}: {err}");
                rejected.push(Rejection::new(message_index, TRANSFORM_FAILED, detail));
                parts.push(null.clone());
            }
        }
    }
    let refs: Vec<&dyn Array> = parts.iter().map(AsRef::as_ref).collect();
    Ok(concat(&refs)?)
}

/// `expr` over the rows still kept, placed back at their rows (null at the others); `None` when
/// the evaluation fails (a row of them cannot be computed).
fn evaluate_live(
    expr: &Arc<dyn PhysicalExpr>,
    input: &RecordBatch,
    keep: &[bool],
) -> Option<ArrayRef> {
    if keep.iter().all(|&k| k) {
        return expr
            .evaluate(input)
            .and_then(|v| v.into_array(input.num_rows()))
            .ok();
    }
    // Rows already dropped must not fail the others: evaluate over the live ones only.
    let live = filter_record_batch(input, &BooleanArray::from(keep.to_vec())).ok()?;
    let values = expr
        .evaluate(&live)
        .and_then(|v| v.into_array(live.num_rows()))
        .ok()?;
    let mut next = 0u32;
    let indices: UInt32Array = keep
        .iter()
        .map(|&k| {
            k.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    take(&values, &indices, None).ok()
}
