//! The read-only commands: `DeviceInfo`, `GetPublicKey`, `GetPolicy`,
//! `GetAuditLog` and `Echo`.

use heapless::String;

use super::Device;
use super::backend::Backend;
use super::dispatch::Handle;
use crate::limits::MAX_REQUEST_FRAME;
use crate::protocol::{
    AuditLogResponse, DeviceError, DeviceInfo, DeviceInfoResponse, Echo, FixedBytes, GetAuditLog,
    GetPolicy, GetPublicKey, PROTOCOL_VERSION, Policy, PublicKeyResponse,
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
            max_request_frame: MAX_REQUEST_FRAME as u32,
            device_id: self.config.device_id,
            admin: self.config.admin,
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
    fn run(&mut self, c: &GetAuditLog, _: &[u8]) -> Result<AuditLogResponse, DeviceError> {
        Ok(self.audit.read(c.from))
    }
}

impl<B: Backend, const SLOTS: usize> Handle<Echo> for Device<B, SLOTS> {
    fn run(&mut self, c: &Echo, _: &[u8]) -> Result<Echo, DeviceError> {
        Ok(c.clone())
    }
}
