//! Decoding tests: rows, days, metadata and every rejection kind.

use super::*;
use deltalake::arrow::array::{AsArray, Float64Array};
use deltalake::arrow::datatypes::Int64Type;

fn table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("kafka_offset", DataType::Int64, true),
        Field::new("date_col", DataType::Utf8, false),
    ]))
}

fn options(day_source: DaySource) -> DecodeOptions {
    DecodeOptions {
        partition_column: "date_col".into(),
        day_source,
        timezone: crate::day::parse_timezone("UTC").expect("tz"),
        reject_unknown_fields: false,
        metadata: KafkaMetadataColumns {
            offset: Some("kafka_offset".into()),
            ..Default::default()
        },
        topics: vec!["events".into()],
        reject_null_keys: Vec::new(),
    }
}

/// Owned columns of a packed batch, for building `Messages` in tests.
struct Packed {
    payloads: Vec<u8>,
    ends: Vec<u32>,
    topics: Vec<u16>,
    partitions: Vec<i32>,
    offsets: Vec<f64>,
    timestamps: Vec<f64>,
}

fn pack(payloads: &[&str]) -> Packed {
    let mut packed = Packed {
        payloads: Vec::new(),
        ends: Vec::new(),
        topics: Vec::new(),
        partitions: Vec::new(),
        offsets: Vec::new(),
        timestamps: Vec::new(),
    };
    for (i, p) in payloads.iter().enumerate() {
        packed.payloads.extend_from_slice(p.as_bytes());
        packed.ends.push(packed.payloads.len() as u32);
        packed.topics.push(0);
        packed.partitions.push((i % 2) as i32);
        packed.offsets.push(100.0 + i as f64);
        // 2026-11-23T12:00:00Z
        packed.timestamps.push(1_795_435_200_000.0);
    }
    packed
}

impl Packed {
    fn messages(&self) -> Messages<'_> {
        Messages {
            payloads: &self.payloads,
            payload_ends: &self.ends,
            topic_indexes: &self.topics,
            partitions: &self.partitions,
            offsets: &self.offsets,
            timestamps: &self.timestamps,
            keys: None,
            headers: None,
        }
    }
}

fn decode(day_source: DaySource, payloads: &[&str]) -> Decoded {
    let spec = DecodeSpec::new(table_schema(), options(day_source)).expect("spec");
    spec.decode(&pack(payloads).messages()).expect("decode")
}

fn kinds(decoded: &Decoded) -> Vec<(usize, &'static str)> {
    decoded
        .rejected
        .iter()
        .map(|r| (r.message_index, r.kind))
        .collect()
}

#[test]
fn good_messages_become_rows_with_metadata_and_positions() {
    let decoded = decode(
        DaySource::Column,
        &[
            r#"{"id":"a","amount":1.5,"date_col":"2026-11-22","extra":{"ignored":true}}"#,
            r#" {"id":"b","date_col":"2026-11-23"} "#,
        ],
    );
    assert!(decoded.rejected.is_empty());
    let rows = decoded.rows.expect("rows");
    assert_eq!(rows.num_rows(), 2);
    assert_eq!(rows.schema().field(4).name(), TOPIC_COLUMN);
    let ids = rows.column(0).as_string::<i32>();
    assert_eq!((ids.value(0), ids.value(1)), ("a", "b"));
    let amount = rows
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("f64");
    assert_eq!(amount.value(0), 1.5);
    assert!(amount.is_null(1));
    let kafka_offsets = rows.column(2).as_primitive::<Int64Type>();
    assert_eq!(kafka_offsets.values().to_vec(), vec![100, 101]);
    let days = rows.column(3).as_string::<i32>();
    assert_eq!((days.value(0), days.value(1)), ("2026-11-22", "2026-11-23"));
    assert_eq!(
        decoded.days,
        vec![
            day::parse_day("2026-11-22").expect("day"),
            day::parse_day("2026-11-23").expect("day")
        ]
    );
}

#[test]
fn each_bad_message_is_rejected_with_its_own_reason() {
    let decoded = decode(
        DaySource::Column,
        &[
            r#"{"id":"ok1","date_col":"2026-11-23"}"#,
            r#"{"id":"broken","#,
            r#"{"id":"t","amount":"lots","date_col":"2026-11-23"}"#,
            r#"{"amount":2,"date_col":"2026-11-23"}"#,
            r#"{"id":"d","date_col":"someday"}"#,
            r#"{"id":"nd"}"#,
            "[1,2]",
            "",
            r#"{"id":"two","date_col":"2026-11-23"}{"id":"three","date_col":"2026-11-23"}"#,
            r#"{"id":"ok2","date_col":"2026-11-23"}"#,
            "not json",
        ],
    );
    assert_eq!(
        kinds(&decoded),
        vec![
            (1, "malformed_json"),
            (2, "type_mismatch"),
            (3, "missing_field"),
            (4, "no_day"),
            (5, "no_day"),
            (6, "not_an_object"),
            (7, "empty_payload"),
            (8, "malformed_json"),
            (10, "malformed_json"),
        ]
    );
    let rows = decoded.rows.expect("rows");
    let ids = rows.column(0).as_string::<i32>();
    assert_eq!(ids.iter().flatten().collect::<Vec<_>>(), vec!["ok1", "ok2"]);
    assert!(
        decoded.rejected[1].detail.contains("amount"),
        "{:?}",
        decoded.rejected[1]
    );
    assert!(decoded.rejected[2].detail.contains("\"id\""));
}

#[test]
fn unknown_fields_can_be_rejected() {
    let mut opts = options(DaySource::Column);
    opts.reject_unknown_fields = true;
    let spec = DecodeSpec::new(table_schema(), opts).expect("spec");
    let packed = pack(&[
        r#"{"id":"a","date_col":"2026-11-23"}"#,
        r#"{"id":"b","date_col":"2026-11-23","surprise":1}"#,
    ]);
    let decoded = spec.decode(&packed.messages()).expect("decode");
    assert_eq!(kinds(&decoded), vec![(1, "unknown_field")]);
}

#[test]
fn days_from_an_event_field_or_the_kafka_timestamp() {
    let decoded = decode(
        DaySource::Field("ts".into()),
        &[
            r#"{"id":"iso","ts":"2026-11-21T23:30:00Z"}"#,
            r#"{"id":"secs","ts":1795435200}"#,
            r#"{"id":"millis","ts":1795435200000}"#,
            r#"{"id":"none"}"#,
            r#"{"id":"bad","ts":"noon"}"#,
        ],
    );
    assert_eq!(kinds(&decoded), vec![(3, "no_day"), (4, "no_day")]);
    let days: Vec<String> = decoded.days.iter().map(|&d| day::format_day(d)).collect();
    assert_eq!(days, vec!["2026-11-21", "2026-11-23", "2026-11-23"]);

    let by_timestamp = decode(DaySource::KafkaTimestamp, &[r#"{"id":"k"}"#]);
    assert!(by_timestamp.rejected.is_empty());
    assert_eq!(day::format_day(by_timestamp.days[0]), "2026-11-23");
}

#[test]
fn large_batches_decode_in_parallel_chunks_in_order() {
    let payloads: Vec<String> = (0..5000)
        .map(|i| {
            if i % 997 == 0 {
                format!(r#"{{"id":"x{i}","amount":"bad","date_col":"2026-11-23"}}"#)
            } else {
                format!(r#"{{"id":"x{i}","amount":{i},"date_col":"2026-11-23"}}"#)
            }
        })
        .collect();
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    let decoded = decode(DaySource::Column, &refs);
    let rejected: Vec<usize> = decoded.rejected.iter().map(|r| r.message_index).collect();
    assert_eq!(rejected, vec![0, 997, 1994, 2991, 3988, 4985]);
    let rows = decoded.rows.expect("rows");
    assert_eq!(rows.num_rows(), 5000 - 6);
    let offsets = rows
        .column_by_name(OFFSET_COLUMN)
        .expect("offsets")
        .as_primitive::<Int64Type>();
    assert!(offsets.values().windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn configuration_that_does_not_fit_the_table_is_refused() {
    let mut opts = options(DaySource::Column);
    opts.partition_column = "missing".into();
    assert!(matches!(
        DecodeSpec::new(table_schema(), opts),
        Err(CoreError::SchemaMismatch(_))
    ));
    let mut opts = options(DaySource::Column);
    opts.metadata.topic = Some("nope".into());
    assert!(matches!(
        DecodeSpec::new(table_schema(), opts),
        Err(CoreError::SchemaMismatch(_))
    ));
}

#[test]
fn inconsistent_batches_are_an_error_not_a_panic() {
    let packed = pack(&[r#"{"id":"a","date_col":"2026-11-23"}"#]);
    let mut messages = packed.messages();
    messages.partitions = &[];
    let spec = DecodeSpec::new(table_schema(), options(DaySource::Column)).expect("spec");
    assert!(matches!(
        spec.decode(&messages),
        Err(CoreError::InvalidArgument(_))
    ));
}
