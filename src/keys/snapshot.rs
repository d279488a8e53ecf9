//! Key snapshots ([`RefreshPolicy::snapshot_dir`](crate::RefreshPolicy::snapshot_dir)): the last
//! good JWKS of each remote key set, written atomically (a temporary file, then a rename), so that
//! a restart while the issuer is unreachable can start from it within the maximum staleness.
//!
//! A snapshot is a JSON object: `format` (this module's tag), `issuer` and `source` (which key set
//! it belongs to: a snapshot of another one is foreign and ignored), `fetched_at` (seconds since
//! the epoch) and `jwks` (the document as fetched). Its file name is derived from the key set, so
//! several issuers, and several services, can share one directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

const FORMAT: &str = "tower-jwt-auth/jwks-snapshot/1";
/// The largest snapshot read: a JWKS is capped at the policy's response size, far below this.
const MAX_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024;

/// Which key set a snapshot belongs to.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotFile {
    path: PathBuf,
    issuer: String,
    source: String,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: String,
    issuer: String,
    source: String,
    fetched_at: i64,
    jwks: String,
}

impl SnapshotFile {
    /// The snapshot of the key set of `issuer` fetched from `source`, in `dir`.
    pub(crate) fn new(dir: &Path, issuer: &str, source: &str) -> Self {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        context.update(issuer.as_bytes());
        context.update(b"\0");
        context.update(source.as_bytes());
        let digest = context.finish();
        let name: String = digest.as_ref()[..12]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Self {
            path: dir.join(format!("jwks-{name}.json")),
            issuer: issuer.to_owned(),
            source: source.to_owned(),
        }
    }

    /// Writes `jwks`, fetched now: to a temporary file in the same directory, synced, then renamed
    /// over the snapshot, so that a reader (or a crash) never sees half a file.
    pub(crate) fn save(&self, jwks: &str) -> std::io::Result<()> {
        let snapshot = Snapshot {
            format: FORMAT.to_owned(),
            issuer: self.issuer.clone(),
            source: self.source.clone(),
            fetched_at: crate::clock::unix_seconds(SystemTime::now()),
            jwks: jwks.to_owned(),
        };
        let text = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temporary = dir.join(format!(
            ".{}.{}-{:016x}.tmp",
            self.path
                .file_name()
                .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
            std::process::id(),
            fastrand::u64(..)
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }

    /// Marks the snapshot as fetched now, after the issuer answered `304 Not Modified`: the
    /// document it holds is still the issuer's. Nothing happens without a valid snapshot of this
    /// key set.
    pub(crate) fn touch(&self) -> std::io::Result<()> {
        match self.read(Duration::MAX) {
            Some((jwks, _)) => self.save(&jwks),
            None => Ok(()),
        }
    }

    /// The snapshot's JWKS and its age, if there is a snapshot of this key set no older than
    /// `max_age`. A missing file is `None`; a corrupt, foreign or too old one is `None` with a
    /// warning.
    pub(crate) fn load(&self, max_age: Duration) -> Option<(String, Duration)> {
        self.read(max_age)
    }

    fn read(&self, max_age: Duration) -> Option<(String, Duration)> {
        let read = std::fs::File::open(&self.path).and_then(|file| {
            let mut text = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, MAX_SNAPSHOT_BYTES),
                &mut text,
            )?;
            Ok(text)
        });
        let text = match read {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                self.ignore(&format!("cannot be read: {error}"));
                return None;
            }
        };
        let Ok(snapshot) = serde_json::from_slice::<Snapshot>(&text) else {
            self.ignore("is not a key snapshot (corrupt?)");
            return None;
        };
        if snapshot.format != FORMAT {
            self.ignore("has an unknown format");
            return None;
        }
        if snapshot.issuer != self.issuer || snapshot.source != self.source {
            self.ignore("belongs to another key set");
            return None;
        }
        let now = crate::clock::unix_seconds(SystemTime::now());
        let age = Duration::from_secs(u64::try_from(now.saturating_sub(snapshot.fetched_at)).ok()?);
        if age > max_age {
            self.ignore("is older than the maximum staleness");
            return None;
        }
        Some((snapshot.jwks, age))
    }

    fn ignore(&self, why: &str) {
        tracing::warn!(
            issuer = self.issuer,
            path = %self.path.display(),
            "key snapshot {why}; ignored"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-snapshot-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_saved_snapshot_loads_and_leaves_no_temporary_file() {
        let dir = temp_dir();
        let file = SnapshotFile::new(&dir, "https://a.test/", "discovery");
        file.save(r#"{"keys":[]}"#).unwrap();
        let (jwks, age) = file.load(Duration::from_secs(60)).unwrap();
        assert_eq!(jwks, r#"{"keys":[]}"#);
        assert!(age < Duration::from_secs(5));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("jwks-") && names[0].ends_with(".json"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn touching_a_snapshot_makes_it_current_again() {
        let dir = temp_dir();
        let file = SnapshotFile::new(&dir, "https://a.test/", "discovery");
        file.touch().unwrap();
        assert!(
            file.load(Duration::from_secs(60)).is_none(),
            "nothing to touch"
        );
        let old = serde_json::json!({
            "format": FORMAT, "issuer": "https://a.test/", "source": "discovery",
            "fetched_at": 1_000, "jwks": "{\"keys\":[]}",
        });
        std::fs::write(&file.path, old.to_string()).unwrap();
        assert!(file.load(Duration::from_secs(60)).is_none());
        file.touch().unwrap();
        let (jwks, age) = file.load(Duration::from_secs(60)).unwrap();
        assert_eq!(jwks, "{\"keys\":[]}");
        assert!(age < Duration::from_secs(5));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_foreign_and_old_snapshots_are_ignored() {
        let dir = temp_dir();
        let file = SnapshotFile::new(&dir, "https://a.test/", "discovery");
        let other = SnapshotFile::new(&dir, "https://b.test/", "discovery");
        assert_ne!(file.path, other.path);
        assert!(file.load(Duration::from_secs(60)).is_none(), "no file yet");
        other.save("{}").unwrap();
        std::fs::copy(&other.path, &file.path).unwrap();
        assert!(file.load(Duration::from_secs(60)).is_none(), "foreign");
        std::fs::write(&file.path, b"{\"format\": ").unwrap();
        assert!(file.load(Duration::from_secs(60)).is_none(), "corrupt");
        let old = serde_json::json!({
            "format": FORMAT, "issuer": "https://a.test/", "source": "discovery",
            "fetched_at": 1_000, "jwks": "{}",
        });
        std::fs::write(&file.path, old.to_string()).unwrap();
        assert!(file.load(Duration::from_secs(3600)).is_none(), "too old");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
