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

/// The files this node holds: `(dataset, work name)`. Intake adds a file
/// when it hands it to a worker; the lease task renews their leases and
/// lets go of a file once it left `work/`.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<HashSet<(String, String)>>>);

impl Held {
    pub fn hold(&self, dataset: &str, work_name: &str) {
        self.lock()
            .insert((dataset.to_string(), work_name.to_string()));
    }

    fn holds(&self, dataset: &str, work_name: &str) -> bool {
        self.lock()
            .contains(&(dataset.to_string(), work_name.to_string()))
    }

    fn snapshot(&self) -> Vec<(String, String)> {
        self.lock().iter().cloned().collect()
    }

    fn release(&self, dataset: &str, work_name: &str) {
        self.lock()
            .remove(&(dataset.to_string(), work_name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
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
        Duration::from_secs(self.nats.cfg.lease_secs.max(3))
    }

    /// The bucket, created if absent (entries expire after `lease_secs`).
    async fn bucket(&self) -> Result<kv::Store, ClusterError> {
        self.nats.bucket(BUCKET, self.ttl()).await
    }

    /// Runs until `cancel`, a pass every third of `lease_secs`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut unleased: HashMap<(String, String), Instant> = HashMap::new();
        let mut failing = false;
        loop {
            match self.pass(&mut unleased).await {
                Ok(()) => failing = false,
                Err(e) => {
                    if !failing {
                        tracing::warn!(node = %self.nats.cfg.node, error = %e, "cannot renew claim leases; no file is taken over meanwhile");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.ttl() / 3) => {}
            }
        }
    }

    /// One pass: renew what this node holds (letting go of files that left
    /// `work/`), then look at every other file in `work/`.
    async fn pass(
        &self,
        unleased: &mut HashMap<(String, String), Instant>,
    ) -> Result<(), ClusterError> {
        let kv = self.bucket().await?;
        let node = self.nats.cfg.node.as_str();
        for (ds, name) in self.held.snapshot() {
            let k = key(&ds, &name);
            let still = self
                .work
                .iter()
                .any(|(d, w)| *d == ds && w.join(&name).exists());
            if still {
                kv.put(&k, node.to_string().into())
                    .await
                    .map_err(ClusterError::js)?;
            } else {
                kv.delete(&k).await.map_err(ClusterError::js)?;
                self.held.release(&ds, &name);
            }
        }
        let mut seen = HashSet::new();
        for (ds, work) in &self.work {
            for name in crate::intake::scan::leftovers(work) {
                if self.held.holds(ds, &name) {
                    continue;
                }
                seen.insert((ds.clone(), name.clone()));
                let k = key(ds, &name);
                match kv.get(k.clone()).await.map_err(ClusterError::js)? {
                    Some(v) if v.as_ref() == node.as_bytes() => {
                        // This node's own, from before a restart.
                        self.take(ds, &name, "resuming a file this node held");
                    }
                    Some(_) => {
                        unleased.remove(&(ds.clone(), name.clone()));
                    }
                    None => {
                        let since = *unleased
                            .entry((ds.clone(), name.clone()))
                            .or_insert_with(Instant::now);
                        if since.elapsed() >= self.ttl()
                            && kv.create(&k, node.to_string().into()).await.is_ok()
                        {
                            unleased.remove(&(ds.clone(), name.clone()));
                            self.take(ds, &name, "taking over a file whose claim lease expired");
                        }
                    }
                }
            }
        }
        unleased.retain(|k, _| seen.contains(k));
        Ok(())
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
