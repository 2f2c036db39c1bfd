//! The txn versions of a table, read whole once and then kept current from the commits that
//! follow. delta-rs answers one application id per call with a replay of the log; the pipeline
//! asks for every topic-partition on every commit attempt and assignment, so at 1,000
//! partitions that was 1,000 replays (1.35 s) per question. Here a question costs a read of the
//! commits since the last one (usually one file), and the first a read of the checkpoint and the
//! commits after it.
//!
//! Retention of txn entries (`delta.setTransactionRetentionDuration`) is not applied: the
//! pipeline refuses tables that set it (`positions::check_positions_kept`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use delta_kernel::arrow::array::{Array, AsArray, RecordBatch};
use delta_kernel::arrow::compute::cast;
use delta_kernel::arrow::datatypes::{DataType as ArrowType, Int64Type};
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::schema::{DataType, StructField, StructType};
use delta_kernel::{Engine, Snapshot, Version};
use deltalake::DeltaTable;
use serde::Deserialize;
use url::Url;

use crate::error::{lock, CoreError, CoreResult};

/// Every application id's newest txn version at one version of one table.
#[derive(Clone)]
struct Indexed {
    /// The table's id (`metaData.id`): a table re-created at the same place starts over.
    table_id: String,
    version: Version,
    versions: Arc<HashMap<String, i64>>,
}

/// The newest index of each table, by table root.
static INDEXES: LazyLock<Mutex<HashMap<String, Indexed>>> = LazyLock::new(Default::default);

/// The recorded version of each of `app_ids` at the table's loaded version.
pub async fn txn_versions_at(
    table: &DeltaTable,
    app_ids: &[String],
) -> CoreResult<HashMap<String, i64>> {
    let all = all_txn_versions(table).await?;
    Ok(app_ids
        .iter()
        .filter_map(|id| all.get(id).map(|v| (id.clone(), *v)))
        .collect())
}

async fn all_txn_versions(table: &DeltaTable) -> CoreResult<Arc<HashMap<String, i64>>> {
    let snapshot = table.snapshot()?;
    let version = snapshot.version() as Version;
    let table_id = snapshot.metadata().id().to_string();
    let root = table_root(table);
    let key = root.to_string();
    let known = lock(&INDEXES)?.get(&key).cloned();
    let indexed = match known {
        Some(known) if known.table_id == table_id && known.version == version => {
            return Ok(known.versions)
        }
        Some(known) if known.table_id == table_id && known.version < version => {
            match advance(table, &known, version).await? {
                Some(versions) => versions,
                // A commit in between is gone (the log was cleaned): read the table whole.
                None => read_whole(table, root, version).await?,
            }
        }
        _ => read_whole(table, root, version).await?,
    };
    let indexed = Indexed {
        table_id,
        version,
        versions: Arc::new(indexed),
    };
    let mut indexes = lock(&INDEXES)?;
    let newer_known = indexes
        .get(&key)
        .is_some_and(|k| k.table_id == indexed.table_id && k.version > version);
    if !newer_known {
        indexes.insert(key, indexed.clone());
    }
    Ok(indexed.versions)
}

/// The table's location as the kernel takes it: ending in a slash.
fn table_root(table: &DeltaTable) -> Url {
    let mut root = table.log_store().config().location().clone();
    if !root.path().ends_with('/') {
        let path = format!("{}/", root.path());
        root.set_path(&path);
    }
    root
}

/// The index moved from `known.version` to `version` by the commits in between, in order;
/// `None` when one of them can no longer be read.
async fn advance(
    table: &DeltaTable,
    known: &Indexed,
    version: Version,
) -> CoreResult<Option<HashMap<String, i64>>> {
    let mut versions = (*known.versions).clone();
    for commit in known.version + 1..=version {
        let Some(bytes) = table.log_store().read_commit_entry(commit).await? else {
            return Ok(None);
        };
        for (app_id, txn_version) in commit_txns(&bytes)? {
            versions.insert(app_id, txn_version);
        }
    }
    Ok(Some(versions))
}

#[derive(Deserialize)]
struct ActionLine {
    txn: Option<TxnAction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TxnAction {
    app_id: String,
    version: i64,
}

/// The txn actions of one commit file (newline-delimited actions).
fn commit_txns(commit: &[u8]) -> CoreResult<Vec<(String, i64)>> {
    let mut txns = Vec::new();
    for line in commit.split(|b| *b == b'\n') {
        // Only a line naming a txn is parsed: the others (adds with their statistics) are most
        // of the file.
        if !line.windows(5).any(|w| w == b"\"txn\"") {
            continue;
        }
        let action: ActionLine = serde_json::from_slice(line)
            .map_err(|e| CoreError::Internal(format!("a txn action in the log: {e}")))?;
        if let Some(txn) = action.txn {
            txns.push((txn.app_id, txn.version));
        }
    }
    Ok(txns)
}

/// Every application id's newest txn version, from the checkpoint and the commits after it.
async fn read_whole(
    table: &DeltaTable,
    root: Url,
    version: Version,
) -> CoreResult<HashMap<String, i64>> {
    let engine = table.log_store().engine(None);
    tokio::task::spawn_blocking(move || replay_txns(engine, root, version))
        .await
        .map_err(|e| CoreError::Internal(format!("reading the txn versions: {e}")))?
        .map_err(|e| CoreError::Delta(e.into()))
}

fn replay_txns(
    engine: Arc<dyn Engine>,
    root: Url,
    version: Version,
) -> delta_kernel::DeltaResult<HashMap<String, i64>> {
    let snapshot = Snapshot::builder_for(root)
        .at_version(version)
        .build(engine.as_ref())?;
    let txn = StructType::try_new([
        StructField::not_null("appId", DataType::STRING),
        StructField::not_null("version", DataType::LONG),
        StructField::nullable("lastUpdated", DataType::LONG),
    ])?;
    let schema = Arc::new(StructType::try_new([StructField::nullable("txn", txn)])?);
    let mut versions = HashMap::new();
    // Newest first: the commits in descending order, then the checkpoint; the first txn of an
    // application id is its newest.
    for batch in snapshot
        .log_segment()
        .read_actions(engine.as_ref(), schema)?
    {
        let data = ArrowEngineData::try_from_engine_data(batch?.actions)?;
        collect_txns(data.record_batch(), &mut versions)?;
    }
    Ok(versions)
}

fn collect_txns(
    batch: &RecordBatch,
    versions: &mut HashMap<String, i64>,
) -> delta_kernel::DeltaResult<()> {
    let Some(txn) = batch.column(0).as_struct_opt() else {
        return Ok(());
    };
    let (Some(app_ids), Some(txn_versions)) =
        (txn.column_by_name("appId"), txn.column_by_name("version"))
    else {
        return Ok(());
    };
    let app_ids = cast(app_ids, &ArrowType::Utf8)?;
    let txn_versions = cast(txn_versions, &ArrowType::Int64)?;
    let (app_ids, txn_versions) = (
        app_ids.as_string::<i32>(),
        txn_versions.as_primitive::<Int64Type>(),
    );
    for row in 0..txn.len() {
        if txn.is_valid(row) && app_ids.is_valid(row) {
            versions
                .entry(app_ids.value(row).to_string())
                .or_insert(txn_versions.value(row));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_file_yields_its_txn_actions_only() {
        let commit = concat!(
            r#"{"commitInfo":{"operation":"WRITE","operationParameters":{"note":"\"txn\""}}}"#,
            "\n",
            r#"{"txn":{"appId":"kdr-g-t-0","version":41,"lastUpdated":1}}"#,
            "\n",
            r#"{"add":{"path":"a.parquet","size":1,"partitionValues":{},"modificationTime":1,"dataChange":true}}"#,
            "\n",
            r#"{"txn":{"appId":"kdr-g-t-1","version":7}}"#,
            "\n"
        );
        let txns = commit_txns(commit.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(
            txns,
            Ok(vec![
                ("kdr-g-t-0".to_string(), 41),
                ("kdr-g-t-1".to_string(), 7)
            ])
        );
    }

    use deltalake::arrow::datatypes::{DataType as Arrow, Field, Schema};
    use deltalake::checkpoints::create_checkpoint;
    use deltalake::kernel::transaction::CommitProperties;
    use deltalake::kernel::Transaction;

    /// Commits txn actions only, `(app id, version)` each.
    async fn commit(table: DeltaTable, txns: &[(&str, i64)]) -> DeltaTable {
        let txns = txns.iter().map(|(id, v)| Transaction::new(*id, *v));
        let properties = CommitProperties::default().with_application_transactions(txns.collect());
        let committed = crate::positions::commit_positions_only(&table, properties).await;
        committed.unwrap_or_else(|e| panic!("commit: {e}"))
    }

    /// What delta-rs's own per-id replay finds.
    async fn replayed(table: &DeltaTable, ids: &[String]) -> HashMap<String, i64> {
        let mut found = HashMap::new();
        for id in ids {
            let snapshot = table.snapshot().unwrap_or_else(|e| panic!("{e}"));
            let version = snapshot
                .transaction_version(table.log_store().as_ref(), id)
                .await;
            if let Some(v) = version.unwrap_or_else(|e| panic!("{e}")) {
                found.insert(id.clone(), v);
            }
        }
        found
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_read_finds_what_the_per_id_replay_finds_across_a_checkpoint_and_new_commits() {
        let dir = std::env::temp_dir().join(format!("kdr-txn-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let schema = Schema::new(vec![Field::new("id", Arrow::Utf8, true)]);
        let uri = dir.to_string_lossy().to_string();
        let table = crate::create::create(&uri, &schema, &[], HashMap::new()).await;
        let mut table = table.unwrap_or_else(|e| panic!("create: {e}"));
        table = commit(table, &[("a", 1), ("b", 1)]).await;
        table = commit(table, &[("a", 2), ("c", 5)]).await;
        create_checkpoint(&table, None)
            .await
            .unwrap_or_else(|e| panic!("checkpoint: {e}"));
        table = commit(table, &[("b", 3)]).await;
        let ids: Vec<String> = ["a", "b", "c", "never"].map(String::from).into();
        let whole = txn_versions_at(&table, &ids)
            .await
            .map_err(|e| e.to_string());
        assert_eq!(whole, Ok(replayed(&table, &ids).await));
        assert_eq!(whole.as_ref().map(|v| v.get("b").copied()), Ok(Some(3)));
        // Two more commits: the index advances by reading them, and agrees again.
        table = commit(table, &[("c", 6)]).await;
        table = commit(table, &[("a", 9), ("d", 1)]).await;
        let ids: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let advanced = txn_versions_at(&table, &ids)
            .await
            .map_err(|e| e.to_string());
        assert_eq!(advanced, Ok(replayed(&table, &ids).await));
        let expected: HashMap<String, i64> = [("a", 9), ("b", 3), ("c", 6), ("d", 1)]
            .map(|(k, v)| (k.to_string(), v))
            .into();
        assert_eq!(advanced, Ok(expected));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
