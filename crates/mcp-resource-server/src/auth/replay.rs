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
//! million entries take about 46 MiB of resident memory with their holders' counts,
//! whether they come from ten thousand holders or a million (`bench replay-memory`).
//!
//! # Shares
//! A full cache refuses everyone, so one token holder sending proofs as fast as it can
//! would lock every other holder out. Each entry is therefore counted against its
//! holder (the caller passes a digest of the principal the token names), and a holder
//! with `per_holder` entries in the cache is refused ([`ReplayError::OverQuota`], with
//! the seconds until its oldest entries leave) while the others keep being served.
//!
//! The counts live in buckets like the entries and leave with them. Each bucket counts
//! in a count-min sketch (a few rows of counters, each row indexed by its own seeded
//! hash of the holder; a holder's count is the smallest of its counters), so their
//! memory is fixed, 2.3 MiB at most (16 KiB per holder shard and bucket), however many
//! holders there are: exact counts, one map entry per holder and bucket, cost 38 MiB
//! more when a million entries come from a million holders. A sketch's count is never too low, so no holder gets past
//! its share; it can be too high by the entries of holders that share all of its
//! counters, a few per bucket at a million entries, far below any useful share.

use std::{
    collections::{HashSet, VecDeque},
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::future::BoxFuture;

use crate::error::Error;

/// A record of proofs kept beside this instance's cache and shared with the other
/// instances behind a load balancer (the Redis one is [`crate::cluster::replay`]).
pub(crate) trait SharedReplay: Send + Sync {
    /// Records a proof's `replay_key` over every instance until `expires_at` (seconds
    /// since the epoch; `now` in the same unit). Resolves to `false` if any instance
    /// recorded it before.
    fn record_proof(
        &self,
        replay_key: u128,
        expires_at: u64,
        now: u64,
    ) -> BoxFuture<'_, Result<bool, Error>>;
}

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
    /// The holder has as many entries in the cache as one holder may.
    #[error("too many proofs from one holder within the window")]
    OverQuota {
        /// Seconds until the holder's oldest entries leave the cache.
        retry_after: u64,
    },
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

/// Rows of a [`Sketch`]: a holder is over-counted only if every row over-counts it.
const SKETCH_ROWS: usize = 4;

/// Counters per row of a [`Sketch`] (a power of two). A holder shard sees 1/[`SHARDS`]
/// of the holders, so this is 16,384 counters per row over the whole cache.
const SKETCH_WIDTH: usize = 1024;

/// Entries per holder within one bucket, as a count-min sketch.
struct Sketch {
    counters: Box<[[u32; SKETCH_WIDTH]; SKETCH_ROWS]>,
}

impl Sketch {
    fn new() -> Self {
        Self {
            counters: Box::new([[0; SKETCH_WIDTH]; SKETCH_ROWS]),
        }
    }

    /// The holder's counter in each row.
    fn slots(seeds: &[u64; SKETCH_ROWS], holder: u64) -> impl Iterator<Item = usize> + '_ {
        seeds.iter().map(move |seed| {
            // A multiply-xorshift mix of the holder with the row's secret seed; the
            // top bits pick the counter.
            let mut x = (holder ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 29;
            x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            #[allow(clippy::cast_possible_truncation)]
            let slot = (x >> (64 - SKETCH_WIDTH.trailing_zeros())) as usize;
            slot
        })
    }

    fn count(&self, seeds: &[u64; SKETCH_ROWS], holder: u64) -> u32 {
        Self::slots(seeds, holder)
            .zip(self.counters.iter())
            .map(|(slot, row)| row[slot])
            .min()
            .unwrap_or(0)
    }

    fn add(&mut self, seeds: &[u64; SKETCH_ROWS], holder: u64) {
        for (slot, row) in Self::slots(seeds, holder).zip(self.counters.iter_mut()) {
            row[slot] = row[slot].saturating_add(1);
        }
    }
}

/// Entries per holder, by bucket: the part of [`ReplayCache`] that enforces the shares.
struct Quota {
    /// The rows' hash seeds, secret so that nobody can pick holders that collide.
    seeds: [u64; SKETCH_ROWS],
    /// `(bucket number, entries per holder expiring within it)`, oldest bucket first.
    buckets: VecDeque<(u64, Sketch)>,
}

impl Quota {
    fn new() -> Self {
        Self {
            seeds: rand::random(),
            buckets: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: u64, bucket_secs: u64) {
        while let Some((bucket, _)) = self.buckets.front() {
            if (bucket + 1).saturating_mul(bucket_secs) > now {
                break;
            }
            self.buckets.pop_front();
        }
    }

    /// The holder's entries (never fewer than it has), and the end of the oldest
    /// bucket counting one.
    fn held(&self, holder: u64, bucket_secs: u64) -> (usize, Option<u64>) {
        let mut held = 0;
        let mut first_end = None;
        for (bucket, sketch) in &self.buckets {
            let count = sketch.count(&self.seeds, holder);
            if count > 0 {
                held += count as usize;
                first_end.get_or_insert((bucket + 1).saturating_mul(bucket_secs));
            }
        }
        (held, first_end)
    }

    fn add(&mut self, holder: u64, bucket: u64) {
        let position = self.buckets.partition_point(|(b, _)| *b < bucket);
        if !matches!(self.buckets.get(position), Some((b, _)) if *b == bucket) {
            self.buckets.insert(position, (bucket, Sketch::new()));
        }
        self.buckets[position].1.add(&self.seeds, holder);
    }
}

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
    /// Entries per holder, sharded by holder.
    quotas: Box<[Mutex<Quota>]>,
    /// Entries over all shards.
    total: AtomicUsize,
    capacity: usize,
    per_holder: usize,
    bucket_secs: u64,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &self.capacity)
            .field("per_holder", &self.per_holder)
            .field("bucket_secs", &self.bucket_secs)
            .finish_non_exhaustive()
    }
}

impl ReplayCache {
    /// A cache for proofs accepted within `window_secs` of their `iat`, holding at most
    /// about `capacity` entries, of which at most `per_holder` from one holder.
    pub fn new(window_secs: u64, capacity: usize, per_holder: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        let quotas = (0..SHARDS).map(|_| Mutex::new(Quota::new())).collect();
        Self {
            shards,
            quotas,
            total: AtomicUsize::new(0),
            capacity: capacity.max(1),
            per_holder: per_holder.max(1),
            bucket_secs: (window_secs / BUCKETS_PER_WINDOW).max(1),
        }
    }

    /// Records `key` for `holder` (a digest naming who presented it), which must be
    /// remembered until `expires_at` (seconds since the epoch); `now` is the current
    /// time in the same unit.
    ///
    /// # Errors
    /// [`ReplayError::Replayed`] if `key` is present, [`ReplayError::OverQuota`] if
    /// `holder` has its share of the cache, [`ReplayError::Full`] if there is no room.
    pub fn insert(
        &self,
        key: u128,
        holder: u64,
        expires_at: u64,
        now: u64,
    ) -> Result<(), ReplayError> {
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
        let bucket = expires_at / self.bucket_secs;
        // Lock order: key shard, then holder shard (nothing takes them the other way).
        #[allow(clippy::cast_possible_truncation)]
        let mut quota = self.quotas[(holder >> 32) as usize % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        quota.prune(now, self.bucket_secs);
        let (held, first_end) = quota.held(holder, self.bucket_secs);
        if held >= self.per_holder {
            let retry_after = first_end.map_or(1, |end| end.saturating_sub(now).max(1));
            return Err(ReplayError::OverQuota { retry_after });
        }
        // Shards fill unevenly, so the bound is on the total; concurrent insertions in
        // other shards may pass it by at most one entry each.
        if self.total.load(Ordering::Relaxed) >= self.capacity {
            return Err(ReplayError::Full);
        }
        quota.add(holder, bucket);
        drop(quota);
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

    const A: u64 = 0x1234_5678_9abc_def0;
    const B: u64 = 0x0fed_cba9_8765_4321;

    #[test]
    fn a_key_is_refused_until_it_expires() {
        let cache = ReplayCache::new(300, 100, 100);
        assert_eq!(cache.insert(key(1), A, 1300, 1000), Ok(()));
        assert_eq!(
            cache.insert(key(1), A, 1300, 1100),
            Err(ReplayError::Replayed)
        );
        assert_eq!(cache.insert(key(2), A, 1300, 1100), Ok(()));
        // Still remembered right up to its expiry, whoever presents it.
        assert_eq!(
            cache.insert(key(1), B, 1300, 1299),
            Err(ReplayError::Replayed)
        );
        // Once the bucket holding it has ended, it is gone.
        assert_eq!(cache.insert(key(1), A, 2000, 1400), Ok(()));
        assert_eq!(cache.insert(key(2), A, 2000, 1400), Ok(()));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn full_means_refused_not_forgotten() {
        let cache = ReplayCache::new(300, 20, 1000);
        let mut accepted = 0;
        let mut full = 0;
        for n in 0..200 {
            match cache.insert(key(n), A, 1300, 1000) {
                Ok(()) => accepted += 1,
                Err(ReplayError::Full) => full += 1,
                Err(e) => panic!("distinct keys, one holder under its share: {e}"),
            }
        }
        assert_eq!(accepted, 20);
        assert_eq!(accepted + full, 200);
        // Every accepted key is still refused as a replay.
        for n in 0..200 {
            assert_ne!(cache.insert(key(n), A, 1300, 1000), Ok(()));
        }
        // Room comes back as entries expire.
        assert_eq!(cache.insert(key(500), A, 3000, 2000), Ok(()));
    }

    #[test]
    fn one_holder_fills_only_its_share() {
        // Window 300 s: buckets of 37 s; entries expiring at 1300 sit in bucket 35,
        // which ends at 1332.
        let cache = ReplayCache::new(300, 100, 10);
        for n in 0..10 {
            assert_eq!(cache.insert(key(n), A, 1300, 1000), Ok(()));
        }
        for n in 10..50 {
            assert_eq!(
                cache.insert(key(n), A, 1300, 1000),
                Err(ReplayError::OverQuota { retry_after: 332 })
            );
        }
        // The refused proofs were not remembered: the holder may send them again later.
        assert_eq!(cache.len(), 10);
        // Another holder is served as if nothing happened.
        for n in 100..110 {
            assert_eq!(cache.insert(key(n), B, 1300, 1000), Ok(()));
        }
        // A replay is still a replay, not a quota matter.
        assert_eq!(
            cache.insert(key(3), A, 1300, 1001),
            Err(ReplayError::Replayed)
        );
        // The share comes back as the holder's entries leave.
        assert_eq!(cache.insert(key(10), A, 1700, 1332), Ok(()));
        assert_eq!(cache.insert(key(11), A, 1700, 1332), Ok(()));
    }

    #[test]
    fn many_light_holders_are_not_taken_for_a_heavy_one() {
        // 50,000 holders with one entry each, then one holder sending until refused: the
        // sketch never lets it past its share and over-counts it by only a few.
        let cache = ReplayCache::new(300, 1_000_000, 50);
        for n in 0..50_000u64 {
            let holder = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
            assert_eq!(cache.insert(key(u128::from(n)), holder, 1300, 1000), Ok(()));
        }
        let accepted = (1_000_000..1_000_100u128)
            .take_while(|&n| cache.insert(key(n), A, 1300, 1000).is_ok())
            .count();
        assert!(
            (40..=50).contains(&accepted),
            "{accepted} entries accepted from one holder with a share of 50"
        );
    }

    #[test]
    fn retry_after_names_the_oldest_bucket_of_the_holder() {
        let cache = ReplayCache::new(300, 100, 2);
        // Buckets of 37 s: 1300 -> bucket 35 (ends 1332), 1400 -> bucket 37 (ends 1406).
        assert_eq!(cache.insert(key(1), A, 1400, 1100), Ok(()));
        assert_eq!(cache.insert(key(2), A, 1300, 1100), Ok(()));
        assert_eq!(
            cache.insert(key(3), A, 1400, 1200),
            Err(ReplayError::OverQuota { retry_after: 132 })
        );
    }
}
