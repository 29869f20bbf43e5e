//! Downloads: each image read from Glance once per run, into a spool file that hosts follow
//! as it grows.

use super::*;

// ---------------------------------------------------------------------------------------
// Downloads: each image read from Glance once per run, fanned out from a growing spool file

#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    pub(super) written: u64,
    done: Option<Result<(), String>>,
}

pub(super) struct Spool {
    path: PathBuf,
    rx: watch::Receiver<Progress>,
}

pub(super) struct Downloads {
    pub(super) ctl: Arc<dyn Transport>,
    pub(super) access: GlanceAccess,
    pub(super) dir: PathBuf,
    pub(super) started: Mutex<HashMap<String, Arc<Spool>>>,
    /// Hosts still to read each image; the spool file goes when the last one is done.
    pub(super) readers: Mutex<HashMap<String, usize>>,
    pub(super) read_from_glance: Mutex<BTreeMap<String, u64>>,
    /// Downloads at once: the next image streams in while hosts load this one.
    pub(super) slots: Arc<Semaphore>,
}

impl Downloads {
    pub(super) fn get(self: &Arc<Self>, image: &GlanceImage) -> Arc<Spool> {
        let mut started = self.started.lock().expect("not poisoned");
        if let Some(s) = started.get(&image.id) {
            return s.clone();
        }
        let path = self.dir.join(format!("{}.tar", image.id));
        let (tx, rx) = watch::channel(Progress::default());
        let spool = Arc::new(Spool {
            path: path.clone(),
            rx,
        });
        started.insert(image.id.clone(), spool.clone());
        let me = self.clone();
        let image = image.clone();
        tokio::spawn(async move {
            let _slot = me.slots.clone().acquire_owned().await;
            let r = me.download(&image, &path, &tx).await;
            tx.send_modify(|p| p.done = Some(r));
        });
        spool
    }

    pub(super) async fn download(
        &self,
        image: &GlanceImage,
        path: &std::path::Path,
        tx: &watch::Sender<Progress>,
    ) -> Result<(), String> {
        let script = format!(
            "exec timeout {DOWNLOAD_TIMEOUT_SECS} {}",
            self.access.python(&crate::remote::GLANCE_DOWNLOAD)
        );
        let mut file = crate::spool::create_spool_file(path)?;
        crate::printer::trace(|| format!("download {} start", image.id));
        let mut s = self.ctl.stream(&script).await.map_err(|e| e.to_string())?;
        let request = self.access.request(serde_json::json!({ "id": image.id }));
        s.stdin
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request to the controller: {e}"))?;
        s.stdin.shutdown().await.map_err(|e| e.to_string())?;
        drop(s.stdin);
        let mut hasher = Hasher::new(&image.algo);
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            // Whole buffers: the SSH channel hands out small reads, and each file write and
            // wake-up of the hosts following the spool has a cost.
            let k = read_full(&mut s.stdout, &mut buf)
                .await
                .map_err(|e| format!("reading from the controller: {e}"))?;
            if k == 0 {
                break;
            }
            // Flushed before followers hear of it: tokio's File buffers writes.
            file.write_all(&buf[..k])
                .await
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            file.flush()
                .await
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            hasher.update(&buf[..k]);
            n += k as u64;
            tx.send_modify(|p| p.written = n);
        }
        crate::printer::trace(|| format!("download {} done: {n} bytes", image.id));
        let out = s.done.await.map_err(|e| e.to_string())?;
        *self
            .read_from_glance
            .lock()
            .expect("not poisoned")
            .entry(image.id.clone())
            .or_default() += n;
        if !out.success() {
            return Err(format!(
                "download from Glance failed on the controller (exit {}): {}",
                out.code.map_or("signal".into(), |c| c.to_string()),
                crate::remote::py_error(&out.stderr)
            ));
        }
        if n != image.size {
            return Err(format!(
                "Glance sent {n} bytes of {}, expected {}",
                image.id, image.size
            ));
        }
        if let Some(h) = hasher.finish()
            && h != image.hash
        {
            return Err(format!(
                "Glance sent {} with {} {h}, expected {}",
                image.id, image.algo, image.hash
            ));
        }
        Ok(())
    }

    pub(super) fn release(&self, image_id: &str) {
        let mut readers = self.readers.lock().expect("not poisoned");
        if let Some(n) = readers.get_mut(image_id) {
            *n = n.saturating_sub(1);
            if *n == 0
                && let Some(s) = self.started.lock().expect("not poisoned").get(image_id)
            {
                let _ = std::fs::remove_file(&s.path);
            }
        }
    }
}

/// Read until `buf` is full or the stream ends.
pub(super) async fn read_full(
    r: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// The hash Glance recorded, where this side can compute it (the host checks every algorithm).
pub(super) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Other,
}

impl Hasher {
    pub(super) fn new(algo: &str) -> Hasher {
        use sha2::Digest;
        match algo {
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Other,
        }
    }
    pub(super) fn update(&mut self, b: &[u8]) {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
            Hasher::Other => {}
        }
    }
    pub(super) fn finish(self) -> Option<String> {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => Some(hex::encode(h.finalize())),
            Hasher::Sha512(h) => Some(hex::encode(h.finalize())),
            Hasher::Other => None,
        }
    }
}

/// Copy the spool to `w` as it grows, until the download is done.
pub(super) async fn follow(
    spool: &Spool,
    w: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    bar: &indicatif::ProgressBar,
) -> Result<u64, String> {
    let mut rx = spool.rx.clone();
    let mut file = loop {
        // The file exists once the download task has started writing it.
        match tokio::fs::File::open(&spool.path).await {
            Ok(f) => break f,
            Err(_) => {
                if let Some(Err(e)) = rx.borrow().done.clone() {
                    return Err(e);
                }
                if rx.changed().await.is_err() {
                    return Err("the download ended unexpectedly".into());
                }
            }
        }
    };
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let p = rx.borrow_and_update().clone();
        while pos < p.written {
            let want = ((p.written - pos) as usize).min(buf.len());
            let k = file
                .read(&mut buf[..want])
                .await
                .map_err(|e| format!("reading the spool: {e}"))?;
            if k == 0 {
                break;
            }
            w.write_all(&buf[..k])
                .await
                .map_err(|e| format!("sending to the host: {e}"))?;
            pos += k as u64;
            bar.set_position(pos);
        }
        match p.done {
            Some(Err(e)) => return Err(e),
            Some(Ok(())) if pos >= p.written => return Ok(pos),
            _ => {}
        }
        if pos >= p.written && rx.changed().await.is_err() {
            return Err("the download ended unexpectedly".into());
        }
    }
}
