#![deny(clippy::all)]
//! Native core of kafka-delta-rust: decodes packed Kafka batches into Arrow, stages them by day
//! and commits them to Delta Lake with the Kafka positions they cover. It knows nothing of Kafka
//! clients: it sees bytes, offsets and partitions.

mod buckets;
mod consolidate;
mod create;
mod day;
mod dead_letters;
mod debezium;
mod decode;
mod decode_days;
mod dedup;
mod error;
mod evolve;
mod js_error;
mod json;
mod keys;
mod logging;
mod maintenance;
mod memory;
mod merge;
mod messages;
mod metadata;
mod metrics;
mod optimize;
mod positions;
mod rejection;
mod retry;
mod schema_change;
mod segment;
mod spill;
mod spill_files;
mod spill_manifest;
mod spill_read;
mod stage;
mod stage_work;
mod staged_source;
mod table;
mod target;
mod threads;
mod timestamps;
mod transform;
mod txn_index;
mod verify;
mod write;
mod write_settings;

use napi_derive::napi;

/// Versions of the native core and the libraries it was built with.
#[napi(object)]
pub struct NativeVersions {
    /// This crate's version.
    pub core: String,
    /// The deltalake (delta-rs) crate.
    pub deltalake: String,
    /// The Arrow crates.
    pub arrow: String,
}

/// The versions the native core was built with.
#[napi(catch_unwind)]
pub fn native_versions() -> NativeVersions {
    NativeVersions {
        core: env!("CARGO_PKG_VERSION").to_string(),
        deltalake: env!("KDR_DELTALAKE_VERSION").to_string(),
        arrow: env!("KDR_ARROW_VERSION").to_string(),
    }
}
