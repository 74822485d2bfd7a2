//! Counting WebSocket connections against `EXAI_WS_MAX_CONNECTIONS` and
//! `EXAI_WS_MAX_CONNECTIONS_PER_IP`.
//!
//! Why a slot value rather than counters bumped by hand: a slot is counted in when it is
//! taken and out when it is dropped, by whatever path the connection ends, so the count can
//! never drift (the same rule as admission's owned permits).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::key;

/// The connection counters and their limits.
pub struct ConnectionSlots {
    /// Connections open now.
    open: AtomicU32,
    /// Connections open now per peer address; an entry is removed at zero, so the map stays
    /// bounded by the connection limit.
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// `EXAI_WS_MAX_CONNECTIONS`.
    open_max: u32,
    /// `EXAI_WS_MAX_CONNECTIONS_PER_IP`.
    per_ip_max: u32,
}

impl ConnectionSlots {
    /// Counters at zero with their limits.
    pub fn new(open_max: u32, per_ip_max: u32) -> ConnectionSlots {
        ConnectionSlots {
            open: AtomicU32::new(0),
            per_ip: Mutex::new(HashMap::new()),
            open_max,
            per_ip_max,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::SeqCst)
    }

    /// Count a connection from `ip` in, if under both limits. The slot counts it out when
    /// dropped, refused or not. `Err` names the limit.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, String> {
        let before = self.open.fetch_add(1, Ordering::SeqCst);
        let from_ip = {
            let mut per_ip = self.per_ip.lock().expect("per-ip lock");
            let count = per_ip.entry(ip).or_insert(0);
            *count += 1;
            *count
        };
        // From here the slot counts itself out when dropped, refused or not.
        let slot = ConnectionSlot {
            slots: self.clone(),
            ip,
        };
        if before >= self.open_max {
            return Err(format!(
                "too many connections ({}={})",
                key::EXAI_WS_MAX_CONNECTIONS,
                self.open_max
            ));
        }
        if from_ip > self.per_ip_max {
            return Err(format!(
                "too many connections from one address ({}={})",
                key::EXAI_WS_MAX_CONNECTIONS_PER_IP,
                self.per_ip_max
            ));
        }
        Ok(slot)
    }
}

/// One counted connection; uncounted on drop.
pub struct ConnectionSlot {
    /// Whose counters.
    slots: Arc<ConnectionSlots>,
    /// The peer's address.
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let before = self.slots.open.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a connection slot was counted out twice");
        let mut per_ip = self.slots.per_ip.lock().expect("per-ip lock");
        let count = per_ip
            .get_mut(&self.ip)
            .expect("a slot's address is counted");
        assert!(*count > 0);
        *count -= 1;
        if *count == 0 {
            per_ip.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_in_and_out_and_name_their_limit() {
        let slots = Arc::new(ConnectionSlots::new(3, 2));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = slots.try_take(ip).unwrap();
        let _b = slots.try_take(ip).unwrap();
        let err = slots.try_take(ip).err().unwrap();
        assert!(err.contains("EXAI_WS_MAX_CONNECTIONS_PER_IP=2"), "{err}");
        assert_eq!(slots.open(), 2);
        drop(a);
        assert_eq!(slots.open(), 1);
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let _c = slots.try_take(other).unwrap();
        let _d = slots.try_take(ip).unwrap();
        let err = slots.try_take(other).err().unwrap();
        assert!(err.contains("EXAI_WS_MAX_CONNECTIONS=3"), "{err}");
        assert_eq!(slots.open(), 3);
    }
}
