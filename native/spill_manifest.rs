//! The staging directory's manifest: which generations of spill files it holds, for which
//! pipeline, and the topic list their rows' topic indexes refer to. It is replaced atomically
//! (temp file, fsync, rename, fsync of the directory) after the files it names are fsynced.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::spill::Generation;
use crate::spill_files::{create_private, is_plain_file_name, staging_error, sync_dir};

pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    /// Which pipeline wrote it (consumer group and table); another one's staging is not used.
    pub identity: String,
    pub topics: Vec<String>,
    pub generations: Vec<Generation>,
}

impl Manifest {
    /// The file names it lists.
    fn names(&self) -> impl Iterator<Item = &str> {
        self.generations
            .iter()
            .flat_map(|g| g.files.iter().map(|f| f.name.as_str()))
    }

    /// The manifest in `dir` if it was written by this pipeline (`identity`) for these `topics`
    /// (with `topics_grow`, for any list: its own is then adopted); otherwise, or when it is
    /// unreadable, none (its files are then removed as unlisted).
    pub fn read(
        dir: &Path,
        identity: &str,
        topics: &[String],
        topics_grow: bool,
    ) -> CoreResult<Option<Self>> {
        let path = dir.join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(staging_error(&path, "cannot read", e)),
        };
        match serde_json::from_str::<Self>(&text) {
            Ok(m) if m.names().any(|name| !is_plain_file_name(name)) => {
                tracing::warn!(
                    dir = %dir.display(),
                    "staging manifest names a file outside the staging directory; not used"
                );
                Ok(None)
            }
            Ok(m)
                if m.format == FORMAT
                    && m.identity == identity
                    && (topics_grow || m.topics == topics) =>
            {
                Ok(Some(m))
            }
            Ok(m) => {
                tracing::warn!(
                    dir = %dir.display(),
                    identity = %m.identity,
                    "staging was written for another table, group or topic list; not used"
                );
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "staging manifest unreadable; not used");
                Ok(None)
            }
        }
    }

    /// Replaces the manifest in `dir` atomically.
    pub fn write(&self, dir: &Path) -> CoreResult<()> {
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| CoreError::Internal(format!("staging manifest: {e}")))?;
        let path = dir.join(MANIFEST);
        let temp = dir.join(format!("{MANIFEST}.tmp"));
        let mut file = create_private(&temp)?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| staging_error(&temp, "cannot write", e))?;
        drop(file);
        fs::rename(&temp, &path).map_err(|e| staging_error(&path, "cannot replace", e))?;
        sync_dir(dir)
    }
}
