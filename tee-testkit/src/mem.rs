//! Test doubles and a host/device pair (feature `std`).
//!
//! [`MemBackend`] keeps durable state in memory and can lose power at any
//! write step, before or after the write took effect; [`Pair`] drives a
//! [`Device`] through real frames (COBS, CRC, the accumulator, optionally one
//! byte at a time), as quinn-proto's test `Pair` drives a connection.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test support: a broken test setup should fail loudly"
)]

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use tee_core::action::ActionBounds;
use tee_core::codec;
use tee_core::device::{
    AuditStore, AuditedMark, Backend, BackendError, Clock, CounterId, CounterStore, Device,
    DeviceConfig, EvidenceRef, HighWater, KeyStore, QuoteSource, Rng, audit_chain_hash,
};
use tee_core::frame::{Accumulator, Header};
use tee_core::policy::SpendWindow;
use tee_core::primitives::{B256, keccak256};
use tee_core::protocol::{
    AdminCommand, Allow, AuditEntry, BackendKind, Command, DeviceError, KindSet, MAX_REQUEST_FRAME,
    MAX_REQUEST_WIRE, MAX_RESPONSE_FRAME, MAX_RESPONSE_WIRE, NUM_SLOTS, Policy, TokenRule,
    authorize, capability,
};
use tee_core::signer::SigningKey;

/// When a power loss strikes a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// The write never reaches storage.
    BeforeWrite,
    /// The write is durable, but power fails before the call returns.
    AfterWrite,
}

/// An in-memory backend with fault injection.
#[derive(Debug, Clone)]
pub struct MemBackend {
    kind: BackendKind,
    slots: [Option<Vec<u8>>; NUM_SLOTS],
    counters: [Option<HighWater>; NUM_SLOTS + 1],
    spends: std::collections::BTreeMap<(usize, Option<tee_core::Address>), SpendWindow>,
    seed: [u8; 32],
    draws: u64,
    quote_buf: Vec<u8>,
    evidence_buf: Vec<u8>,
    /// The audit chain, kept like the counters (survives a restart).
    audit: Vec<(AuditEntry, B256)>,
    /// Unix time the clock reports (`None`: no clock).
    pub now: Option<u64>,
    /// Root for `derive_key` (`None`: derivation unsupported).
    pub derive_root: Option<[u8; 32]>,
    /// Whether `quote` produces (fake) quotes.
    pub quotes: bool,
    /// Whether the RNG fails.
    pub rng_fails: bool,
    /// Whether it keeps the audit chain (a host's journal) or leaves it to
    /// the device's RAM ring (a microcontroller).
    pub keeps_audit: bool,
    /// Write steps attempted so far (slot stores and counter commits).
    pub write_steps: u64,
    /// Lose power at this write step.
    pub power_loss: Option<(u64, PowerLoss)>,
    /// Power is lost: every operation fails until [`MemBackend::restart`].
    pub dead: bool,
    /// Whether the store keeps spend windows with the marks (a
    /// microcontroller's does not: it refuses spend caps).
    pub reserves_spend: bool,
}

impl MemBackend {
    /// A simulated-TEE backend: clock, key derivation, fake quotes.
    #[must_use]
    pub fn new(seed: u8) -> Self {
        MemBackend {
            kind: BackendKind::Simulated,
            slots: Default::default(),
            counters: [None; NUM_SLOTS + 1],
            spends: std::collections::BTreeMap::new(),
            seed: [seed; 32],
            draws: 0,
            quote_buf: Vec::new(),
            evidence_buf: Vec::new(),
            audit: Vec::new(),
            now: Some(1_767_225_000),
            derive_root: Some([0x5e; 32]),
            quotes: true,
            rng_fails: false,
            keeps_audit: true,
            write_steps: 0,
            power_loss: None,
            dead: false,
            reserves_spend: true,
        }
    }

    /// A microcontroller-like backend: no clock, no derivation, no quotes.
    #[must_use]
    pub fn mcu(seed: u8) -> Self {
        MemBackend {
            kind: BackendKind::Mcu,
            now: None,
            derive_root: None,
            quotes: false,
            keeps_audit: false,
            reserves_spend: false,
            ..MemBackend::new(seed)
        }
    }

    /// Power comes back: durable state stays, the fault is cleared.
    pub fn restart(&mut self) {
        self.dead = false;
        self.power_loss = None;
    }

    /// A durable counter, as storage holds it.
    #[must_use]
    pub fn counter(&self, id: CounterId) -> Option<HighWater> {
        let i = match id {
            CounterId::Slot(n) => usize::from(n),
            CounterId::Admin => NUM_SLOTS,
        };
        self.counters.get(i).copied().flatten()
    }

    /// Decides the fate of one write: `Ok(true)` apply and return, `Ok(false)`
    /// apply then fail, `Err` fail without applying.
    fn write_step(&mut self) -> Result<bool, BackendError> {
        if self.dead {
            return Err(BackendError::Failed);
        }
        let step = self.write_steps;
        self.write_steps += 1;
        match self.power_loss {
            Some((at, mode)) if at == step => {
                self.dead = true;
                match mode {
                    PowerLoss::BeforeWrite => Err(BackendError::Failed),
                    PowerLoss::AfterWrite => Ok(false),
                }
            }
            _ => Ok(true),
        }
    }
}

impl Rng for MemBackend {
    fn fill_bytes(&mut self, buf: &mut [u8]) -> Result<(), BackendError> {
        if self.rng_fails || self.dead {
            return Err(BackendError::Failed);
        }
        for chunk in buf.chunks_mut(32) {
            let mut input = [0u8; 40];
            input[..32].copy_from_slice(&self.seed);
            input[32..].copy_from_slice(&self.draws.to_le_bytes());
            self.draws += 1;
            let block = keccak256(&input);
            chunk.copy_from_slice(&block.0[..chunk.len()]);
        }
        Ok(())
    }
}

impl Clock for MemBackend {
    fn now(&mut self) -> Option<u64> {
        self.now
    }
}

impl KeyStore for MemBackend {
    fn load_slot(&mut self, slot: u8, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        if self.dead {
            return Err(BackendError::Failed);
        }
        match self.slots.get(usize::from(slot)).ok_or(BackendError::Failed)? {
            None => Ok(None),
            Some(r) => {
                buf.get_mut(..r.len()).ok_or(BackendError::Failed)?.copy_from_slice(r);
                Ok(Some(r.len()))
            }
        }
    }

    fn store_slot(&mut self, slot: u8, record: &[u8]) -> Result<(), BackendError> {
        let returns = self.write_step()?;
        *self.slots.get_mut(usize::from(slot)).ok_or(BackendError::Failed)? = Some(record.to_vec());
        if returns { Ok(()) } else { Err(BackendError::Failed) }
    }

    fn derive_key(&mut self, path: &str) -> Result<Zeroizing<[u8; 32]>, BackendError> {
        let root = self.derive_root.ok_or(BackendError::Unsupported)?;
        let mut input = root.to_vec();
        input.extend_from_slice(path.as_bytes());
        Ok(Zeroizing::new(keccak256(&input).0))
    }
}

impl CounterStore for MemBackend {
    /// The spend window is kept with the mark, in the same write step.
    fn reserves_spend(&self) -> bool {
        self.reserves_spend
    }

    fn load_spend(
        &mut self,
        slot: u8,
        asset: Option<&tee_core::Address>,
    ) -> Result<Option<SpendWindow>, BackendError> {
        if self.dead {
            return Err(BackendError::Failed);
        }
        Ok(self.spends.get(&(usize::from(slot), asset.copied())).copied())
    }

    fn load_counter(&mut self, id: CounterId) -> Result<Option<HighWater>, BackendError> {
        if self.dead {
            return Err(BackendError::Failed);
        }
        Ok(self.counter(id))
    }

    fn commit_counter(&mut self, id: CounterId, value: &HighWater) -> Result<(), BackendError> {
        let i = match id {
            CounterId::Slot(n) => usize::from(n),
            CounterId::Admin => NUM_SLOTS,
        };
        let returns = self.write_step()?;
        *self.counters.get_mut(i).ok_or(BackendError::Failed)? = Some(*value);
        if returns { Ok(()) } else { Err(BackendError::Failed) }
    }

    /// The mark and its audit entry in one write step: both or neither.
    fn commit_counter_audited(
        &mut self,
        id: CounterId,
        m: AuditedMark<'_>,
    ) -> Result<(), BackendError> {
        let AuditedMark { mark: value, entry, prev, spend } = m;
        let i = match id {
            CounterId::Slot(n) => usize::from(n),
            CounterId::Admin => NUM_SLOTS,
        };
        let returns = self.write_step()?;
        *self.counters.get_mut(i).ok_or(BackendError::Failed)? = Some(*value);
        if let Some(spend) = spend {
            self.spends.insert((i, spend.asset), spend.window);
        }
        if self.keeps_audit {
            self.audit.push((*entry, *prev));
        }
        if returns { Ok(()) } else { Err(BackendError::Failed) }
    }
}

impl AuditStore for MemBackend {
    fn audit_head(&mut self) -> Result<Option<(u64, B256)>, BackendError> {
        if self.dead {
            return Err(BackendError::Failed);
        }
        Ok(self.audit.last().map(|(e, prev)| (e.index + 1, audit_chain_hash(prev, e))))
    }

    fn audit_append(
        &mut self,
        entry: &AuditEntry,
        prev: &B256,
        _durable: bool,
    ) -> Result<(), BackendError> {
        if self.dead {
            return Err(BackendError::Failed);
        }
        if self.keeps_audit {
            self.audit.push((*entry, *prev));
        }
        Ok(())
    }

    fn audit_entry(&mut self, index: u64) -> Result<Option<(AuditEntry, B256)>, BackendError> {
        Ok(self.audit.iter().find(|(e, _)| e.index == index).copied())
    }

    fn audit_oldest(&mut self) -> u64 {
        self.audit.first().map_or(u64::MAX, |(e, _)| e.index)
    }
}

impl QuoteSource for MemBackend {
    /// A stand-in "quote": `SIMQUOTE` and the report data. Not a TDX quote.
    fn quote(&mut self, report_data: &[u8; 64]) -> Result<&[u8], BackendError> {
        if !self.quotes {
            return Err(BackendError::Unsupported);
        }
        self.quote_buf = [&b"SIMQUOTE"[..], report_data].concat();
        Ok(&self.quote_buf)
    }

    /// Stand-in evidence: `EVENTLOG` (after a quote, else a failure) and
    /// `CHAIN:` with the path.
    fn evidence(&mut self, which: EvidenceRef<'_>) -> Result<&[u8], BackendError> {
        if !self.quotes {
            return Err(BackendError::Unsupported);
        }
        self.evidence_buf = match which {
            EvidenceRef::EventLog if self.quote_buf.is_empty() => {
                return Err(BackendError::Failed);
            }
            EvidenceRef::EventLog => b"EVENTLOG".to_vec(),
            EvidenceRef::KeyChain(path) => [&b"CHAIN:"[..], path.as_bytes()].concat(),
        };
        Ok(&self.evidence_buf)
    }
}

impl Backend for MemBackend {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn capabilities(&self) -> u32 {
        let mut c = capability::GENERATE;
        if self.quotes {
            c |= capability::ATTEST;
        }
        if self.derive_root.is_some() {
            c |= capability::DERIVE;
        }
        if self.now.is_some() {
            c |= capability::CLOCK;
        }
        c
    }
}

/// The admin key of test devices.
pub const ADMIN_SECRET: [u8; 32] = [0xad; 32];
/// The device id of test devices.
pub const DEVICE_ID: B256 = B256([0xd1; 32]);

/// The test devices' configuration: [`DEVICE_ID`], admin = [`ADMIN_SECRET`]'s address.
#[must_use]
pub fn config() -> DeviceConfig {
    let admin = SigningKey::from_bytes(&ADMIN_SECRET).map(|k| k.address()).unwrap_or_default();
    DeviceConfig { device_id: DEVICE_ID, admin, bounds: ActionBounds::HOST }
}

/// A policy allowing every typed action kind on any chain, contract and
/// agent, with no value and no gas or fee cap: what session tests use once
/// policy itself is not the subject.
#[must_use]
pub fn typed_policy() -> Policy {
    Policy {
        kinds: KindSet::typed(),
        chains: Allow::Any,
        contracts: Allow::Any,
        agents: Allow::Any,
        max_value: tee_core::U256::ZERO,
        max_gas_limit: u64::MAX,
        max_fee_per_gas: u128::MAX,
        max_deadline_ahead_secs: 300,
        rate_limit: None,
        eip712_domains: Allow::default(),
        spend_cap: None,
        valid_until: 0,
        tokens: tee_core::heapless::Vec::from_slice(&[TokenRule {
            token: tee_core::sample::USDC,
            max_amount: tee_core::U256([0xff; 32]),
            cap: None,
        }])
        .unwrap_or_default(),
        recipients: Allow::Any,
        unlimited_approvals: false,
        approvals: None,
    }
}

/// A host talking to a device (of `S` slots) through frames.
#[derive(Debug)]
pub struct Pair<B: Backend, const S: usize = NUM_SLOTS> {
    /// The device.
    pub device: Box<Device<B, S>>,
    rx: Accumulator<MAX_REQUEST_FRAME>,
    tx: Vec<u8>,
    host_rx: Accumulator<MAX_RESPONSE_FRAME>,
    next_id: u32,
    /// Bytes per chunk fed to the device (1: a byte at a time).
    pub chunk: usize,
    /// The next admin counter [`Pair::admin`] uses.
    pub admin_counter: u64,
}

impl<B: Backend> Pair<B> {
    /// A pair around `device` (of the default slot count).
    pub fn new(device: Device<B>) -> Self {
        Pair::with(device)
    }
}

impl<B: Backend, const S: usize> Pair<B, S> {
    /// A pair around `device`, of any slot count (a host's device of 255
    /// slots is a few hundred KiB: given boxed, it is never copied onto a
    /// test thread's stack).
    pub fn with(device: impl Into<Box<Device<B, S>>>) -> Self {
        Pair {
            device: device.into(),
            rx: Accumulator::new(),
            tx: vec![0; MAX_RESPONSE_WIRE],
            host_rx: Accumulator::new(),
            next_id: 1,
            chunk: usize::MAX,
            admin_counter: 1,
        }
    }

    /// Sends raw bytes; returns the payloads of the response frames.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut wire = Vec::new();
        for piece in bytes.chunks(self.chunk.max(1)) {
            let Ok(()) = tee_core::serve::feed(
                &mut wire,
                &mut self.device,
                &mut self.rx,
                &mut self.tx,
                piece,
            );
        }
        let mut out = Vec::new();
        let mut input = &wire[..];
        while !input.is_empty() {
            let (frame, rest) = self.host_rx.feed(input);
            input = rest;
            if let Some(frame) = frame {
                out.push(frame.map(<[u8]>::to_vec).expect("the device's frames are well-formed"));
            }
        }
        out
    }

    /// Sends `cmd`; returns the response payload (header and body). Earlier
    /// garbage on the line may add one frame-error response (request id 0)
    /// before it, which is skipped, as a client must.
    pub fn request<C: Command>(&mut self, cmd: &C) -> Vec<u8> {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = vec![0u8; MAX_REQUEST_WIRE];
        let frame =
            tee_core::client::encode_request(id, cmd, &mut buf).expect("request encodes").to_vec();
        let mut responses = self.send_raw(&frame);
        assert!((1..=2).contains(&responses.len()), "one response, after at most one error");
        let payload = responses.pop().unwrap_or_default();
        let (h, _) = Header::split(&payload).expect("response header");
        assert_eq!((h.request_id, h.command), (id, C::CODE), "response matches the request");
        for earlier in &responses {
            let (h, _) = Header::split(earlier).expect("response header");
            assert_eq!((h.request_id, h.command), (0, 0), "only a frame error precedes");
        }
        payload
    }

    /// Sends `cmd` and decodes its response.
    pub fn call<C: Command>(&mut self, cmd: &C) -> Result<C::Response<'static>, DeviceError>
    where
        C::Response<'static>: DeserializeOwned + Serialize,
    {
        let payload = self.request(cmd);
        let (_, body) = Header::split(&payload).expect("response header");
        codec::decode::<Result<C::Response<'static>, DeviceError>>(body)
            .expect("canonical response")
    }

    /// Authorizes `cmd` with the test admin key and the next counter, then
    /// calls it.
    pub fn admin<C: AdminCommand>(
        &mut self,
        mut cmd: C,
    ) -> Result<C::Response<'static>, DeviceError>
    where
        C::Response<'static>: DeserializeOwned + Serialize,
    {
        let admin = SigningKey::from_bytes(&ADMIN_SECRET).expect("admin key");
        authorize(&mut cmd, &admin, &DEVICE_ID, self.admin_counter).expect("authorize");
        self.admin_counter += 1;
        self.call(&cmd)
    }
}
