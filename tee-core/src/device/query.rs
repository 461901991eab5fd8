//! The read-only commands: `DeviceInfo`, `GetPublicKey`, `GetPolicy`,
//! `GetAuditLog`, `Echo` and `Health` (which the host service answers, not
//! the device).

use heapless::String;

use super::Device;
use super::backend::Backend;
use super::reply::Handle;
use crate::limits::request_frame_len;
use crate::protocol::{
    AuditLogResponse, DeviceError, DeviceInfo, DeviceInfoResponse, Echo, FixedBytes, GetAuditLog,
    GetPolicy, GetPublicKey, Health, HealthResponse, PROTOCOL_VERSION, Policy, PublicKeyResponse,
};

impl<B: Backend, const SLOTS: usize> Device<B, SLOTS> {
    /// Slot `n`'s key and mark, as `GetPublicKey` and the key commands
    /// answer.
    pub(super) fn public_key(&self, n: u8) -> Result<PublicKeyResponse, DeviceError> {
        let slot = self.slot(n)?;
        let loaded = slot.key.as_ref().ok_or(DeviceError::SlotEmpty)?;
        Ok(PublicKeyResponse {
            slot: n,
            public_key: FixedBytes(loaded.key.public_key().to_compressed()),
            address: loaded.key.address(),
            origin: loaded.origin.clone(),
            high_water: slot.high_water.map(|h| h.value),
        })
    }
}

impl<B: Backend, const SLOTS: usize> Handle<DeviceInfo> for Device<B, SLOTS> {
    fn run(&mut self, _: &DeviceInfo, _: &[u8]) -> Result<DeviceInfoResponse, DeviceError> {
        let mut firmware = String::new();
        let _ = firmware.push_str(env!("CARGO_PKG_VERSION"));
        Ok(DeviceInfoResponse {
            protocol_version: PROTOCOL_VERSION,
            firmware,
            backend: self.backend.kind(),
            capabilities: self.backend.capabilities(),
            slots: SLOTS as u8,
            max_request_frame: request_frame_len(&self.config.bounds) as u32,
            device_id: self.config.device_id,
            admin: self.config.admin,
            bounds: self.config.bounds,
        })
    }
}

impl<B: Backend, const SLOTS: usize> Handle<GetPublicKey> for Device<B, SLOTS> {
    fn run(&mut self, c: &GetPublicKey, _: &[u8]) -> Result<PublicKeyResponse, DeviceError> {
        self.public_key(c.slot)
    }
}

impl<B: Backend, const SLOTS: usize> Handle<GetPolicy> for Device<B, SLOTS> {
    fn run(&mut self, c: &GetPolicy, _: &[u8]) -> Result<Policy, DeviceError> {
        Ok(self.slot(c.slot)?.policy.clone())
    }
}

impl<B: Backend, const SLOTS: usize> Handle<GetAuditLog> for Device<B, SLOTS> {
    /// Up to a batch of consecutive entries from `from` (or the oldest
    /// kept): the newest from the RAM ring, older ones from the backend's
    /// store. Reading moves nothing: every reader sees the same log.
    fn run(&mut self, c: &GetAuditLog, _: &[u8]) -> Result<AuditLogResponse, DeviceError> {
        let next_index = self.audit.next_index();
        let oldest_kept = self.audit.oldest().min(self.backend.audit_oldest());
        let mut entries = heapless::Vec::new();
        let mut prev_hash = self.audit.head();
        let mut index = c.from.max(oldest_kept);
        while index < next_index && !entries.is_full() {
            let found = match self.audit.get(index) {
                Some(e) => Some(e),
                None => self.backend.audit_entry(index).map_err(|_| DeviceError::Storage)?,
            };
            let Some((entry, prev)) = found else { break };
            if entries.is_empty() {
                prev_hash = prev;
            }
            let _ = entries.push(entry);
            index += 1;
        }
        Ok(AuditLogResponse {
            prev_hash,
            entries,
            next_index,
            head_hash: self.audit.head(),
            oldest_kept,
        })
    }
}

impl<B: Backend, const SLOTS: usize> Handle<Echo> for Device<B, SLOTS> {
    fn run(&mut self, c: &Echo, _: &[u8]) -> Result<Echo, DeviceError> {
        Ok(c.clone())
    }
}

impl<B: Backend, const SLOTS: usize> Handle<Health> for Device<B, SLOTS> {
    /// A device alone sees nothing around it: the host service answers
    /// `Health` before the device is asked.
    fn run(&mut self, _: &Health, _: &[u8]) -> Result<HealthResponse, DeviceError> {
        Err(DeviceError::Unsupported)
    }
}
