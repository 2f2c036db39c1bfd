//! The bytes that identify a row's key, shared by consolidation (which groups rows on them) and
//! by the spill buckets (which place every row of a key in the same bucket), and a stable hash
//! of them: bucket numbers are written to disk and read back by later builds of the program, so
//! their hash must not depend on a library version, a seed or the CPU's features.

use std::ops::Range;

use deltalake::arrow::array::{Array, ArrayRef, LargeStringArray, StringArray, StringViewArray};
use deltalake::arrow::buffer::NullBuffer;
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::row::{RowConverter, Rows, SortField};
use rayon::prelude::*;

use crate::error::CoreResult;

/// Rows per parallel chunk below which splitting the work costs more than it saves.
pub const MIN_CHUNK: usize = 16 * 1024;

/// The bytes that identify each row's key: read straight from a single string or fixed-width
/// column, or from Arrow's row format (converted column-wise, one buffer per chunk) for
/// composite keys and other types.
pub struct KeyBytes {
    access: KeyAccess,
    /// Rows with a null in any key column; they are never grouped.
    pub nulls: Option<NullBuffer>,
}

enum KeyAccess {
    Utf8(StringArray),
    LargeUtf8(LargeStringArray),
    Utf8View(StringViewArray),
    /// Little-endian value bytes of a primitive column.
    Fixed {
        values: deltalake::arrow::buffer::Buffer,
        width: usize,
    },
    Rows {
        chunks: Vec<Rows>,
        chunk_len: usize,
    },
}

impl KeyBytes {
    pub fn new(keys: &[ArrayRef], n: usize) -> CoreResult<Self> {
        let nulls = keys
            .iter()
            .fold(None, |acc: Option<NullBuffer>, k| {
                NullBuffer::union(acc.as_ref(), k.logical_nulls().as_ref())
            })
            .filter(|nulls| nulls.null_count() > 0);
        let single = match keys {
            [only] => Self::single(only),
            _ => None,
        };
        let access = match single {
            Some(access) => access,
            None => Self::rows(keys, n)?,
        };
        Ok(Self { access, nulls })
    }

    fn single(key: &ArrayRef) -> Option<KeyAccess> {
        let any = key.as_any();
        match key.data_type() {
            DataType::Utf8 => any
                .downcast_ref::<StringArray>()
                .cloned()
                .map(KeyAccess::Utf8),
            DataType::LargeUtf8 => any
                .downcast_ref::<LargeStringArray>()
                .cloned()
                .map(KeyAccess::LargeUtf8),
            DataType::Utf8View => any
                .downcast_ref::<StringViewArray>()
                .cloned()
                .map(KeyAccess::Utf8View),
            t if t.is_primitive() => {
                let width = t.primitive_width()?;
                let data = key.to_data();
                let values = data.buffers().first()?.slice(data.offset() * width);
                Some(KeyAccess::Fixed { values, width })
            }
            _ => None,
        }
    }

    fn rows(keys: &[ArrayRef], n: usize) -> CoreResult<KeyAccess> {
        let threads = rayon::current_num_threads().max(1);
        let chunk_len = n.div_ceil(threads * 4).max(MIN_CHUNK);
        let fields: Vec<SortField> = keys
            .iter()
            .map(|k| SortField::new(k.data_type().clone()))
            .collect();
        let ranges: Vec<Range<usize>> = (0..n)
            .step_by(chunk_len)
            .map(|s| s..(s + chunk_len).min(n))
            .collect();
        let chunks = ranges
            .into_par_iter()
            .map(|range| {
                let sliced: Vec<ArrayRef> = keys
                    .iter()
                    .map(|k| k.slice(range.start, range.len()))
                    .collect();
                RowConverter::new(fields.clone())?.convert_columns(&sliced)
            })
            .collect::<Result<Vec<Rows>, _>>()?;
        Ok(KeyAccess::Rows { chunks, chunk_len })
    }

    pub fn bytes(&self, row: usize) -> &[u8] {
        match &self.access {
            KeyAccess::Utf8(a) => a.value(row).as_bytes(),
            KeyAccess::LargeUtf8(a) => a.value(row).as_bytes(),
            KeyAccess::Utf8View(a) => a.value(row).as_bytes(),
            KeyAccess::Fixed { values, width } => {
                &values.as_slice()[row * width..(row + 1) * width]
            }
            KeyAccess::Rows { chunks, chunk_len } => {
                chunks[row / chunk_len].row(row % chunk_len).data()
            }
        }
    }
}

impl KeyBytes {
    /// Whether row `r` has a null in a key column (such rows are never grouped).
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|nulls| nulls.is_null(row))
    }
}

/// A 64-bit hash of `bytes` that is the same on every platform and in every build: 8-byte
/// little-endian words folded with a multiply-rotate, then murmur3's finalizer to spread the
/// bits (buckets are taken from the top bits).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    fmix64(h)
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The stable hash of every row's key (0 for a row with a null key), in parallel.
pub fn stable_hashes(keys: &[ArrayRef], n: usize) -> CoreResult<Vec<u64>> {
    let key = KeyBytes::new(keys, n)?;
    Ok((0..n)
        .into_par_iter()
        .with_min_len(MIN_CHUNK)
        .map(|r| {
            if key.is_null(r) {
                0
            } else {
                stable_hash(key.bytes(r))
            }
        })
        .collect())
}
