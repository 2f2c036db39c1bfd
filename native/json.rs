//! JSON payloads into Arrow rows with arrow-json's tape decoder: a whole chunk in one pass, and
//! only when that fails each message alone, to learn which ones do not fit and why.

use arrow_json::ReaderBuilder;
use deltalake::arrow::array::RecordBatch;

use crate::decode::Rejection;
use crate::error::{CoreError, CoreResult};
use crate::messages::Messages;

/// A payload must hold a JSON object; anything else is rejected before decoding.
pub fn screen_payload(payload: &[u8]) -> Result<(), (&'static str, String)> {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(("empty_payload", "the message has no payload".into())),
        Some(b'{') => Ok(()),
        // An array, or the start of one: not an object either way, and never parsed here (a
        // hostile payload may nest thousands deep).
        Some(b'[') => Err((
            "not_an_object",
            "the payload is a JSON array, not an object".into(),
        )),
        // Only rejected payloads get here, so parsing them once more to tell valid JSON that is
        // not an object (`[1, 2]`, `42`) from text that is not JSON at all costs nothing.
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() => Err((
            "not_an_object",
            "the payload is JSON but not an object".into(),
        )),
        Some(_) => Err(("malformed_json", "the payload is not JSON".into())),
    }
}

/// Decodes the messages at `indices` with decoders from `builder`. Returns the rows of the
/// messages that decoded and their indices; the others are added to `rejected`.
pub fn decode_json(
    builder: &dyn Fn() -> ReaderBuilder,
    messages: &Messages<'_>,
    indices: &[usize],
    rejected: &mut Vec<Rejection>,
) -> CoreResult<(Option<RecordBatch>, Vec<usize>)> {
    if indices.is_empty() {
        return Ok((None, Vec::new()));
    }
    if let Some(batch) = decode_together(builder, messages, indices)? {
        return Ok((Some(batch), indices.to_vec()));
    }
    let mut good = Vec::with_capacity(indices.len());
    for &i in indices {
        match decode_alone(builder, messages.payload(i))? {
            Ok(()) => good.push(i),
            Err((kind, detail)) => rejected.push(Rejection::new(i, kind, detail)),
        }
    }
    if good.is_empty() {
        return Ok((None, good));
    }
    match decode_together(builder, messages, &good)? {
        Some(batch) => Ok((Some(batch), good)),
        None => Err(CoreError::Internal(
            "messages that decode one by one failed to decode together".into(),
        )),
    }
}

/// One pass over all messages; `None` when any message is malformed or misaligned.
fn decode_together(
    builder: &dyn Fn() -> ReaderBuilder,
    messages: &Messages<'_>,
    indices: &[usize],
) -> CoreResult<Option<RecordBatch>> {
    let mut decoder = builder()
        .with_batch_size(indices.len() + 1)
        .build_decoder()?;
    for (n, &i) in indices.iter().enumerate() {
        let payload = messages.payload(i);
        match decoder.decode(payload) {
            Ok(read)
                if read == payload.len()
                    && !decoder.has_partial_record()
                    && decoder.len() == n + 1 => {}
            _ => return Ok(None),
        }
    }
    match decoder.flush() {
        Ok(Some(batch)) if batch.num_rows() == indices.len() => Ok(Some(batch)),
        _ => Ok(None),
    }
}

/// Decodes one message on its own, to learn why it does not fit.
fn decode_alone(
    builder: &dyn Fn() -> ReaderBuilder,
    payload: &[u8],
) -> CoreResult<Result<(), (&'static str, String)>> {
    // JSON is UTF-8 text (RFC 8259); arrow-json would report a bad string as a type mismatch.
    if let Err(e) = std::str::from_utf8(payload) {
        return Ok(Err((
            "malformed_json",
            format!("the payload is not UTF-8 text (byte {})", e.valid_up_to()),
        )));
    }
    let mut decoder = builder().with_batch_size(2).build_decoder()?;
    let read = match decoder.decode(payload) {
        Ok(read) => read,
        Err(err) => {
            return Ok(Err((
                "malformed_json",
                clean_arrow_message(&err.to_string()),
            )))
        }
    };
    if decoder.has_partial_record() {
        return Ok(Err((
            "malformed_json",
            "the JSON value is incomplete".into(),
        )));
    }
    if read != payload.len() || decoder.len() != 1 {
        return Ok(Err((
            "malformed_json",
            "the payload holds more than one JSON value".into(),
        )));
    }
    Ok(match decoder.flush() {
        Ok(Some(batch)) if batch.num_rows() == 1 => Ok(()),
        Ok(_) => Err(("malformed_json", "the payload decoded to no row".into())),
        Err(err) => {
            let detail = clean_arrow_message(&err.to_string());
            let kind = if detail.contains("missing from schema") {
                "unknown_field"
            } else {
                "type_mismatch"
            };
            Err((kind, detail))
        }
    })
}

fn clean_arrow_message(message: &str) -> String {
    message
        .trim_start_matches("Json error: ")
        .trim_start_matches("Parser error: ")
        .to_string()
}
