//! The files under a staging directory: spill files written in runs of bounded record batches
//! and checksummed as they are written, read back batch by batch, and the filesystem steps
//! (private creation, fsync of a directory, removal) with errors that name the path.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::ipc::reader::FileReader;
use deltalake::arrow::ipc::writer::FileWriter;

use crate::error::{CoreError, CoreResult};

/// Rows per IPC record batch in a spill file: a flush streams them back without holding a
/// whole day in memory.
const ROWS_PER_BATCH: usize = 16_384;

/// Writes rows as record batches of at most `ROWS_PER_BATCH`, counting both.
#[derive(Default)]
pub struct RunWriter {
    pub batches: u32,
    pub rows: u64,
}

impl RunWriter {
    pub fn write<W: Write>(
        &mut self,
        writer: &mut FileWriter<W>,
        batch: &RecordBatch,
    ) -> CoreResult<u64> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = ROWS_PER_BATCH.min(batch.num_rows() - offset);
            writer.write(&batch.slice(offset, len))?;
            offset += len;
            self.batches += 1;
        }
        self.rows += batch.num_rows() as u64;
        Ok(batch.num_rows() as u64)
    }
}

/// A file that counts and checksums what is written to it, so a spill file is not read back to
/// get its manifest entry.
pub struct Checksummed {
    file: File,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl Checksummed {
    pub fn new(file: File) -> Self {
        Self {
            file,
            hasher: crc32fast::Hasher::new(),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (File, u64, u32) {
        (self.file, self.bytes, self.hasher.finalize())
    }
}

impl Write for Checksummed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Reads a spilled file's record batches one at a time.
pub fn read_batches(path: &Path) -> CoreResult<impl Iterator<Item = CoreResult<RecordBatch>>> {
    let file = File::open(path).map_err(|e| staging_error(path, "cannot open", e))?;
    let reader = FileReader::try_new(BufReader::new(file), None)?;
    Ok(reader.map(|b| b.map_err(CoreError::from)))
}

pub fn checksum(path: &Path) -> CoreResult<(u64, u32)> {
    let mut file = File::open(path).map_err(|e| staging_error(path, "cannot open", e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| staging_error(path, "cannot read", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hasher.finalize()))
}

/// Creates (or truncates) a file only its owner can read: staging holds decoded rows and the raw
/// payloads of dead letters.
pub fn create_private(path: &Path) -> CoreResult<File> {
    let mut options = OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| staging_error(path, "cannot create", e))
}

/// Creates a directory (and its missing parents) only its owner can enter, and makes an
/// existing one so.
pub fn create_private_dir(dir: &Path) -> CoreResult<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| staging_error(dir, "cannot create", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| staging_error(dir, "cannot restrict", e))?;
    }
    Ok(())
}

/// Whether a name read from the manifest is a plain file name in the staging directory (not a
/// path that leads out of it: the manifest is a file on disk, and a flush reads and removes what
/// it names).
pub fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(_)), None)
    )
}

pub fn sync_dir(dir: &Path) -> CoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| staging_error(dir, "cannot fsync", e))
}

pub fn remove_if_present(path: &Path) -> CoreResult<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(staging_error(path, "cannot remove", e)),
    }
}

pub fn staging_error(path: &Path, what: &str, err: std::io::Error) -> CoreError {
    CoreError::StagingIo {
        context: format!("{what} {}", path.display()),
        source: err,
    }
}

/// Removes every file of `dir` not named in `keep`.
pub fn remove_files_except(dir: &Path, keep: &std::collections::HashSet<&str>) -> CoreResult<()> {
    let entries = fs::read_dir(dir).map_err(|e| staging_error(dir, "cannot list", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !keep.contains(name.to_string_lossy().as_ref()) {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}
