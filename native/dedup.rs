//! Consolidation: one row per key, chosen or folded from the rows that share it, computed on the
//! worker pool. Keys are converted column-wise into Arrow's row format (one buffer per chunk, no
//! per-row allocation), hashed, spread over buckets by hash, and each bucket is grouped on its own
//! thread.

use std::cmp::Ordering;
use std::io::Cursor;

use ahash::RandomState;
use deltalake::arrow::array::{
    make_comparator, Array, ArrayRef, DynComparator, RecordBatch, UInt32Array,
};
use deltalake::arrow::compute::{concat_batches, take, take_record_batch, SortOptions};
use deltalake::arrow::ipc::reader::StreamReader;
use deltalake::arrow::ipc::writer::StreamWriter;
use hashbrown::HashTable;
use napi::bindgen_prelude::Buffer;
use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use crate::js_error::spawn;
use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};
use crate::keys::{KeyBytes, MIN_CHUNK};

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

const HASH_SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

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

    let key = KeyBytes::new(&keys, n)?;
    let hasher =
        RandomState::with_seeds(HASH_SEEDS[0], HASH_SEEDS[1], HASH_SEEDS[2], HASH_SEEDS[3]);
    let hashes: Vec<u64> = (0..n)
        .into_par_iter()
        .with_min_len(MIN_CHUNK)
        .map(|r| hasher.hash_one(key.bytes(r)))
        .collect();
    let null_key = |r: usize| key.nulls.as_ref().is_some_and(|nulls| nulls.is_null(r));

    let bucket_count = (rayon::current_num_threads() * 4)
        .next_power_of_two()
        .min(128);
    let buckets = spread(&hashes, &null_key, bucket_count);
    let strategy = spec.strategy;
    let grouped: Vec<Bucket> = buckets
        .into_par_iter()
        .map(|rows| group_bucket(&rows, &hashes, &key, &null_key, strategy, &before))
        .collect();

    let output = match strategy {
        DedupStrategy::Last | DedupStrategy::First => {
            let mut kept: Vec<u32> = Vec::with_capacity(grouped.iter().map(Bucket::len).sum());
            for bucket in &grouped {
                kept.extend(&bucket.winners);
                kept.extend(&bucket.passthrough);
            }
            kept.par_sort_unstable();
            take_record_batch(batch, &UInt32Array::from(kept))?
        }
        DedupStrategy::Merge => fold(batch, grouped, &before)?,
    };
    Ok(Deduplicated {
        removed: n - output.num_rows(),
        batch: output,
    })
}

/// Picks the bucket from middle bits of the hash: the hash table inside a bucket uses the low
/// bits for its slots and the top bits as tags, so those must still vary within a bucket.
fn bucket_of(hash: u64, bucket_count: usize) -> usize {
    ((hash >> 40) as usize) & (bucket_count - 1)
}

/// Row indices per bucket, ascending within each bucket; null-key rows go to bucket 0.
fn spread(
    hashes: &[u64],
    null_key: &(dyn Fn(usize) -> bool + Sync),
    bucket_count: usize,
) -> Vec<Vec<u32>> {
    let threads = rayon::current_num_threads().max(1);
    let chunk_len = hashes.len().div_ceil(threads * 4).max(MIN_CHUNK);
    let per_chunk: Vec<Vec<Vec<u32>>> = hashes
        .par_chunks(chunk_len)
        .enumerate()
        .map(|(c, chunk)| {
            let start = c * chunk_len;
            let mut buckets =
                vec![Vec::with_capacity(chunk.len() / bucket_count + 16); bucket_count];
            for (i, &hash) in chunk.iter().enumerate() {
                let row = start + i;
                let b = if null_key(row) {
                    0
                } else {
                    bucket_of(hash, bucket_count)
                };
                buckets[b].push(row as u32);
            }
            buckets
        })
        .collect();
    (0..bucket_count)
        .into_par_iter()
        .map(|b| {
            let mut rows = Vec::with_capacity(per_chunk.iter().map(|c| c[b].len()).sum());
            for chunk in &per_chunk {
                rows.extend_from_slice(&chunk[b]);
            }
            rows
        })
        .collect()
}

/// The outcome of grouping one bucket.
struct Bucket {
    /// Per key: its winning row (`last`, `first`) or its first row (`merge`).
    winners: Vec<u32>,
    /// `merge`: further rows of a key, as (index into `winners`, row).
    more: Vec<(u32, u32)>,
    /// Null-key rows, kept as they are.
    passthrough: Vec<u32>,
}

impl Bucket {
    fn len(&self) -> usize {
        self.winners.len() + self.passthrough.len()
    }
}

/// Groups the rows of one bucket (ascending row order).
fn group_bucket(
    rows: &[u32],
    hashes: &[u64],
    key: &KeyBytes,
    null_key: &(dyn Fn(usize) -> bool + Sync),
    strategy: DedupStrategy,
    before: &(dyn Fn(u32, u32) -> Ordering + Sync),
) -> Bucket {
    // Entries hold the hash, so probing compares key bytes only on a full hash match.
    let mut table: HashTable<(u64, u32)> = HashTable::with_capacity(rows.len());
    let mut bucket = Bucket {
        winners: Vec::with_capacity(rows.len()),
        more: Vec::new(),
        passthrough: Vec::new(),
    };
    for &row in rows {
        let r = row as usize;
        if null_key(r) {
            bucket.passthrough.push(row);
            continue;
        }
        let hash = hashes[r];
        let bytes = key.bytes(r);
        let winners = &bucket.winners;
        let found = table
            .find(hash, |&(h, g)| {
                h == hash && key.bytes(winners[g as usize] as usize) == bytes
            })
            .map(|&(_, g)| g as usize);
        match found {
            Some(g) => match strategy {
                // Rows arrive in ascending order, so a tie already favours `row` for `last`.
                DedupStrategy::Last => {
                    if before(bucket.winners[g], row) == Ordering::Less {
                        bucket.winners[g] = row;
                    }
                }
                DedupStrategy::First => {
                    if before(row, bucket.winners[g]) == Ordering::Less {
                        bucket.winners[g] = row;
                    }
                }
                DedupStrategy::Merge => bucket.more.push((g as u32, row)),
            },
            None => {
                let g = bucket.winners.len() as u32;
                bucket.winners.push(row);
                table.insert_unique(hash, (hash, g), |&(h, _)| h);
            }
        }
    }
    bucket
}

/// `merge`: one output row per key whose every column holds the value of the key's last row
/// (in order) where that column is not null.
fn fold(
    batch: &RecordBatch,
    buckets: Vec<Bucket>,
    before: &(dyn Fn(u32, u32) -> Ordering + Sync),
) -> CoreResult<RecordBatch> {
    let mut members: Vec<Vec<u32>> = buckets
        .into_par_iter()
        .flat_map_iter(|bucket| {
            let mut groups: Vec<Vec<u32>> = bucket.winners.iter().map(|&r| vec![r]).collect();
            for (g, row) in bucket.more {
                groups[g as usize].push(row);
            }
            for rows in groups.iter_mut().filter(|rows| rows.len() > 1) {
                rows.sort_by(|&a, &b| before(a, b));
            }
            groups
                .into_iter()
                .chain(bucket.passthrough.into_iter().map(|r| vec![r]))
        })
        .collect();
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
    let mut batches = reader.collect::<Result<Vec<_>, _>>()?;
    let rows = match batches.len() {
        1 => batches
            .pop()
            .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())),
        _ => concat_batches(&schema, &batches)?,
    };
    let started = std::time::Instant::now();
    let consolidated = crate::threads::install(|| dedup(&rows, spec))??;
    crate::metrics::DEDUP.record(started.elapsed(), rows.num_rows());
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
#[napi(ts_return_type = "Promise<Buffer>")]
pub fn dedup_arrow_ipc<'env>(
    env: &'env Env,
    data: Buffer,
    options: DedupOptions,
) -> napi::Result<PromiseRaw<'env, Buffer>> {
    let spec = DedupSpec::from(options);
    spawn(env, async move {
        let out = crate::error::off_thread(move || dedup_ipc_blocking(&data, &spec)).await?;
        Ok(Buffer::from(out))
    })
}
