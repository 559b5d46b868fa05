//! Shared spool work (docs/cluster.md "Shared spool"): several nodes serve
//! one spool (NFS/CIFS). A file is claimed by one node, by the atomic
//! rename into `work/` as on a single host; the node then holds a lease on
//! it in the JetStream key-value bucket [`BUCKET`] (key: the dataset and a
//! digest of the claim name, value: the node), renewed every third of
//! `lease_secs` while the file is in `work/`. The bucket's entries expire
//! after `lease_secs`: a node that died stops renewing, and another node
//! that has seen the file in `work/` without a lease for `lease_secs`
//! creates the key (atomically: one node wins) and takes the file over —
//! sealing it from the start with the same batch ids (`seal::id`).
//!
//! A node never takes over a file whose lease it cannot read (servers
//! away): with no lease service, only the node that renamed a file works
//! on it. Files in `work/` at start are taken through the same rule (a
//! lease of this node's own is its at once), not as the single host's
//! leftovers.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{ClusterError, Nats};

/// The key-value bucket of claim leases.
pub const BUCKET: &str = "FEPD_CLAIMS";

/// The files this node holds: `(dataset, work name)`, each with the time
/// its lease was last known to be this node's. Intake adds a file when it
/// hands it to a worker (its rename into `work/` is the claim: no other
/// node takes it over before `lease_secs` without a lease); the lease task
/// renews the leases, lets go of a file once it left `work/`, and drops a
/// file whose lease another node holds. The worker asks [`Held::confirm`]
/// before each chunk commit and before the verdict, so a node that was
/// paused past its lease finds out before it seals more of a file another
/// node took over (docs/cluster.md, "What each failure looks like").
#[derive(Clone)]
pub struct Held(Arc<HeldInner>);

struct HeldInner {
    files: Mutex<HeldFiles>,
    ttl: Duration,
    /// Wakes the lease task for a pass at once (a worker waits on it).
    nudge: tokio::sync::Notify,
}

#[derive(Default)]
struct HeldFiles {
    leases: HashMap<(String, String), Instant>,
    /// When the last pass failed (the servers did not answer).
    failed_at: Option<Instant>,
}

impl Held {
    /// Leases last `ttl` unrenewed (`[cluster] lease_secs`).
    pub fn new(ttl: Duration) -> Held {
        Held(Arc::new(HeldInner {
            files: Mutex::default(),
            ttl,
            nudge: tokio::sync::Notify::new(),
        }))
    }

    /// This node holds the file from now (it renamed it into `work/`, or
    /// won its lease).
    pub fn hold(&self, dataset: &str, work_name: &str) {
        self.lock()
            .leases
            .insert((dataset.to_string(), work_name.to_string()), Instant::now());
    }

    fn holds(&self, dataset: &str, work_name: &str) -> bool {
        self.lock()
            .leases
            .contains_key(&(dataset.to_string(), work_name.to_string()))
    }

    fn snapshot(&self) -> Vec<(String, String)> {
        self.lock().leases.keys().cloned().collect()
    }

    /// The lease was this node's as of `at` (taken before the request).
    fn renewed(&self, dataset: &str, work_name: &str, at: Instant) {
        if let Some(t) = self
            .lock()
            .leases
            .get_mut(&(dataset.to_string(), work_name.to_string()))
        {
            *t = (*t).max(at);
        }
    }

    fn release(&self, dataset: &str, work_name: &str) {
        self.lock()
            .leases
            .remove(&(dataset.to_string(), work_name.to_string()));
    }

    fn pass_failed(&self) {
        self.lock().failed_at = Some(Instant::now());
    }

    /// Whether this node may go on with the file: `true` while its lease
    /// was renewed within `lease_secs`. When it was not (the node was
    /// paused, or the servers are slow), this waits for the lease task's
    /// next pass: `false` once the file is no longer held (another node
    /// holds its lease), `true` once renewed — or once a pass failed
    /// (servers away: as without a lease service, the node that renamed a
    /// file works on it) or `stopping`.
    pub fn confirm(&self, dataset: &str, work_name: &str, stopping: &dyn Fn() -> bool) -> bool {
        let key = (dataset.to_string(), work_name.to_string());
        let asked = Instant::now();
        loop {
            {
                let f = self.lock();
                match f.leases.get(&key) {
                    None => return false,
                    Some(t) if t.elapsed() < self.0.ttl => return true,
                    Some(_) if f.failed_at.is_some_and(|t| t > asked) => return true,
                    Some(_) => {}
                }
            }
            if stopping() {
                return true;
            }
            self.0.nudge.notify_one();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HeldFiles> {
        self.0.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A claimed file's key in the bucket: the dataset and 128 bits of the
/// SHA-256 of its claim name (a claim name may hold any UTF-8; keys may
/// not).
pub fn key(dataset: &str, work_name: &str) -> String {
    let d = Sha256::digest(work_name.as_bytes());
    format!("{dataset}.{}", hex::encode(&d[..16]))
}

/// The lease task: renews this node's leases and takes over files whose
/// lease expired.
pub struct Leases {
    pub nats: Nats,
    pub held: Held,
    /// Each dataset's `work/` folder.
    pub work: Vec<(String, PathBuf)>,
    /// Each dataset's worker.
    pub workers: HashMap<String, Sender<String>>,
}

impl Leases {
    fn ttl(&self) -> Duration {
        self.held.0.ttl
    }

    /// The bucket, created if absent (entries expire after `lease_secs`).
    async fn bucket(&self) -> Result<kv::Store, ClusterError> {
        self.nats.bucket(BUCKET, self.ttl()).await
    }

    /// Runs until `cancel`, a pass every third of `lease_secs` (or at once
    /// when a worker asks, see [`Held::confirm`]).
    pub async fn run(self, cancel: CancellationToken) {
        let mut unleased: HashMap<(String, String), Instant> = HashMap::new();
        let mut told = HashSet::new();
        let mut failing = false;
        loop {
            match self.pass(&mut unleased, &mut told).await {
                Ok(()) => failing = false,
                Err(e) => {
                    self.held.pass_failed();
                    if !failing {
                        tracing::warn!(node = %self.nats.cfg.node, error = %e, "cannot renew claim leases; no file is taken over meanwhile");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.ttl() / 3) => {}
                _ = self.held.0.nudge.notified() => {}
            }
        }
    }

    /// One pass: renew what this node holds (letting go of files that left
    /// `work/`, and of files whose lease another node took while this one
    /// could not renew it), then look at every other file in `work/`.
    async fn pass(
        &self,
        unleased: &mut HashMap<(String, String), Instant>,
        told: &mut HashSet<(String, String)>,
    ) -> Result<(), ClusterError> {
        let kv = self.bucket().await?;
        let node = self.nats.cfg.node.as_str();
        for (ds, name) in self.held.snapshot() {
            let at = Instant::now();
            let k = key(&ds, &name);
            let still = self
                .work
                .iter()
                .any(|(d, w)| *d == ds && w.join(&name).exists());
            // Only a lease that is this node's is renewed or deleted: a
            // compare-and-set on its revision, so a node that wakes after
            // a pause never overwrites the lease of the node that took the
            // file over.
            let entry = kv
                .entry(k.clone())
                .await
                .map_err(ClusterError::js)?
                .filter(|e| e.operation == kv::Operation::Put);
            let ours = entry.as_ref().map(|e| e.value.as_ref() == node.as_bytes());
            match (still, entry, ours) {
                (false, Some(e), Some(true)) => {
                    kv.delete_expect_revision(&k, Some(e.revision))
                        .await
                        .map_err(ClusterError::js)?;
                    self.held.release(&ds, &name);
                }
                (false, _, _) => self.held.release(&ds, &name),
                (true, Some(e), Some(true)) => {
                    let r = kv.update(&k, node.to_string().into(), e.revision).await;
                    self.settle(&kv, (&ds, &name), at, r.map_err(ClusterError::js))
                        .await?
                }
                (true, None, _) => {
                    let r = kv.create(&k, node.to_string().into()).await;
                    self.settle(&kv, (&ds, &name), at, r.map_err(ClusterError::js))
                        .await?
                }
                (true, Some(_), _) => self.lost(&ds, &name),
            }
        }
        let mut seen = HashSet::new();
        for (ds, work) in &self.work {
            for name in crate::intake::scan::leftovers(work) {
                if self.held.holds(ds, &name) {
                    continue;
                }
                let file = (ds.clone(), name.clone());
                seen.insert(file.clone());
                let k = key(ds, &name);
                match kv.get(k.clone()).await.map_err(ClusterError::js)? {
                    Some(v) if v.as_ref() == node.as_bytes() => {
                        // This node's own, from before a restart.
                        self.take(ds, &name, "resuming a file this node held");
                    }
                    Some(_) => {
                        unleased.remove(&file);
                        // Another node holds it: this node's worker marks
                        // its own row of the file, if it has one, as taken
                        // over (once per file and run).
                        if told.insert(file) {
                            self.tell(ds, &name);
                        }
                    }
                    None => {
                        let since = *unleased.entry(file.clone()).or_insert_with(Instant::now);
                        if since.elapsed() >= self.ttl()
                            && kv.create(&k, node.to_string().into()).await.is_ok()
                        {
                            unleased.remove(&file);
                            self.take(ds, &name, "taking over a file whose claim lease expired");
                        }
                    }
                }
            }
        }
        unleased.retain(|k, _| seen.contains(k));
        told.retain(|k| seen.contains(k));
        Ok(())
    }

    /// After a renewal or re-creation of this node's lease (`tried`, sent
    /// at `at`): renewed; or, if it failed, lost when another node's lease
    /// is there now — else the failure stands (the servers did not
    /// answer) and the file stays held.
    async fn settle(
        &self,
        kv: &kv::Store,
        (dataset, work_name): (&str, &str),
        at: Instant,
        tried: Result<u64, ClusterError>,
    ) -> Result<(), ClusterError> {
        let Err(e) = tried else {
            self.held.renewed(dataset, work_name, at);
            return Ok(());
        };
        let now = (kv.get(key(dataset, work_name)).await).map_err(ClusterError::js)?;
        match now {
            Some(v) if v.as_ref() != self.nats.cfg.node.as_bytes() => {
                self.lost(dataset, work_name);
                Ok(())
            }
            _ => Err(e),
        }
    }

    /// Another node holds the lease of a file this node was working on:
    /// this node lets go of it (its worker abandons the file at its next
    /// chunk, docs/cluster.md).
    fn lost(&self, dataset: &str, work_name: &str) {
        self.held.release(dataset, work_name);
        tracing::warn!(node = %self.nats.cfg.node, dataset = %dataset, file = %crate::oneline::escape(work_name), "another node took over a file whose claim lease this node could not renew in time; leaving it to that node");
    }

    /// Hands a file this node does not hold to its dataset's worker, which
    /// only marks this node's own row of it, if any, as taken over.
    fn tell(&self, dataset: &str, work_name: &str) {
        if let Some(w) = self.workers.get(dataset) {
            let _ = w.send(work_name.to_string());
        }
    }

    /// Holds the file and hands it to its dataset's worker.
    fn take(&self, dataset: &str, work_name: &str, why: &str) {
        self.held.hold(dataset, work_name);
        tracing::info!(node = %self.nats.cfg.node, dataset = %dataset, file = %crate::oneline::escape(work_name), "{why}");
        if let Some(w) = self.workers.get(dataset) {
            let _ = w.send(work_name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_and_distinct_whatever_the_name() {
        let a = key("case_accept", "01JD0000000000000000000000~受理.csv");
        let b = key("case_accept", "01JD0000000000000000000000~受理 2.csv");
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
        );
    }
}
