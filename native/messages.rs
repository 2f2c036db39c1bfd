//! A packed batch of Kafka messages as native code sees it: flat buffers and typed arrays
//! borrowed from JavaScript (see `ts/kafka/packer.ts`).

use std::ops::Range;

use crate::error::{CoreError, CoreResult};

/// Borrowed columns of one packed batch of messages (see `ts/kafka/packer.ts`).
pub struct Messages<'a> {
    pub payloads: &'a [u8],
    /// Exclusive end of each payload in `payloads`; message i spans `ends[i-1]..ends[i]`.
    pub payload_ends: &'a [u32],
    /// Where each payload starts, when they do not follow each other (the row images inside
    /// change events, `debezium.rs`); `None`: each starts where the one before ends.
    pub payload_starts: Option<&'a [u32]>,
    pub topic_indexes: &'a [u16],
    pub partitions: &'a [i32],
    pub offsets: &'a [f64],
    /// Kafka timestamps in epoch milliseconds; negative or NaN when the message has none.
    pub timestamps: &'a [f64],
    /// Keys back to back with their ends, when a table column takes the key.
    pub keys: Option<(&'a [u8], &'a [u32])>,
    /// Headers as JSON objects back to back with their ends, when a table column takes them.
    pub headers: Option<(&'a [u8], &'a [u32])>,
    /// Per message, the `ABSENT_*` bits of what it does not have; `None`: it has everything.
    pub absent: Option<&'a [u8]>,
}

/// The message has no value (a tombstone), not an empty one.
pub const ABSENT_VALUE: u8 = 1;
/// The message has no key, not an empty one.
pub const ABSENT_KEY: u8 = 2;

fn span(ends: &[u32], i: usize) -> Range<usize> {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    start..ends[i] as usize
}

impl Messages<'_> {
    pub fn len(&self) -> usize {
        self.payload_ends.len()
    }

    pub fn payload(&self, i: usize) -> &[u8] {
        &self.payloads[self.payload_span(i)]
    }

    /// Where message i's payload lies in `payloads`.
    pub fn payload_span(&self, i: usize) -> Range<usize> {
        match self.payload_starts {
            Some(starts) => starts[i] as usize..self.payload_ends[i] as usize,
            None => span(self.payload_ends, i),
        }
    }

    /// The message's key; `None` when it has none (an empty key is `Some` of no bytes).
    pub fn key(&self, i: usize) -> Option<&[u8]> {
        if self.lacks(i, ABSENT_KEY) {
            return None;
        }
        self.keys.map(|(bytes, ends)| &bytes[span(ends, i)])
    }

    /// Whether the message is a tombstone: a null value rather than an empty one.
    pub fn is_tombstone(&self, i: usize) -> bool {
        self.lacks(i, ABSENT_VALUE)
    }

    fn lacks(&self, i: usize, bit: u8) -> bool {
        self.absent.is_some_and(|flags| flags[i] & bit != 0)
    }

    /// The message's headers as a JSON object; `None` when it has none.
    pub fn headers(&self, i: usize) -> Option<&str> {
        self.headers
            .map(|(bytes, ends)| &bytes[span(ends, i)])
            .filter(|bytes| !bytes.is_empty())
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }

    pub fn offset(&self, i: usize) -> i64 {
        self.offsets[i] as i64
    }

    /// Checks that every column has one entry per message and every span is in bounds.
    pub fn validate(&self) -> CoreResult<()> {
        let n = self.len();
        let same_len = [
            self.topic_indexes.len(),
            self.partitions.len(),
            self.offsets.len(),
            self.timestamps.len(),
            self.absent.map_or(n, <[u8]>::len),
        ]
        .iter()
        .all(|&len| len == n);
        let ends_ok = |bytes: &[u8], ends: &[u32]| {
            ends.windows(2).all(|w| w[0] <= w[1])
                && ends.last().is_none_or(|&end| end as usize <= bytes.len())
        };
        let optional_ok = |column: Option<(&[u8], &[u32])>| {
            column.is_none_or(|(bytes, ends)| ends.len() == n && ends_ok(bytes, ends))
        };
        let payloads_ok = match self.payload_starts {
            None => ends_ok(self.payloads, self.payload_ends),
            Some(starts) => {
                starts.len() == n
                    && starts
                        .iter()
                        .zip(self.payload_ends)
                        .all(|(&start, &end)| start <= end && end as usize <= self.payloads.len())
            }
        };
        if same_len && optional_ok(self.keys) && optional_ok(self.headers) && payloads_ok {
            Ok(())
        } else {
            Err(CoreError::InvalidArgument(
                "message batch columns disagree in length or point outside the payload buffer"
                    .into(),
            ))
        }
    }
}
