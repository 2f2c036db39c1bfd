//! Durable staging: when staged rows outgrow their memory budget they are written to local
//! Arrow IPC files, one per day (plus one for dead letters), grouped in a *generation* that
//! records the Kafka positions it covers. A manifest lists the generations; it is replaced
//! atomically (temp file, fsync, rename, fsync of the directory) after the files it names are
//! fsynced, so after a crash it never names a file that was not completely written.
//!
//! The Delta log stays the source of truth: staging only saves re-reading Kafka. A generation is
//! recovered only when it continues exactly where the table (or the generation before it) ends,
//! per topic-partition; anything else is dropped and its range consumed again.
//!
//! Rows are spilled as they were decoded, never consolidated: which of them a commit may write
//! is decided against the table's positions at commit time (`positions.rs`), and only then are
//! the survivors consolidated, so no row's position is folded into another's.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};

use crate::buckets::{BucketIndex, Bucketing, HASH_SCHEME, INDEX_KEY};
use crate::day::EpochDay;
use crate::error::{CoreError, CoreResult};
use crate::positions::{Coverage, PartitionKey, PartitionRange};
pub use crate::spill_files::read_batches;
use crate::spill_files::{
    checksum, create_private, create_private_dir, remove_files_except, remove_if_present,
    staging_error, sync_dir, Checksummed, RunWriter,
};
pub(crate) use crate::spill_manifest::MANIFEST;
use crate::spill_manifest::{Manifest, FORMAT};

const LOCK: &str = "LOCK";

/// One spilled file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpillFile {
    pub name: String,
    /// The day its rows belong to; absent for dead letters.
    pub day: Option<EpochDay>,
    pub rows: u64,
    pub bytes: u64,
    pub crc32: u32,
}

/// Everything staged between two spills, made durable together.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    pub id: u64,
    /// What the generation covers per topic-partition; a partition given up after the spill
    /// is withdrawn from it, and its rows here are never committed.
    pub ranges: Vec<PartitionRange>,
    pub files: Vec<SpillFile>,
}

impl Generation {
    pub fn rows(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| f.day.is_some())
            .map(|f| f.rows)
            .sum()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    pub fn coverage(&self) -> Coverage {
        Coverage::from_ranges(&self.ranges)
    }
}

/// Appends to a topic list the names it lacks, in order; indexes already given never change.
pub fn append_missing(topics: &mut Vec<String>, names: &[String]) {
    for name in names {
        if !topics.contains(name) {
            topics.push(name.clone());
        }
    }
}

/// What a stage spills into: a directory owned by one process at a time.
pub struct Staging {
    pub dir: PathBuf,
    pub max_memory_bytes: usize,
    /// With a consolidation key, day files are written in buckets of it.
    pub bucketing: Option<Bucketing>,
    identity: String,
    /// The topics the rows' topic indexes refer to, append-only. When it grows while running
    /// (a pattern subscription), the manifest's list found at open is its beginning.
    topics: Vec<String>,
    generations: Vec<Generation>,
    /// What the manifest held at open, until `recover` has sorted it.
    found: Vec<Generation>,
    next_id: u64,
    /// Held (an OS file lock) until the stage is closed: a second process on the same
    /// directory would interleave generations.
    lock: Option<File>,
}

/// What recovery found in the staging directory.
#[derive(Debug, Default)]
pub struct Recovered {
    pub generations: Vec<Generation>,
    /// Files of generations the table already holds (committed before a crash), removed.
    pub committed_files: usize,
    /// Files dropped because they were incomplete, damaged, or did not continue the table.
    pub discarded_files: usize,
    pub reasons: Vec<String>,
}

impl Staging {
    /// Gives the directory's lock up (the stage is done with it): another stage, in this
    /// process or another, may open it now.
    pub fn close(&mut self) {
        self.lock = None;
    }

    /// Opens (creating it) the staging directory and takes its lock.
    pub fn open(
        dir: &Path,
        identity: String,
        topics: Vec<String>,
        topics_grow: bool,
        max_memory_bytes: usize,
        bucket_keys: Vec<String>,
    ) -> CoreResult<Self> {
        create_private_dir(dir)?;
        let mut lock = OpenOptions::new();
        lock.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut lock, 0o600);
        let lock = lock
            .open(dir.join(LOCK))
            .map_err(|e| staging_error(dir, "cannot open the lock of", e))?;
        if lock.try_lock().is_err() {
            return Err(CoreError::Staging(format!(
                "staging directory {} is in use by another process; give each instance its own \
                 buffer.staging_dir",
                dir.display()
            )));
        }
        let mut staging = Self {
            dir: dir.to_path_buf(),
            max_memory_bytes,
            bucketing: Bucketing::new(bucket_keys, max_memory_bytes),
            identity,
            topics,
            generations: Vec::new(),
            found: Vec::new(),
            next_id: 1,
            lock: Some(lock),
        };
        if let Some(manifest) =
            Manifest::read(dir, &staging.identity, &staging.topics, topics_grow)?
        {
            if topics_grow {
                // The staged rows index the manifest's list: it stays the list's beginning.
                let configured = std::mem::replace(&mut staging.topics, manifest.topics);
                staging.add_topics(&configured);
            }
            staging.found = manifest.generations;
        }
        Ok(staging)
    }

    /// The topics the staged rows' topic indexes refer to.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Appends the topics not listed yet (a pattern subscription found them); the next manifest
    /// lists them.
    pub fn add_topics(&mut self, names: &[String]) {
        append_missing(&mut self.topics, names);
    }

    /// Topic-partitions the manifest holds data for, to look up what the table recorded.
    pub fn manifest_partitions(&self) -> Vec<PartitionKey> {
        let mut keys: Vec<PartitionKey> = self
            .found
            .iter()
            .flat_map(|g| g.ranges.iter().map(|r| (r.topic, r.partition)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Loads the generations that continue the table's recorded positions; removes the rest.
    pub fn recover(&mut self, recorded: &HashMap<PartitionKey, i64>) -> CoreResult<Recovered> {
        let mut out = Recovered::default();
        let generations = std::mem::take(&mut self.found);
        let mut expected: HashMap<PartitionKey, Option<i64>> = HashMap::new();
        let expected_of = |expected: &HashMap<PartitionKey, Option<i64>>, key: &PartitionKey| {
            expected
                .get(key)
                .copied()
                .unwrap_or_else(|| recorded.get(key).copied())
        };
        let mut broken = false;
        for generation in generations {
            self.next_id = self.next_id.max(generation.id + 1);
            let committed = generation.ranges.iter().all(|r| {
                recorded
                    .get(&(r.topic, r.partition))
                    .is_some_and(|&v| v >= r.last)
            });
            if committed && !broken {
                out.committed_files += generation.files.len();
                continue;
            }
            let continues = generation
                .ranges
                .iter()
                .all(|r| expected_of(&expected, &(r.topic, r.partition)) == r.previous);
            let problem = if broken {
                Some("an earlier generation was dropped".to_string())
            } else if !continues {
                Some(format!(
                    "generation {} does not continue the table's recorded positions",
                    generation.id
                ))
            } else {
                self.damaged(&generation)
            };
            match problem {
                Some(reason) => {
                    broken = true;
                    out.discarded_files += generation.files.len();
                    out.reasons.push(reason);
                }
                None => {
                    for r in &generation.ranges {
                        expected.insert((r.topic, r.partition), Some(r.last));
                    }
                    out.generations.push(generation);
                }
            }
        }
        self.generations = out.generations.clone();
        match self.write_manifest() {
            Ok(()) => self.remove_unlisted()?,
            // A full disk at start: the files of generations not kept go first (they make
            // room), then the manifest again. Without room still, the old manifest stays: what
            // it lists beyond the kept generations is committed (skipped at a start) or missing
            // (dropped and read again from Kafka), and the next spill writes a new one.
            Err(err) if err.is_disk_full() => {
                self.remove_unlisted()?;
                if let Err(err) = self.write_manifest() {
                    if !err.is_disk_full() {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "staging disk full at start: the staging manifest is rewritten at the next spill");
                }
            }
            Err(err) => return Err(err),
        }
        Ok(out)
    }

    /// Why a generation's files cannot be used, if they cannot.
    fn damaged(&self, generation: &Generation) -> Option<String> {
        for file in &generation.files {
            let path = self.dir.join(&file.name);
            match checksum(&path) {
                Ok((bytes, crc)) if bytes == file.bytes && crc == file.crc32 => {}
                Ok(_) => return Some(format!("{} does not match the manifest", file.name)),
                Err(e) => return Some(format!("{}: {e}", file.name)),
            }
        }
        None
    }

    /// Writes the staged rows (by day) and dead letters as a new generation covering `ranges`,
    /// listed after every generation so far.
    pub fn spill(
        &mut self,
        by_day: Vec<(EpochDay, Vec<RecordBatch>)>,
        dead_letters: Vec<RecordBatch>,
        ranges: Vec<PartitionRange>,
    ) -> CoreResult<Generation> {
        self.spill_after(None, &by_day, &dead_letters, ranges)
    }

    /// Like `spill`, but listed right after generation `after` (when given): the rows a flush
    /// still held in memory come before what the stage spilled since, so recovery finds every
    /// partition's generations in the order they were read.
    pub fn spill_after(
        &mut self,
        after: Option<u64>,
        by_day: &[(EpochDay, Vec<RecordBatch>)],
        dead_letters: &[RecordBatch],
        ranges: Vec<PartitionRange>,
    ) -> CoreResult<Generation> {
        let id = self.next_id;
        self.next_id += 1;
        let mut files = Vec::with_capacity(by_day.len() + 1);
        let written = self.write_generation(id, by_day, dead_letters, &mut files);
        let listed = written.and_then(|()| {
            let generation = Generation {
                id,
                ranges,
                files: files.clone(),
            };
            let position = after
                .and_then(|a| self.generations.iter().position(|g| g.id == a))
                .map_or(self.generations.len(), |p| p + 1);
            self.generations.insert(position, generation.clone());
            match self.write_manifest() {
                Ok(()) => Ok(generation),
                Err(err) => {
                    self.generations.retain(|g| g.id != id);
                    Err(err)
                }
            }
        });
        if listed.is_err() {
            // The rows stay with the caller; files no manifest lists are of no use (and take
            // the space a full disk needs back). The old manifest still holds.
            for file in &files {
                let _ = fs::remove_file(self.dir.join(&file.name));
            }
        }
        listed
    }

    /// Writes one generation's files (names pushed to `files` as each completes).
    fn write_generation(
        &self,
        id: u64,
        by_day: &[(EpochDay, Vec<RecordBatch>)],
        dead_letters: &[RecordBatch],
        files: &mut Vec<SpillFile>,
    ) -> CoreResult<()> {
        for (day, batches) in by_day {
            if batches.is_empty() {
                continue;
            }
            let name = format!("g{id:010}-{}.arrow", crate::day::format_day(*day));
            files.push(self.write_whole_file(&name, Some(*day), batches)?);
        }
        if !dead_letters.is_empty() {
            let name = format!("g{id:010}-dead-letters.arrow");
            files.push(self.write_whole_file(&name, None, dead_letters)?);
        }
        sync_dir(&self.dir)
    }

    /// [`Self::write_file`], removing what it wrote when it fails.
    fn write_whole_file(
        &self,
        name: &str,
        day: Option<EpochDay>,
        batches: &[RecordBatch],
    ) -> CoreResult<SpillFile> {
        self.write_file(name, day, batches).inspect_err(|_| {
            let _ = fs::remove_file(self.dir.join(name));
        })
    }

    fn write_file(
        &self,
        name: &str,
        day: Option<EpochDay>,
        batches: &[RecordBatch],
    ) -> CoreResult<SpillFile> {
        let path = self.dir.join(name);
        let schema: SchemaRef = batches
            .first()
            .map(RecordBatch::schema)
            .ok_or_else(|| CoreError::Internal("spilling an empty day".into()))?;
        let file = create_private(&path)?;
        let mut writer = FileWriter::try_new(BufWriter::new(Checksummed::new(file)), &schema)?;
        let mut runs = RunWriter::default();
        match (&self.bucketing, day) {
            (Some(bucketing), Some(_)) => {
                let mut index = BucketIndex {
                    scheme: HASH_SCHEME,
                    keys: bucketing.keys.clone(),
                    level: bucketing.level,
                    batch_ends: Vec::with_capacity(bucketing.count() as usize),
                    rows: Vec::with_capacity(bucketing.count() as usize),
                };
                bucketing.for_each_bucket(batches, |bucket| {
                    let rows = match &bucket {
                        Some(batch) => runs.write(&mut writer, batch)?,
                        None => 0,
                    };
                    index.batch_ends.push(runs.batches);
                    index.rows.push(rows);
                    Ok(())
                })?;
                let footer = serde_json::to_string(&index)
                    .map_err(|e| CoreError::Internal(format!("bucket index: {e}")))?;
                writer.write_metadata(INDEX_KEY, footer);
            }
            _ => {
                for batch in batches {
                    runs.write(&mut writer, batch)?;
                }
            }
        }
        writer.finish()?;
        let written = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| staging_error(&path, "cannot write", e.into_error()))?;
        let (file, bytes, crc32) = written.finish();
        file.sync_all()
            .map_err(|e| staging_error(&path, "cannot fsync", e))?;
        Ok(SpillFile {
            name: name.to_string(),
            day,
            rows: runs.rows,
            bytes,
            crc32,
        })
    }

    /// Withdraws partitions given up from every generation (in `generations`, the segment's
    /// copies, and in the manifest); a generation left covering nothing is deleted. Returns the
    /// ids of the generations deleted.
    pub fn withdraw(
        &mut self,
        generations: &mut Vec<Generation>,
        lost: &[PartitionKey],
    ) -> CoreResult<Vec<u64>> {
        let mut changed = false;
        for generation in self.generations.iter_mut().chain(generations.iter_mut()) {
            let before = generation.ranges.len();
            generation.ranges.retain(|r| !lost.contains(&r.key()));
            changed |= generation.ranges.len() != before;
        }
        if !changed {
            return Ok(Vec::new());
        }
        let empty: Vec<u64> = generations
            .iter()
            .filter(|g| g.ranges.is_empty())
            .map(|g| g.id)
            .collect();
        generations.retain(|g| !g.ranges.is_empty());
        // The manifest is written by `release` (with the empty ones gone) or here.
        if empty.is_empty() {
            self.write_manifest()?;
        } else {
            self.release(&empty)?;
        }
        Ok(empty)
    }

    /// Forgets generations whose rows the table now holds, and deletes their files.
    pub fn release(&mut self, ids: &[u64]) -> CoreResult<()> {
        let (gone, kept): (Vec<Generation>, Vec<Generation>) =
            std::mem::take(&mut self.generations)
                .into_iter()
                .partition(|g| ids.contains(&g.id));
        self.generations = kept;
        if gone.is_empty() {
            return Ok(());
        }
        // The manifest first: a crash after it leaves only unlisted files, removed at the next
        // start; a crash before it leaves generations the table holds, also removed then.
        let listed = self.write_manifest();
        let remove = || -> CoreResult<()> {
            for file in gone.iter().flat_map(|g| &g.files) {
                remove_if_present(&self.dir.join(&file.name))?;
            }
            Ok(())
        };
        match listed {
            Ok(()) => remove(),
            // No room for the new manifest: the files go first (the old manifest then lists
            // missing files of rows the table holds, which a start drops), and make room.
            Err(err) if err.is_disk_full() => {
                remove()?;
                self.write_manifest()
            }
            Err(err) => Err(err),
        }
    }

    pub fn path_of(&self, file: &SpillFile) -> PathBuf {
        self.dir.join(&file.name)
    }

    /// Bytes of all spill files not yet released.
    pub fn disk_bytes(&self) -> u64 {
        self.generations.iter().map(Generation::bytes).sum()
    }

    fn write_manifest(&self) -> CoreResult<()> {
        Manifest {
            format: FORMAT,
            identity: self.identity.clone(),
            topics: self.topics.clone(),
            generations: self.generations.clone(),
        }
        .write(&self.dir)
    }

    /// Removes files no generation names (left by a crash mid-spill or mid-release).
    fn remove_unlisted(&self) -> CoreResult<()> {
        let listed: HashSet<&str> = self
            .generations
            .iter()
            .flat_map(|g| g.files.iter().map(|f| f.name.as_str()))
            .chain([MANIFEST, LOCK])
            .collect();
        remove_files_except(&self.dir, &listed)
    }
}

#[cfg(test)]
#[path = "spill_tests.rs"]
mod tests;
