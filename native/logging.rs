//! Native log records (delta-rs, DataFusion and object_store use `tracing` or `log`) collected
//! into a bounded queue that the TypeScript side drains into its own logger, so one logger with
//! one level and one format sees everything. Pull, not push: a record never calls into
//! JavaScript from a foreign thread, and a burst costs a queue push, not a thread hop.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, Once};

use napi_derive::napi;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Severity of a native log record, as the TypeScript logger names its levels.
#[napi(string_enum)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NativeLogLevel {
    #[napi(value = "off")]
    Off,
    #[napi(value = "error")]
    Error,
    #[napi(value = "warn")]
    Warn,
    #[napi(value = "info")]
    Info,
    #[napi(value = "debug")]
    Debug,
    #[napi(value = "trace")]
    Trace,
}

impl NativeLogLevel {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Error,
            2 => Self::Warn,
            3 => Self::Info,
            4 => Self::Debug,
            5 => Self::Trace,
            _ => Self::Off,
        }
    }

    fn of_tracing(level: &tracing::Level) -> Self {
        match *level {
            tracing::Level::ERROR => Self::Error,
            tracing::Level::WARN => Self::Warn,
            tracing::Level::INFO => Self::Info,
            tracing::Level::DEBUG => Self::Debug,
            tracing::Level::TRACE => Self::Trace,
        }
    }

    fn of_log(level: log::Level) -> Self {
        match level {
            log::Level::Error => Self::Error,
            log::Level::Warn => Self::Warn,
            log::Level::Info => Self::Info,
            log::Level::Debug => Self::Debug,
            log::Level::Trace => Self::Trace,
        }
    }
}

/// One log record from native code.
#[napi(object)]
pub struct NativeLogRecord {
    pub level: NativeLogLevel,
    /// The Rust module that logged it, e.g. `deltalake_core::kernel::transaction`.
    pub target: String,
    pub message: String,
    /// Structured fields of the record, rendered as text.
    pub fields: Vec<NativeLogField>,
    /// When it was logged, in epoch milliseconds.
    pub time_ms: f64,
}

/// A named value attached to a native log record.
#[napi(object)]
pub struct NativeLogField {
    pub name: String,
    pub value: String,
}

/// What `drainNativeLogs` returns.
#[napi(object)]
pub struct NativeLogDrain {
    pub records: Vec<NativeLogRecord>,
    /// Records dropped since the last drain because the queue was full.
    pub dropped: u32,
}

/// A burst beyond this (e.g. TRACE from DataFusion while JavaScript is busy) drops the oldest
/// records and counts them, rather than growing without bound.
const QUEUE_LIMIT: usize = 10_000;

static LEVEL: AtomicU8 = AtomicU8::new(0);
static QUEUE: Mutex<VecDeque<NativeLogRecord>> = Mutex::new(VecDeque::new());
static DROPPED: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

fn current_level() -> NativeLogLevel {
    NativeLogLevel::from_u8(LEVEL.load(Ordering::Relaxed))
}

/// The level a record is reported at. A library's ERROR is about one call, which the core may
/// retry (a storage failure, a commit conflict): it is reported as WARN, and the core logs its
/// own ERROR when it gives up, so an alert on ERROR means an operator is needed.
fn reported_level(level: NativeLogLevel, target: &str) -> NativeLogLevel {
    if level == NativeLogLevel::Error && !target.starts_with(env!("CARGO_CRATE_NAME")) {
        NativeLogLevel::Warn
    } else {
        level
    }
}

/// Whether a record is kept. Libraries (delta-rs, its kernel, DataFusion) narrate every snapshot
/// and scan at INFO, so their records need one level more verbosity than ours: INFO shows their
/// warnings, DEBUG their INFO, TRACE everything.
fn enabled(level: NativeLogLevel, target: &str) -> bool {
    if level == NativeLogLevel::Off {
        return false;
    }
    let threshold = current_level() as u8;
    let ours = target.starts_with(env!("CARGO_CRATE_NAME"));
    let allowed = if ours || level <= NativeLogLevel::Warn {
        threshold
    } else {
        threshold.saturating_sub(1)
    };
    level as u8 <= allowed
}

fn push(record: NativeLogRecord) {
    let Ok(mut queue) = QUEUE.lock() else { return };
    if queue.len() >= QUEUE_LIMIT {
        queue.pop_front();
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
    queue.push_back(record);
}

fn now_ms() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64
}

/// Collects an event's `message` and other fields.
#[derive(Default)]
struct FieldText {
    message: String,
    fields: Vec<NativeLogField>,
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push(NativeLogField {
                name: field.name().to_string(),
                value: value.to_string(),
            });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push(NativeLogField {
                name: field.name().to_string(),
                value: text,
            });
        }
    }
}

/// Records events only; spans are accepted (libraries open them) but not tracked.
struct QueueSubscriber {
    next_span: AtomicU64,
}

impl Subscriber for QueueSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        enabled(
            NativeLogLevel::of_tracing(metadata.level()),
            metadata.target(),
        )
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // The level changes at runtime: no static hint, `enabled` decides per callsite.
        None
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed).max(1))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let level = reported_level(
            NativeLogLevel::of_tracing(metadata.level()),
            metadata.target(),
        );
        if !enabled(level, metadata.target()) {
            return;
        }
        let mut text = FieldText::default();
        event.record(&mut text);
        push(NativeLogRecord {
            level,
            target: metadata.target().to_string(),
            message: text.message,
            fields: text.fields,
            time_ms: now_ms(),
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Records of crates that log through `log` rather than `tracing`.
struct QueueLogger;

impl log::Log for QueueLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        enabled(NativeLogLevel::of_log(metadata.level()), metadata.target())
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = reported_level(NativeLogLevel::of_log(record.level()), record.target());
        if !enabled(level, record.target()) {
            return;
        }
        push(NativeLogRecord {
            level,
            target: record.target().to_string(),
            message: record.args().to_string(),
            fields: Vec::new(),
            time_ms: now_ms(),
        });
    }

    fn flush(&self) {}
}

fn install() {
    INSTALL.call_once(|| {
        // Both fail only when the host process installed its own first; then that one keeps
        // the records and ours stays quiet.
        let _ = tracing::subscriber::set_global_default(QueueSubscriber {
            next_span: AtomicU64::new(1),
        });
        if log::set_boxed_logger(Box::new(QueueLogger)).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}

/// Sets which native records are kept for `drainNativeLogs` (`off` keeps none).
#[napi(catch_unwind)]
pub fn set_native_log_level(level: NativeLogLevel) {
    install();
    LEVEL.store(level as u8, Ordering::Relaxed);
    // Callsites cache their interest; a level change must reach them.
    tracing::callsite::rebuild_interest_cache();
}

/// Takes the native log records kept since the last call, oldest first.
#[napi(catch_unwind)]
pub fn drain_native_logs() -> NativeLogDrain {
    let records = match QUEUE.lock() {
        Ok(mut queue) => queue.drain(..).collect(),
        Err(_) => Vec::new(),
    };
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    NativeLogDrain {
        records,
        dropped: u32::try_from(dropped).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_records_at_or_above_the_level_only() {
        set_native_log_level(NativeLogLevel::Info);
        drain_native_logs();
        tracing::info!(table = "t1", "kept {}", 1);
        tracing::debug!("dropped");
        log::warn!("from log");
        tracing::info!(target: "deltalake_core::kernel", "library chatter");
        tracing::warn!(target: "deltalake_core::kernel", "library warning");
        tracing::error!(target: "buoyant_kernel::snapshot", "library error");
        tracing::error!("our error");
        let drained = drain_native_logs();
        let level_of = |message: &str| {
            drained
                .records
                .iter()
                .find(|r| r.message == message)
                .map(|r| r.level)
        };
        assert_eq!(level_of("library error"), Some(NativeLogLevel::Warn));
        assert_eq!(level_of("our error"), Some(NativeLogLevel::Error));
        let messages: Vec<&str> = drained.records.iter().map(|r| r.message.as_str()).collect();
        assert!(messages.contains(&"kept 1"), "{messages:?}");
        assert!(messages.contains(&"from log"), "{messages:?}");
        assert!(!messages.contains(&"dropped"), "{messages:?}");
        assert!(!messages.contains(&"library chatter"), "{messages:?}");
        assert!(messages.contains(&"library warning"), "{messages:?}");
        let kept = drained
            .records
            .iter()
            .find(|r| r.message == "kept 1")
            .map(|r| (r.level, r.fields.len()));
        assert_eq!(kept, Some((NativeLogLevel::Info, 1)));
        set_native_log_level(NativeLogLevel::Off);
        tracing::error!("off");
        assert!(drain_native_logs().records.is_empty());
    }
}
