//! Global and per-IP connection counting; a slot is released when its
//! guard drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The counts of one listener.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    active: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Global,
    PerIp,
    /// Over a connection rate limit (counted by `guard::ConnectionRate`).
    Rate,
}

impl Refusal {
    /// What an [`Observer`](crate::Observer) is told.
    pub(crate) fn throttle(self) -> crate::observe::Throttle {
        match self {
            Refusal::Global => crate::observe::Throttle::Connections,
            Refusal::PerIp => crate::observe::Throttle::ConnectionsPerIp,
            Refusal::Rate => crate::observe::Throttle::ConnectionRate,
        }
    }
}

/// Holds one connection slot.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
    /// Held while the connection lives, so shutdown can wait for it.
    task: Option<tokio::sync::mpsc::Sender<()>>,
}

impl Slot {
    pub(crate) fn with_task(mut self, task: tokio::sync::mpsc::Sender<()>) -> Self {
        self.task = Some(task);
        self
    }
}

impl Admission {
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        global: usize,
        per_ip: usize,
    ) -> Result<Slot, Refusal> {
        let mut map = match self.per_ip.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if self.active.load(Ordering::Relaxed) >= global {
            return Err(Refusal::Global);
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        self.active.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            admission: self.clone(),
            ip,
            task: None,
        })
    }

    /// Connections being served.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = match self.admission.per_ip.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.admission.active.fetch_sub(1, Ordering::Relaxed);
    }
}
