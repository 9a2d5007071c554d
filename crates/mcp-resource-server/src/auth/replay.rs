//! The `jti` replay cache of DPoP proofs (RFC 9449 §11.1).
//!
//! A proof is accepted while its `iat` lies within the window around now, so a `jti`
//! must be remembered until the proof it came with can no longer be accepted anyway:
//! its `iat` plus the window. Entries are grouped into buckets by that expiry time and
//! a whole bucket is dropped once every entry in it has expired, so memory follows the
//! number of proofs seen within the window and never grows without bound: past
//! `capacity` the cache refuses new entries (the request is answered 503) rather than
//! forget one early, which would let a proof be replayed.
//!
//! Keys are 128-bit digests of the proof key's thumbprint and the `jti` (the caller
//! computes them), stored in hash sets that use the digest itself as the hash. One
//! million entries take about 38 MiB of resident memory (`cargo bench -p bench --bench dpop`).

use std::{
    collections::{HashSet, VecDeque},
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

/// Number of independently locked parts; a key picks its part from its own bits.
const SHARDS: usize = 16;

/// How many buckets span the window (more buckets free memory sooner).
const BUCKETS_PER_WINDOW: u64 = 8;

/// Why an entry was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The key is in the cache: the proof was seen before.
    #[error("the proof was used before")]
    Replayed,
    /// The cache holds as many entries as allowed.
    #[error("the replay cache is full")]
    Full,
}

/// A hasher for keys that are already uniform digests: it takes their low 64 bits.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than `u128`; fold them in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, value: u128) {
        // Truncation keeps the low, uniformly distributed bits.
        #[allow(clippy::cast_possible_truncation)]
        {
            self.0 = value as u64;
        }
    }
}

type DigestSet = HashSet<u128, BuildHasherDefault<DigestHasher>>;

#[derive(Default)]
struct Shard {
    /// `(bucket number, keys expiring within it)`, oldest bucket first.
    buckets: VecDeque<(u64, DigestSet)>,
    len: usize,
}

impl Shard {
    /// Drops the buckets that have expired; returns how many entries went.
    fn prune(&mut self, now: u64, bucket_secs: u64) -> usize {
        let mut removed = 0;
        while let Some((bucket, keys)) = self.buckets.front() {
            // Every key in the bucket expires before the bucket's end.
            if (bucket + 1).saturating_mul(bucket_secs) > now {
                break;
            }
            removed += keys.len();
            self.buckets.pop_front();
        }
        self.len -= removed;
        removed
    }
}

/// A bounded set of recently seen proof digests. See the module documentation.
pub struct ReplayCache {
    shards: Box<[Mutex<Shard>]>,
    /// Entries over all shards.
    total: AtomicUsize,
    capacity: usize,
    bucket_secs: u64,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &self.capacity)
            .field("bucket_secs", &self.bucket_secs)
            .finish_non_exhaustive()
    }
}

impl ReplayCache {
    /// A cache for proofs accepted within `window_secs` of their `iat`, holding at most
    /// about `capacity` entries.
    pub fn new(window_secs: u64, capacity: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            shards,
            total: AtomicUsize::new(0),
            capacity: capacity.max(1),
            bucket_secs: (window_secs / BUCKETS_PER_WINDOW).max(1),
        }
    }

    /// Records `key`, which must be remembered until `expires_at` (seconds since the
    /// epoch); `now` is the current time in the same unit.
    ///
    /// # Errors
    /// [`ReplayError::Replayed`] if `key` is present, [`ReplayError::Full`] if there is
    /// no room for it.
    pub fn insert(&self, key: u128, expires_at: u64, now: u64) -> Result<(), ReplayError> {
        #[allow(clippy::cast_possible_truncation)]
        let shard = &self.shards[(key >> 64) as usize % SHARDS];
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let removed = shard.prune(now, self.bucket_secs);
        if removed > 0 {
            self.total.fetch_sub(removed, Ordering::Relaxed);
        }
        if shard.buckets.iter().any(|(_, keys)| keys.contains(&key)) {
            return Err(ReplayError::Replayed);
        }
        // Shards fill unevenly, so the bound is on the total; concurrent insertions in
        // other shards may pass it by at most one entry each.
        if self.total.load(Ordering::Relaxed) >= self.capacity {
            return Err(ReplayError::Full);
        }
        let bucket = expires_at / self.bucket_secs;
        let position = shard.buckets.partition_point(|(b, _)| *b < bucket);
        match shard.buckets.get_mut(position) {
            Some((b, keys)) if *b == bucket => {
                keys.insert(key);
            }
            _ => {
                let mut keys = DigestSet::default();
                keys.insert(key);
                shard.buckets.insert(position, (bucket, keys));
            }
        }
        shard.len += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Entries held now (expired buckets included until the next insertion prunes them).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len
            })
            .sum()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128) -> u128 {
        // Spread test keys over the shards as digests would be.
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
    }

    #[test]
    fn a_key_is_refused_until_it_expires() {
        let cache = ReplayCache::new(300, 100);
        assert_eq!(cache.insert(key(1), 1300, 1000), Ok(()));
        assert_eq!(cache.insert(key(1), 1300, 1100), Err(ReplayError::Replayed));
        assert_eq!(cache.insert(key(2), 1300, 1100), Ok(()));
        // Still remembered right up to its expiry.
        assert_eq!(cache.insert(key(1), 1300, 1299), Err(ReplayError::Replayed));
        // Once the bucket holding it has ended, it is gone.
        assert_eq!(cache.insert(key(1), 2000, 1400), Ok(()));
        assert_eq!(cache.insert(key(2), 2000, 1400), Ok(()));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn full_means_refused_not_forgotten() {
        let cache = ReplayCache::new(300, 20);
        let mut accepted = 0;
        let mut full = 0;
        for n in 0..200 {
            match cache.insert(key(n), 1300, 1000) {
                Ok(()) => accepted += 1,
                Err(ReplayError::Full) => full += 1,
                Err(ReplayError::Replayed) => panic!("distinct keys"),
            }
        }
        assert_eq!(accepted, 20);
        assert_eq!(accepted + full, 200);
        // Every accepted key is still refused as a replay.
        for n in 0..200 {
            assert_ne!(cache.insert(key(n), 1300, 1000), Ok(()));
        }
        // Room comes back as entries expire.
        assert_eq!(cache.insert(key(500), 3000, 2000), Ok(()));
    }
}
