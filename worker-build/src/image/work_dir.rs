//! A build's private folder under `SLIPWAY_BUILD_DIR` (generated
//! Containerfile, registries.conf, transcripts, digest file, credentials),
//! removed when the build ends; credentials in it are written 0600.

use crate::config::BuildSettings;
use secrecy::{ExposeSecret, SecretString};
use slipway_shared::job::JobError;
use std::path::PathBuf;
use uuid::Uuid;

/// A build's private folder under `SLIPWAY_BUILD_DIR`, removed afterwards.
pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    pub async fn create(settings: &BuildSettings, deployment_id: Uuid) -> Result<Self, JobError> {
        let path = settings.work_dir.join(format!(
            "{deployment_id}-{}",
            &Uuid::new_v4().simple().to_string()[..8]
        ));
        tokio::fs::create_dir_all(&path).await.map_err(|e| {
            JobError::Retryable(format!("cannot create build dir {}: {e}", path.display()))
        })?;
        Ok(WorkDir { path })
    }

    pub async fn write(&self, name: &str, text: &str) -> Result<PathBuf, JobError> {
        let path = self.path.join(name);
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| JobError::Retryable(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// A file only the worker's user can read (credentials); the work dir
    /// and it go when the build ends.
    pub async fn write_secret(&self, name: &str, text: &SecretString) -> Result<PathBuf, JobError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.path.join(name);
        let written = {
            let (path, text) = (path.clone(), text.clone());
            tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?
                    .write_all(text.expose_secret().as_bytes())
            })
            .await
        };
        match written {
            Ok(Ok(())) => Ok(path),
            Ok(Err(e)) => Err(JobError::Retryable(format!(
                "cannot write {}: {e}",
                path.display()
            ))),
            Err(e) => Err(JobError::Retryable(format!("writing {name} stopped: {e}"))),
        }
    }

    pub async fn remove(self) {
        let _ = tokio::fs::remove_dir_all(&self.path).await;
    }
}
