//! Creating tables: the dead-letter table when absent, and empty tables for tooling, samples
//! and tests (the pipeline itself writes only into tables that exist).

use std::collections::HashMap;

use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{DataType as DeltaDataType, StructField, StructType};
use deltalake::{ensure_table_uri, DeltaTable, DeltaTableBuilder};
use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use crate::js_error::spawn;

use crate::error::{CoreError, CoreResult};
use crate::table::TableInfo;
use crate::target::table_info;

/// A column for `createTable`.
// Items only JavaScript calls look unused to the Rust test build.
#[cfg_attr(test, allow(dead_code))]
#[napi(object)]
pub struct ColumnSpec {
    pub name: String,
    /// A Delta primitive type: string, long, integer, short, byte, float, double, boolean,
    /// binary, date, timestamp, timestamp_ntz, or decimal(p,s).
    pub data_type: String,
    pub nullable: Option<bool>,
}

pub async fn create(
    uri: &str,
    schema: &deltalake::arrow::datatypes::Schema,
    partition_columns: &[String],
    storage_options: HashMap<String, String>,
) -> CoreResult<DeltaTable> {
    let struct_type = StructType::try_from_arrow(schema)?;
    create_with_fields(
        uri,
        struct_type.fields().cloned().collect(),
        partition_columns,
        storage_options,
        HashMap::new(),
    )
    .await
}

async fn create_with_fields(
    uri: &str,
    fields: Vec<StructField>,
    partition_columns: &[String],
    storage_options: HashMap<String, String>,
    properties: HashMap<String, String>,
) -> CoreResult<DeltaTable> {
    if !uri.contains("://") {
        std::fs::create_dir_all(uri)?;
    }
    let url = ensure_table_uri(uri)?;
    let table = DeltaTableBuilder::from_url(url)?
        .with_storage_options(storage_options)
        .build()?;
    Ok(table
        .create()
        .with_columns(fields)
        .with_partition_columns(partition_columns.iter().cloned())
        .with_configuration(properties.into_iter().map(|(k, v)| (k, Some(v))))
        // Version 0 or nothing: delta-rs would retry a lost race as a second CREATE at
        // version 1 (replacing the winner's metadata); the loser opens the winner's table.
        .with_commit_properties(CommitProperties::default().with_max_retries(0))
        .await?)
}

/// Creates an empty Delta table with the given table properties (`delta.create_if_missing`,
/// tooling, samples and tests).
#[cfg_attr(test, allow(dead_code))]
#[napi(ts_return_type = "Promise<TableInfo>")]
pub fn create_table<'env>(
    env: &'env Env,
    uri: String,
    columns: Vec<ColumnSpec>,
    partition_columns: Vec<String>,
    storage_options: Option<HashMap<String, String>>,
    properties: Option<HashMap<String, String>>,
) -> napi::Result<PromiseRaw<'env, TableInfo>> {
    spawn(env, async move {
        let fields = columns
            .iter()
            .map(|c| {
                let data_type: DeltaDataType =
                    serde_json::from_value(serde_json::Value::String(c.data_type.clone()))
                        .map_err(|_| {
                            CoreError::InvalidArgument(format!(
                                "column {:?}: unknown Delta type {:?}",
                                c.name, c.data_type
                            ))
                        })?;
                Ok(StructField::new(
                    c.name.clone(),
                    data_type,
                    c.nullable.unwrap_or(true),
                ))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        let storage_options = storage_options.unwrap_or_default();
        // A table there already is the caller's mistake, not an internal failure (delta-rs only
        // says so in a generic error).
        if crate::target::has_table(&uri, storage_options.clone()).await? {
            return Err(CoreError::InvalidArgument(format!(
                "a Delta table already exists at {uri}"
            )));
        }
        let table = create_with_fields(
            &uri,
            fields,
            &partition_columns,
            storage_options,
            properties.unwrap_or_default(),
        )
        .await?;
        table_info(&uri, &table)
    })
}
