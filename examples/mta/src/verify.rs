//! Password verification with bounded memory: argon2 runs in one of a
//! fixed number of reusable memory areas, so concurrent AUTH attempts
//! cannot make the process hold more than `areas x m_cost`.
//!
//! Without it every verification allocated its own 19 MiB (argon2's
//! default `m_cost`) on whichever blocking thread ran it; the allocator
//! kept those per thread, and a password guesser with a few parallel
//! connections took the server's RSS past 2.5 GiB (docs/adversarial.md).
//! A verification waits for a free area instead.

use std::sync::{Condvar, Mutex};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// A fixed set of argon2 memory areas, lent out one per verification.
#[derive(Debug)]
pub struct VerifyPool {
    free: Mutex<Vec<Vec<Block>>>,
    returned: Condvar,
}

impl VerifyPool {
    /// `areas` memory areas (at least 1), allocated on first use and sized
    /// to the largest `m_cost` seen.
    pub fn new(areas: usize) -> VerifyPool {
        VerifyPool {
            free: Mutex::new((0..areas.max(1)).map(|_| Vec::new()).collect()),
            returned: Condvar::new(),
        }
    }

    /// One area per CPU: verifications beyond that would only queue for
    /// the CPU anyway.
    pub fn per_cpu() -> VerifyPool {
        VerifyPool::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Whether `password` matches the argon2 PHC `hash`. Blocks while every
    /// area is in use; call it off the async executor.
    pub fn verify(&self, password: &[u8], hash: &PasswordHash<'_>) -> bool {
        let mut area = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(a) = free.pop() {
                    break a;
                }
                free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
            }
        };
        let ok = verify_in(password, hash, &mut area);
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(area);
        self.returned.notify_one();
        ok
    }
}

fn verify_in(password: &[u8], hash: &PasswordHash<'_>, area: &mut Vec<Block>) -> bool {
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password, salt, &mut out, &mut area[..blocks])
        .is_err()
    {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|o| o == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_exactly_what_argon2_hashed() {
        let phc = crate::users::hash_password(b"s3cret").unwrap();
        let hash = PasswordHash::new(&phc).unwrap();
        let pool = VerifyPool::new(1);
        assert!(pool.verify(b"s3cret", &hash));
        assert!(!pool.verify(b"s3cret!", &hash));
        assert!(pool.verify(b"s3cret", &hash), "the area is reused");
    }

    #[test]
    fn concurrent_verifications_share_the_areas() {
        let phc = crate::users::hash_password(b"pw").unwrap();
        let pool = VerifyPool::new(2);
        std::thread::scope(|s| {
            for i in 0..6 {
                let (pool, phc) = (&pool, &phc);
                s.spawn(move || {
                    let hash = PasswordHash::new(phc).unwrap();
                    assert_eq!(
                        pool.verify(if i % 2 == 0 { b"pw" } else { b"no" }, &hash),
                        i % 2 == 0
                    );
                });
            }
        });
        assert_eq!(pool.free.lock().unwrap().len(), 2);
    }
}
