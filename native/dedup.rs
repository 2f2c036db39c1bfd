//! Consolidation: one row per key, chosen or folded from the rows that share it, computed on the
//! worker pool. Keys are converted column-wise into Arrow's row format (one buffer per chunk, no
//! per-row allocation), hashed, spread over buckets by hash, and each bucket is grouped on its own
//! thread.

use std::cmp::Ordering;
use std::io::Cursor;
use std::ops::Range;

use ahash::RandomState;
use deltalake::arrow::array::{
    make_comparator, Array, ArrayRef, DynComparator, RecordBatch, UInt32Array,
};
use deltalake::arrow::compute::{concat_batches, take, take_record_batch, SortOptions};
use deltalake::arrow::ipc::reader::StreamReader;
use deltalake::arrow::ipc::writer::StreamWriter;
use deltalake::arrow::row::{RowConverter, Rows, SortField};
use hashbrown::HashTable;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};

/// Which record a key keeps when several share it.
#[napi(string_enum)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupStrategy {
    /// The record with the greatest order value; ties go to the later record.
    #[napi(value = "last")]
    Last,
    /// The record with the smallest order value; ties go to the earlier record.
    #[napi(value = "first")]
    First,
    /// All records of the key folded in order: each column takes its last non-null value.
    #[napi(value = "merge")]
    Merge,
}

/// How to consolidate rows.
#[derive(Debug, Clone)]
pub struct DedupSpec {
    /// The columns that identify a record. A row with a null in any of them is kept as it is.
    pub keys: Vec<String>,
    /// The column that orders the records of a key; without it, their order of arrival (the
    /// Kafka offset within a partition). Nulls order before every value.
    pub order_by: Option<String>,
    pub strategy: DedupStrategy,
}

/// Rows after consolidation.
pub struct Deduplicated {
    pub batch: RecordBatch,
    /// Input rows folded into another row or dropped as its duplicates.
    pub removed: usize,
}

const MIN_CHUNK: usize = 16 * 1024;
const HASH_SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// A group of rows sharing a key, in one bucket.
struct Group {
    hash: u64,
    /// The first row seen, then (for `last`/`first`) the row currently winning.
    row: u32,
    /// Further rows of the key, for `merge` (no allocation while a key is unique).
    more: Vec<u32>,
}

/// The key rows of one chunk of the input.
struct KeyChunk {
    start: usize,
    rows: Rows,
    hashes: Vec<u64>,
    /// Rows with a null key component; they are never grouped.
    null_key: Vec<bool>,
}

fn column_by_name(batch: &RecordBatch, name: &str, role: &str) -> CoreResult<ArrayRef> {
    batch
        .schema()
        .index_of(name)
        .map(|i| batch.column(i).clone())
        .map_err(|_| CoreError::SchemaMismatch(format!("{role} {name:?} is not a column")))
}

/// Consolidates `batch` (rows in arrival order) so that each non-null key appears once. Runs on
/// the current rayon pool.
pub fn dedup(batch: &RecordBatch, spec: &DedupSpec) -> CoreResult<Deduplicated> {
    let n = batch.num_rows();
    if spec.keys.is_empty() {
        return Ok(Deduplicated {
            batch: batch.clone(),
            removed: 0,
        });
    }
    if n > u32::MAX as usize {
        return Err(CoreError::InvalidArgument(format!(
            "cannot consolidate {n} rows at once (at most {})",
            u32::MAX
        )));
    }
    let keys: Vec<ArrayRef> = spec
        .keys
        .iter()
        .map(|k| column_by_name(batch, k, "dedup key"))
        .collect::<CoreResult<_>>()?;
    let order: Option<DynComparator> = match &spec.order_by {
        Some(name) => {
            let column = column_by_name(batch, name, "dedup order column")?;
            let options = SortOptions {
                descending: false,
                nulls_first: true,
            };
            Some(make_comparator(column.as_ref(), column.as_ref(), options)?)
        }
        None => None,
    };
    if n < 2 {
        return Ok(Deduplicated {
            batch: batch.clone(),
            removed: 0,
        });
    }
    // Order value first, arrival second: the total order every strategy is defined on.
    let before = |a: u32, b: u32| -> Ordering {
        let by_value = order
            .as_ref()
            .map_or(Ordering::Equal, |cmp| cmp(a as usize, b as usize));
        by_value.then(a.cmp(&b))
    };

    let chunks = key_chunks(&keys, n)?;
    let keyed = KeyedRows {
        chunk_len: chunks.first().map_or(n, |c| c.hashes.len()).max(1),
        chunks,
    };

    let bucket_count = (rayon::current_num_threads() * 4)
        .next_power_of_two()
        .min(128);
    let buckets = spread(&keyed.chunks, bucket_count);
    let strategy = spec.strategy;
    let grouped: Vec<(Vec<Group>, Vec<u32>)> = buckets
        .into_par_iter()
        .map(|rows| group_bucket(&rows, &keyed, strategy, &before))
        .collect();

    let mut groups: Vec<Group> = Vec::new();
    let mut passthrough: Vec<u32> = Vec::new();
    for (g, p) in grouped {
        groups.extend(g);
        passthrough.extend(p);
    }
    let output = match strategy {
        DedupStrategy::Last | DedupStrategy::First => {
            let mut kept: Vec<u32> = groups.iter().map(|g| g.row).collect();
            kept.extend(passthrough);
            kept.par_sort_unstable();
            take_record_batch(batch, &UInt32Array::from(kept))?
        }
        DedupStrategy::Merge => fold(batch, groups, passthrough, &before)?,
    };
    Ok(Deduplicated {
        removed: n - output.num_rows(),
        batch: output,
    })
}

/// The key rows of all chunks, addressed by input row.
struct KeyedRows {
    chunks: Vec<KeyChunk>,
    /// Rows per chunk (the last one may hold fewer).
    chunk_len: usize,
}

impl KeyedRows {
    fn locate(&self, row: u32) -> (&KeyChunk, usize) {
        let chunk = &self.chunks[row as usize / self.chunk_len];
        (chunk, row as usize - chunk.start)
    }

    fn bytes(&self, row: u32) -> &[u8] {
        let (chunk, local) = self.locate(row);
        chunk.rows.row(local).data()
    }
}

/// Converts and hashes the key columns in parallel chunks.
fn key_chunks(keys: &[ArrayRef], n: usize) -> CoreResult<Vec<KeyChunk>> {
    let threads = rayon::current_num_threads().max(1);
    let chunk = n.div_ceil(threads * 4).max(MIN_CHUNK);
    let ranges: Vec<Range<usize>> = (0..n)
        .step_by(chunk)
        .map(|s| s..(s + chunk).min(n))
        .collect();
    let fields: Vec<SortField> = keys
        .iter()
        .map(|k| SortField::new(k.data_type().clone()))
        .collect();
    let hasher =
        RandomState::with_seeds(HASH_SEEDS[0], HASH_SEEDS[1], HASH_SEEDS[2], HASH_SEEDS[3]);
    ranges
        .into_par_iter()
        .map(|range| {
            let sliced: Vec<ArrayRef> = keys
                .iter()
                .map(|k| k.slice(range.start, range.len()))
                .collect();
            let converter = RowConverter::new(fields.clone())?;
            let rows = converter.convert_columns(&sliced)?;
            let hashes = (0..rows.num_rows())
                .map(|r| hasher.hash_one(rows.row(r).data()))
                .collect();
            let null_key = (0..range.len())
                .map(|r| sliced.iter().any(|k| k.is_null(r)))
                .collect();
            Ok(KeyChunk {
                start: range.start,
                rows,
                hashes,
                null_key,
            })
        })
        .collect()
}

/// Picks the bucket from middle bits of the hash: the hash table inside a bucket uses the low
/// bits for its slots and the top bits as tags, so those must still vary within a bucket.
fn bucket_of(hash: u64, bucket_count: usize) -> usize {
    ((hash >> 40) as usize) & (bucket_count - 1)
}

/// Row indices per bucket, ascending within each bucket; null-key rows go to bucket 0.
fn spread(chunks: &[KeyChunk], bucket_count: usize) -> Vec<Vec<u32>> {
    let per_chunk: Vec<Vec<Vec<u32>>> = chunks
        .par_iter()
        .map(|chunk| {
            let mut buckets = vec![Vec::new(); bucket_count];
            for (r, &hash) in chunk.hashes.iter().enumerate() {
                let b = if chunk.null_key[r] {
                    0
                } else {
                    bucket_of(hash, bucket_count)
                };
                buckets[b].push((chunk.start + r) as u32);
            }
            buckets
        })
        .collect();
    (0..bucket_count)
        .into_par_iter()
        .map(|b| {
            per_chunk
                .iter()
                .flat_map(|c| c[b].iter().copied())
                .collect()
        })
        .collect()
}

/// Groups the rows of one bucket; returns the groups and the null-key rows.
fn group_bucket(
    rows: &[u32],
    keyed: &KeyedRows,
    strategy: DedupStrategy,
    before: &(dyn Fn(u32, u32) -> Ordering + Sync),
) -> (Vec<Group>, Vec<u32>) {
    let mut table: HashTable<usize> = HashTable::with_capacity(rows.len());
    let mut groups: Vec<Group> = Vec::with_capacity(rows.len());
    let mut passthrough = Vec::new();
    for &row in rows {
        let (chunk, local) = keyed.locate(row);
        if chunk.null_key[local] {
            passthrough.push(row);
            continue;
        }
        let hash = chunk.hashes[local];
        let bytes = keyed.bytes(row);
        let found = table.find(hash, |&g| {
            groups[g].hash == hash && keyed.bytes(groups[g].row) == bytes
        });
        match found {
            Some(&g) => {
                let group = &mut groups[g];
                match strategy {
                    // Rows arrive in ascending order, so a tie already favours `row` for `last`.
                    DedupStrategy::Last => {
                        if before(group.row, row) == Ordering::Less {
                            group.row = row;
                        }
                    }
                    DedupStrategy::First => {
                        if before(row, group.row) == Ordering::Less {
                            group.row = row;
                        }
                    }
                    DedupStrategy::Merge => group.more.push(row),
                }
            }
            None => {
                let g = groups.len();
                groups.push(Group {
                    hash,
                    row,
                    more: Vec::new(),
                });
                table.insert_unique(hash, g, |&g| groups_hash(&groups, g));
            }
        }
    }
    (groups, passthrough)
}

fn groups_hash(groups: &[Group], g: usize) -> u64 {
    groups.get(g).map_or(0, |group| group.hash)
}

/// `merge`: one output row per group whose every column holds the value of the group's last
/// row (in order) where that column is not null.
fn fold(
    batch: &RecordBatch,
    groups: Vec<Group>,
    passthrough: Vec<u32>,
    before: &(dyn Fn(u32, u32) -> Ordering + Sync),
) -> CoreResult<RecordBatch> {
    let mut members: Vec<Vec<u32>> = groups
        .into_par_iter()
        .map(|g| {
            let mut rows = Vec::with_capacity(1 + g.more.len());
            rows.push(g.row);
            rows.extend(g.more);
            if rows.len() > 1 {
                rows.sort_by(|&a, &b| before(a, b));
            }
            rows
        })
        .collect();
    members.extend(passthrough.into_iter().map(|r| vec![r]));
    // Output in order of each key's first arrival.
    members.par_sort_unstable_by_key(|rows| rows.iter().copied().min().unwrap_or(0));

    let columns: Vec<ArrayRef> = batch
        .columns()
        .par_iter()
        .map(|column| {
            let picks: UInt32Array = members
                .iter()
                .map(|rows| {
                    let last = rows.last().copied().unwrap_or(0);
                    let pick = rows
                        .iter()
                        .rev()
                        .copied()
                        .find(|&r| column.is_valid(r as usize))
                        .unwrap_or(last);
                    Some(pick)
                })
                .collect();
            take(column.as_ref(), &picks, None)
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;

/// How to consolidate rows that share a key.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct DedupOptions {
    /// The columns that identify a record. Rows with a null in any of them are kept as they are.
    pub keys: Vec<String>,
    /// The column ordering the records of a key (nulls first); default: their order in the input.
    pub order_by: Option<String>,
    /// Default `last`.
    pub strategy: Option<DedupStrategy>,
}

impl From<DedupOptions> for DedupSpec {
    fn from(o: DedupOptions) -> Self {
        DedupSpec {
            keys: o.keys,
            order_by: o.order_by,
            strategy: o.strategy.unwrap_or(DedupStrategy::Last),
        }
    }
}

fn dedup_ipc_blocking(data: &[u8], spec: &DedupSpec) -> CoreResult<Vec<u8>> {
    let reader = StreamReader::try_new(Cursor::new(data), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let rows = concat_batches(&schema, &batches)?;
    let consolidated = crate::threads::install(|| dedup(&rows, spec))??;
    let mut out = Vec::with_capacity(consolidated.batch.get_array_memory_size() + 1024);
    {
        let mut writer = StreamWriter::try_new(&mut out, &schema)?;
        writer.write(&consolidated.batch)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Consolidates the rows of an Arrow IPC stream so that each key appears once, the way a flush
/// does (on the worker pool, off the JavaScript thread), and returns them as an Arrow IPC stream
/// with the same schema. Rows keep the order of their key's winning (or, for `merge`, first) row.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub async fn dedup_arrow_ipc(data: Buffer, options: DedupOptions) -> napi::Result<Buffer> {
    let spec = DedupSpec::from(options);
    let out = tokio::task::spawn_blocking(move || dedup_ipc_blocking(&data, &spec))
        .await
        .map_err(CoreError::from)??;
    Ok(out.into())
}
