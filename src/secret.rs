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
    // Written whole under a name of its own, then linked into place (which
    // never replaces a file): a process starting beside this one, or a
    // crash mid-write, never sees a partial secret under the real name.
    let staged = data_dir.join(format!("{SECRET_FILE}.{}.{:x}.tmp", std::process::id(), rand::random::<u64>()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staged).with_context(|| format!("creating {}", staged.display()))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", staged.display()))?;
    let linked = fs::hard_link(&staged, &path);
    let _ = fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok((secret.into_bytes(), SecretSource::Generated(path))),
        // Another process put its secret there first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(None, data_dir),
        // A file system without hard links: create it in place instead.
        Err(_) => {
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut file) => {
                    file.write_all(secret.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
                    Ok((secret.into_bytes(), SecretSource::Generated(path)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(None, data_dir),
                Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_starting_together_all_get_the_one_whole_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secrets: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let started: Vec<_> = (0..8).map(|_| scope.spawn(|| load_or_create(None, dir.path()).unwrap().0)).collect();
            started.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(secrets.iter().all(|s| s == &secrets[0] && s.len() == 64), "one secret for all");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(SECRET_FILE)], "no staged file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(SECRET_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
