//! Where image data waits on this machine (prefetch's downloads, image add's `docker save`):
//! private directories and files that no other local user can plant or read.

use std::path::{Path, PathBuf};

/// `$TMPDIR/novadock-NAME-RANDOM`, else under /var/tmp (disk, not a tmpfs): where images
/// wait while they are checked or fanned out. The random part keeps a local user from
/// planting it in advance; [`create_private_dir`] refuses it if they did anyway.
pub(crate) fn spool_dir(name: &str) -> Result<PathBuf, String> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r)
        .map_err(|e| format!("cannot name a spool directory: no random bytes: {e}"))?;
    Ok(std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
        .join(format!("novadock-{name}-{}", hex::encode(r))))
}

/// Creates `dir` as a new directory of mode 0700. One that exists is refused, whoever made
/// it: in a world-writable parent it may be someone else's, or a symlink to anywhere.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} already exists: refusing to spool images into a directory this run did not create",
                dir.display()
            ),
            _ => format!("cannot create {}: {e}", dir.display()),
        })
}

/// A new spool file (0600), never through a symlink and never an existing file.
pub(crate) fn create_spool_file(path: &Path) -> Result<tokio::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(tokio::fs::File::from_std)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    /// Issue 14, finding 1: a planted directory or symlink is refused, never written through.
    #[tokio::test]
    async fn spool_is_private_and_never_planted() {
        let base = tempfile::tempdir().unwrap();
        let planted = base.path().join("planted");
        std::fs::create_dir(&planted).unwrap();
        let e = super::create_private_dir(&planted).unwrap_err();
        assert!(e.contains("already exists: refusing"), "{e}");
        let fresh = base.path().join("fresh");
        super::create_private_dir(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let target = base.path().join("target");
        std::os::unix::fs::symlink(&target, fresh.join("image.tar")).unwrap();
        assert!(super::create_spool_file(&fresh.join("image.tar")).is_err());
        assert!(!target.exists());
        super::create_spool_file(&fresh.join("x.tar")).unwrap();
        let mode = std::fs::metadata(fresh.join("x.tar"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A random name (16 hex digits) under $TMPDIR: none a local user can plant ahead.
        let (a, b) = (
            super::spool_dir("image-RUN").unwrap(),
            super::spool_dir("image-RUN").unwrap(),
        );
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        let suffix = name.strip_prefix("novadock-image-RUN-").unwrap();
        assert!(
            suffix.len() == 16 && suffix.bytes().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
    }
}
