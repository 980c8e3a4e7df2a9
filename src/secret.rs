//! The development JWT secret: from `ORDERLY_JWT_SECRET`, or generated once
//! and kept in the data directory (mode 0600) so that tokens minted with
//! `orderly token` keep working across restarts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::Rng;

pub const SECRET_FILE: &str = "jwt-secret";

pub enum SecretSource {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<(Vec<u8>, SecretSource)> {
    if let Some(secret) = configured {
        if secret.len() < 32 {
            bail!("ORDERLY_JWT_SECRET must be at least 32 bytes long");
        }
        return Ok((secret.as_bytes().to_vec(), SecretSource::Environment));
    }
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        let secret = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let secret = secret.trim();
        if secret.len() < 32 {
            bail!("{} holds a secret shorter than 32 bytes; delete it to generate a new one", path.display());
        }
        return Ok((secret.as_bytes().to_vec(), SecretSource::File(path)));
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = hex::encode(rand::rng().random::<[u8; 32]>());
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            Ok((secret.into_bytes(), SecretSource::Generated(path)))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(None, data_dir),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}
