//! Decoding tests: rows, days, metadata and every rejection kind.

use super::*;
use crate::messages::{ABSENT_KEY, ABSENT_VALUE};
use crate::rejection::MAX_DETAIL_BYTES;
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
        add_columns: false,
        transform: Default::default(),
        changes: false,
        metadata: KafkaMetadataColumns {
            offset: Some("kafka_offset".into()),
            ..Default::default()
        },
        topics: vec!["events".into()],
        reject_null_keys: Vec::new(),
        epoch_unit: EpochUnit::Millis,
        day_window_years: 10,
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
            payload_starts: None,
            topic_indexes: &self.topics,
            partitions: &self.partitions,
            offsets: &self.offsets,
            timestamps: &self.timestamps,
            keys: None,
            headers: None,
            absent: None,
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
            // Epoch seconds read as the default milliseconds: 1970, outside the day window.
            r#"{"id":"secs","ts":1795435200}"#,
            r#"{"id":"millis","ts":1795435200000}"#,
            r#"{"id":"none"}"#,
            r#"{"id":"bad","ts":"noon"}"#,
            r#"{"id":"future","ts":"2999-01-01T00:00:00Z"}"#,
        ],
    );
    assert_eq!(
        kinds(&decoded),
        vec![
            (1, "day_out_of_range"),
            (3, "no_day"),
            (4, "no_day"),
            (5, "day_out_of_range")
        ]
    );
    let days: Vec<String> = decoded.days.iter().map(|&d| day::format_day(d)).collect();
    assert_eq!(days, vec!["2026-11-21", "2026-11-23"]);

    let mut opts = options(DaySource::Field("ts".into()));
    opts.epoch_unit = EpochUnit::Seconds;
    let spec = DecodeSpec::new(table_schema(), opts).expect("spec");
    let seconds = spec
        .decode(&pack(&[r#"{"id":"secs","ts":1795435200}"#]).messages())
        .expect("decode");
    assert!(seconds.rejected.is_empty(), "{:?}", seconds.rejected);
    assert_eq!(day::format_day(seconds.days[0]), "2026-11-23");

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

fn metadata_schema(key_nullable: bool, key_type: DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("kkey", key_type, key_nullable),
        Field::new("kts", utc_millis(), false),
        Field::new("date_col", DataType::Utf8, false),
    ]))
}

fn metadata_options() -> DecodeOptions {
    let mut opts = options(DaySource::Column);
    opts.metadata = KafkaMetadataColumns {
        key: Some("kkey".into()),
        timestamp: Some("kts".into()),
        ..Default::default()
    };
    opts
}

/// Three messages: keyed "k", an empty key, no key; and a fourth whose key is not UTF-8.
fn keyed_messages() -> (Vec<u8>, Vec<u32>, Vec<u8>) {
    let keys: Vec<u8> = [b"k".as_slice(), b"", b"", &[0xff, 0xfe]].concat();
    let ends = vec![1, 1, 1, 3];
    let absent = vec![0, 0, ABSENT_KEY, 0];
    (keys, ends, absent)
}

#[test]
fn a_keyless_message_gives_a_nullable_key_column_null_and_an_empty_key_stays_empty() {
    let payload = r#"{"id":"a","date_col":"2026-11-23"}"#;
    let packed = pack(&[payload; 4]);
    let (keys, ends, absent) = keyed_messages();
    let mut messages = packed.messages();
    messages.keys = Some((&keys, &ends));
    messages.absent = Some(&absent);
    let spec =
        DecodeSpec::new(metadata_schema(true, DataType::Utf8), metadata_options()).expect("spec");
    let decoded = spec.decode(&messages).expect("decode");
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    let rows = decoded.rows.expect("rows");
    let kkey = rows.column(1).as_string::<i32>();
    // Not UTF-8 into a nullable string column: null (a binary column keeps the bytes).
    assert_eq!(
        kkey.iter().collect::<Vec<_>>(),
        vec![Some("k"), Some(""), None, None]
    );

    let spec =
        DecodeSpec::new(metadata_schema(true, DataType::Binary), metadata_options()).expect("spec");
    let rows = spec.decode(&messages).expect("decode").rows.expect("rows");
    let kkey = rows.column(1).as_binary::<i32>();
    assert_eq!(
        kkey.iter().collect::<Vec<_>>(),
        vec![
            Some(&b"k"[..]),
            Some(&b""[..]),
            None,
            Some(&[0xff, 0xfe][..])
        ]
    );
}

#[test]
fn a_message_that_would_put_null_into_a_not_null_metadata_column_is_a_dead_letter() {
    let payload = r#"{"id":"a","date_col":"2026-11-23"}"#;
    let mut packed = pack(&[payload; 4]);
    let (keys, ends, absent) = keyed_messages();
    packed.timestamps[0] = -1.0;
    let mut messages = packed.messages();
    messages.keys = Some((&keys, &ends));
    messages.absent = Some(&absent);
    let spec =
        DecodeSpec::new(metadata_schema(false, DataType::Utf8), metadata_options()).expect("spec");
    let decoded = spec.decode(&messages).expect("decode");
    assert_eq!(
        kinds(&decoded),
        vec![(0, "no_timestamp"), (2, "no_key"), (3, "key_not_utf8")]
    );
    assert!(decoded.rejected[1].detail.contains("\"kkey\""));
    let rows = decoded.rows.expect("rows");
    assert_eq!(
        rows.column(1).as_string::<i32>().iter().collect::<Vec<_>>(),
        vec![Some("")]
    );
}

#[test]
fn a_tombstone_is_its_own_dead_letter_and_details_are_bounded() {
    let huge = format!(
        r#"{{"id":"big","amount":"{}","date_col":"2026-11-23"}}"#,
        "x".repeat(1 << 20)
    );
    let packed = pack(&[r#"{"id":"a","date_col":"2026-11-23"}"#, "", "", &huge]);
    let absent = [0, ABSENT_VALUE, 0, 0];
    let mut messages = packed.messages();
    messages.absent = Some(&absent);
    let spec = DecodeSpec::new(table_schema(), options(DaySource::Column)).expect("spec");
    let decoded = spec.decode(&messages).expect("decode");
    assert_eq!(
        kinds(&decoded),
        vec![(1, "tombstone"), (2, "empty_payload"), (3, "type_mismatch")]
    );
    let detail = &decoded.rejected[2].detail;
    assert!(detail.len() <= MAX_DETAIL_BYTES, "{}", detail.len());
    assert!(detail.contains("bytes cut"), "{detail}");
}

#[test]
fn numbers_in_a_timestamp_column_are_epoch_milliseconds_by_default() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("kafka_offset", DataType::Int64, true),
        Field::new("date_col", DataType::Utf8, false),
    ]));
    let payloads = [
        r#"{"id":"ms","at":1795435200123,"date_col":"2026-11-23"}"#,
        r#"{"id":"iso","at":"2026-11-23T12:00:00.123456Z","date_col":"2026-11-23"}"#,
        r#"{"id":"none","date_col":"2026-11-23"}"#,
        r#"{"id":"huge","at":9223372036854775807,"date_col":"2026-11-23"}"#,
    ];
    let spec = DecodeSpec::new(schema.clone(), options(DaySource::Column)).expect("spec");
    let decoded = spec.decode(&pack(&payloads).messages()).expect("decode");
    assert_eq!(kinds(&decoded), vec![(3, "type_mismatch")]);
    let rows = decoded.rows.expect("rows");
    let at = rows
        .column(1)
        .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(
        at.iter().collect::<Vec<_>>(),
        vec![
            Some(1_795_435_200_123_000),
            Some(1_795_435_200_123_456),
            None
        ]
    );

    let mut opts = options(DaySource::Column);
    opts.epoch_unit = EpochUnit::Micros;
    let spec = DecodeSpec::new(schema, opts).expect("spec");
    let rows = spec
        .decode(&pack(&payloads[..1]).messages())
        .expect("decode")
        .rows
        .expect("rows");
    let at = rows
        .column(1)
        .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(at.value(0), 1_795_435_200_123);
}

#[path = "transform_tests.rs"]
mod transform;
