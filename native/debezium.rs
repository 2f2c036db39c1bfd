//! Debezium change events (`kafka.format: debezium`): each message's envelope is unwrapped
//! before the JSON decode, so the row image goes through the same decoder as a plain JSON
//! record. `op` c (create), r (snapshot read) and u (update) upsert the `after` image; d
//! (delete) deletes the row named by the `before` image; a Kafka tombstone (the null value
//! Debezium sends after a delete, for compaction) is skipped. The envelope may be bare or
//! wrapped by the JSON converter's `{"schema": .., "payload": ..}`.
//!
//! The envelope is read with a byte scanner that only finds the spans of the top-level values:
//! the image itself is parsed once, by the decoder, like any other payload.

use std::ops::Range;

use deltalake::arrow::datatypes::{DataType, Field};
use rayon::prelude::*;

use crate::messages::Messages;

/// The staged column telling a delete (true) from an upsert (false): placed after the table's
/// columns, before the position columns, so it travels through spill and consolidation with
/// its row; the MERGE uses it as its delete condition and never writes it.
pub const DELETE_COLUMN: &str = "__kdr_delete";

pub fn delete_field() -> Field {
    Field::new(DELETE_COLUMN, DataType::Boolean, false)
}

/// What one message means.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A row image (`span` of the payload) to upsert or, with `delete`, to delete by its key.
    Row {
        span: Range<usize>,
        delete: bool,
        /// The envelope's `ts_ms`: when the connector saw the change.
        ts_ms: Option<i64>,
    },
    /// Nothing to write: a tombstone.
    Skip,
    /// Not a change event this pipeline can apply: a dead letter with this reason.
    Reject(&'static str, String),
}

/// The batch's messages with their envelopes unwrapped: where each one's image lies in the
/// payload buffer (a message that has none gets an empty span) and what each message means.
pub struct Unwrapped {
    starts: Vec<u32>,
    ends: Vec<u32>,
    pub changes: Vec<Change>,
}

impl Unwrapped {
    pub fn of(messages: &Messages<'_>) -> Self {
        let changes: Vec<Change> = (0..messages.len())
            .into_par_iter()
            .map(|i| {
                if messages.is_tombstone(i) {
                    Change::Skip
                } else {
                    change_of(messages.payload(i))
                }
            })
            .collect();
        let (starts, ends) = changes
            .iter()
            .enumerate()
            .map(|(i, change)| {
                let whole = messages.payload_span(i);
                let image = match change {
                    Change::Row { span, .. } => whole.start + span.start..whole.start + span.end,
                    _ => whole.start..whole.start,
                };
                (image.start as u32, image.end as u32)
            })
            .unzip();
        Unwrapped {
            starts,
            ends,
            changes,
        }
    }

    /// The messages with their images as payloads (read in place, not copied); every other
    /// column as it was.
    pub fn view<'a>(&'a self, messages: &Messages<'a>) -> Messages<'a> {
        Messages {
            payloads: messages.payloads,
            payload_ends: &self.ends,
            payload_starts: Some(&self.starts),
            topic_indexes: messages.topic_indexes,
            partitions: messages.partitions,
            offsets: messages.offsets,
            timestamps: messages.timestamps,
            keys: messages.keys,
            headers: messages.headers,
            absent: messages.absent,
        }
    }
}

fn bad(detail: impl Into<String>) -> Change {
    Change::Reject("bad_change_event", detail.into())
}

/// Reads one envelope.
pub fn change_of(payload: &[u8]) -> Change {
    let Some(mut fields) = top_level(payload, 0) else {
        return bad("the payload is not a JSON object (a Debezium change event)");
    };
    // The JSON converter with schemas on wraps the event: {"schema": .., "payload": ..}.
    if let Some(inner) = fields.get("payload") {
        if is_null(payload, &inner) {
            return Change::Skip;
        }
        match top_level(payload, inner.start) {
            Some(found) => fields = found,
            None => return bad("the envelope's \"payload\" is not an object"),
        }
    }
    let Some(op) = fields.get("op") else {
        return bad("the change event has no \"op\"");
    };
    let op = serde_json::from_slice::<String>(&payload[op.clone()]).unwrap_or_default();
    let (image, delete) = match op.as_str() {
        "c" | "r" | "u" => ("after", false),
        "d" => ("before", true),
        "t" => return bad("op \"t\" (a truncate) names no row; it is not applied"),
        other => return bad(format!("op {other:?} is not one of c, r, u, d")),
    };
    let span = match fields.get(image) {
        Some(span) if payload[span.start] == b'{' => span,
        _ => {
            return bad(format!(
                "op {op:?} needs the {image:?} image, which is missing or not an object \
                 (for deletes, give the table REPLICA IDENTITY FULL or its equivalent)"
            ))
        }
    };
    let ts_ms = fields
        .get("ts_ms")
        .and_then(|s| std::str::from_utf8(&payload[s]).ok())
        .and_then(|s| s.parse::<i64>().ok());
    Change::Row {
        span,
        delete,
        ts_ms,
    }
}

fn is_null(payload: &[u8], span: &Range<usize>) -> bool {
    &payload[span.clone()] == b"null"
}

/// The top-level members of the object starting at `at` (after whitespace) that a change event
/// uses, with the spans of their values; `None` when it is not a well-formed object.
fn top_level(payload: &[u8], at: usize) -> Option<Members> {
    let mut scan = Scanner { bytes: payload, at };
    scan.skip_space();
    scan.expect(b'{')?;
    let mut members = Members::default();
    scan.skip_space();
    if scan.peek()? == b'}' {
        return Some(members);
    }
    loop {
        scan.skip_space();
        let key = scan.string()?;
        scan.skip_space();
        scan.expect(b':')?;
        scan.skip_space();
        let start = scan.at;
        scan.value(0)?;
        members.note(&payload[key], start..scan.at);
        scan.skip_space();
        match scan.next()? {
            b',' => continue,
            b'}' => return Some(members),
            _ => return None,
        }
    }
}

/// The members a change event is read by.
#[derive(Default)]
struct Members {
    found: Vec<(&'static str, Range<usize>)>,
}

const MEMBERS: [&str; 5] = ["before", "after", "op", "ts_ms", "payload"];

impl Members {
    fn note(&mut self, key: &[u8], span: Range<usize>) {
        if let Some(name) = MEMBERS.iter().find(|m| m.as_bytes() == key) {
            // The last of duplicate keys wins, as in most JSON readers.
            self.found.retain(|(n, _)| n != name);
            self.found.push((name, span));
        }
    }

    fn get(&self, name: &str) -> Option<Range<usize>> {
        self.found
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
    }
}

/// Deeper values are refused rather than followed (a hostile payload may nest without end).
const MAX_DEPTH: usize = 256;

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// A string; returns the span of its content (escapes left as they are).
    fn string(&mut self) -> Option<Range<usize>> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => return Some(start..self.at - 1),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// Skips one value of any kind.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let close = if self.next()? == b'{' { b'}' } else { b']' };
                self.skip_space();
                if self.peek()? == close {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.skip_space();
                    if close == b'}' {
                        self.string()?;
                        self.skip_space();
                        self.expect(b':')?;
                        self.skip_space();
                    }
                    self.value(depth + 1)?;
                    self.skip_space();
                    match self.next()? {
                        b',' => continue,
                        b if b == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => {
                // A number or a literal: up to the next delimiter.
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payload: &str) -> (String, bool, Option<i64>) {
        match change_of(payload.as_bytes()) {
            Change::Row {
                span,
                delete,
                ts_ms,
            } => (payload[span].to_string(), delete, ts_ms),
            other => panic!("not a row: {other:?}"),
        }
    }

    #[test]
    fn upserts_take_after_and_deletes_take_before() {
        let create = r#"{"before":null,"after":{"id":1,"s":"a,}"},"op":"c","ts_ms":17}"#;
        assert_eq!(
            row(create),
            (r#"{"id":1,"s":"a,}"}"#.into(), false, Some(17))
        );
        let update = r#"{"op":"u","before":{"id":1},"after":{"id":1,"n":[1,{"x":2}]}}"#;
        assert_eq!(
            row(update),
            (r#"{"id":1,"n":[1,{"x":2}]}"#.into(), false, None)
        );
        let delete = r#" { "before" : {"id":1,"q":"\"}"} , "after" : null , "op" : "d" } "#;
        assert_eq!(row(delete), (r#"{"id":1,"q":"\"}"}"#.into(), true, None));
        let snapshot = r#"{"after":{"id":2},"op":"r","source":{"lsn":5,"x":[true,false,null]}}"#;
        assert_eq!(row(snapshot), (r#"{"id":2}"#.into(), false, None));
    }

    #[test]
    fn the_json_converter_wrapping_is_unwrapped() {
        let wrapped = r#"{"schema":{"type":"struct","fields":[{"field":"op"}]},
            "payload":{"before":null,"after":{"id":3},"op":"c","ts_ms":1700000000000}}"#;
        assert_eq!(
            row(wrapped),
            (r#"{"id":3}"#.into(), false, Some(1_700_000_000_000))
        );
        assert_eq!(
            change_of(br#"{"schema":{"type":"struct"},"payload":null}"#),
            Change::Skip
        );
    }

    #[test]
    fn events_that_name_no_row_are_refused_with_a_reason() {
        let reason = |p: &str| match change_of(p.as_bytes()) {
            Change::Reject(kind, detail) => format!("{kind}: {detail}"),
            other => panic!("accepted {p}: {other:?}"),
        };
        assert!(reason(r#"{"after":{"id":1}}"#).contains("no \"op\""));
        assert!(reason(r#"{"op":"d","before":null}"#).contains("\"before\" image"));
        assert!(reason(r#"{"op":"u","after":7}"#).contains("\"after\" image"));
        assert!(reason(r#"{"op":"t"}"#).contains("truncate"));
        assert!(reason(r#"{"op":"x","after":{}}"#).contains("\"x\""));
        assert!(reason(r#"{"op":"c","after":{"id":1}"#).contains("not a JSON object"));
        assert!(reason("[1]").contains("not a JSON object"));
        assert!(reason(&format!(
            r#"{{"op":"c","after":{}1{}}}"#,
            "[".repeat(300),
            "]".repeat(300)
        ))
        .contains("not a JSON object"));
    }
}
