//! Why a message went to the dead-letter sink, with a detail of bounded size.

/// The longest `detail` a dead letter keeps: arrow-json's errors quote the offending value, and
/// a dead letter that repeats a megabyte payload in its detail would not fit its sink.
pub const MAX_DETAIL_BYTES: usize = 1024;

/// Why a message went to the dead-letter sink: a short, low-cardinality kind and the detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub message_index: usize,
    pub kind: &'static str,
    /// At most `MAX_DETAIL_BYTES`.
    pub detail: String,
}

impl Rejection {
    pub fn new(message_index: usize, kind: &'static str, detail: String) -> Self {
        Self {
            message_index,
            kind,
            detail: bounded(detail),
        }
    }
}

/// `detail` cut to `MAX_DETAIL_BYTES` at a character boundary, saying how much was cut.
fn bounded(mut detail: String) -> String {
    if detail.len() <= MAX_DETAIL_BYTES {
        return detail;
    }
    let total = detail.len();
    let mut end = MAX_DETAIL_BYTES - 40;
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    detail.truncate(end);
    detail.push_str(&format!("... ({} of {total} bytes cut)", total - end));
    detail
}
