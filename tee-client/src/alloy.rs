//! The signer as alloy's signer: [`DeviceSigner`] implements alloy's
//! [`Signer`] and [`TxSigner`] (and their sync forms), so an alloy
//! `EthereumWallet`, and a provider built with it, signs through the device.
//!
//! Each request becomes the device's canonical action before it is sent:
//! a transaction through [`TxRequest`] (to a registry: the typed call, its
//! calldata decoded strictly; otherwise generic), an EIP-191 message as a
//! `personal_sign` action, typed data as the `AgentWalletSet` action or the
//! pre-hashed one. The device builds the digest from the action's fields;
//! before a signature is handed back, its digest is checked to be the one
//! alloy computes for the request, so a field the action cannot carry
//! (an access list, blobs, an authorization list) is refused, never
//! signed as something else. Raw hashes are never signed
//! (`sign_hash`: unsupported).
//!
//! Every signature is attested (a quote bound to its digest), as
//! [`PhalaDstackProvider::sign`] does; [`DeviceSigner::last_signature`]
//! holds the last one with its attestation. Errors are alloy's, the
//! device's typed reason inside ([`ProviderError`] or
//! [`JsonActionError`] by downcast of `alloy_signer::Error::Other`).

use std::sync::{Arc, Mutex};

use alloy_consensus::SignableTransaction;
use alloy_network::{TxSigner, TxSignerSync};
use alloy_primitives::{ChainId, Signature};
use alloy_signer::{Signer, SignerSync, UnsupportedSignerOperation};
use alloy_sol_types::{Eip712Domain, SolStruct};
use tee_core::Action;
use tee_core::action::{AgentWalletSet, Eip712Prehashed, PersonalMessage};
use tee_core::{Address, B256, U256};

use super::provider::{PhalaDstackProvider, ProviderError};
use crate::actions::{Fees, JsonActionError, OwnedAction, TxRequest};
use tee_verify::TeeSignature;

/// A slot of the signer as an alloy signer.
#[derive(Debug, Clone)]
pub struct DeviceSigner {
    provider: Arc<PhalaDstackProvider>,
    slot: u8,
    address: alloy_primitives::Address,
    registries: Vec<Address>,
    chain_id: Option<ChainId>,
    last: Arc<Mutex<Option<TeeSignature>>>,
}

/// Why a request is not signed: what alloy's error carries.
#[derive(Debug, thiserror::Error)]
pub enum DeviceSignerError {
    /// The signer refused or could not be reached.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The request is not an action the signer takes.
    #[error(transparent)]
    Action(#[from] JsonActionError),
    /// A transaction of a type or with a field the signer does not take.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The device signed another digest than alloy computes for the
    /// request (a field the action does not carry).
    #[error("the signer's digest {device} is not the request's {request}")]
    DigestMismatch {
        /// What the device signed.
        device: B256,
        /// What alloy hashes.
        request: B256,
    },
}

fn other(e: impl Into<DeviceSignerError>) -> alloy_signer::Error {
    alloy_signer::Error::other(e.into())
}

fn b256(h: &alloy_primitives::B256) -> B256 {
    B256(h.0)
}

impl DeviceSigner {
    /// `slot` of the signer behind `provider`: its address, and the
    /// contracts its policy names as registries besides the deployed ones.
    pub fn new(provider: Arc<PhalaDstackProvider>, slot: u8) -> Result<Self, ProviderError> {
        let (address, registries) = provider.slot_context(slot)?;
        Ok(DeviceSigner {
            provider,
            slot,
            address: alloy_primitives::Address::from(address.0),
            registries,
            chain_id: None,
            last: Arc::default(),
        })
    }

    /// The last signature this signer (or a clone) made, with its
    /// attestation.
    #[must_use]
    pub fn last_signature(&self) -> Option<TeeSignature> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Signs `action` and checks its digest is `expected`.
    fn sign_action(&self, action: &Action<'_>, expected: B256) -> alloy_signer::Result<Signature> {
        let signed = self.provider.sign_slot_at(self.slot, action, None).map_err(other)?;
        if signed.digest != expected {
            return Err(other(DeviceSignerError::DigestMismatch {
                device: signed.digest,
                request: expected,
            }));
        }
        let signature = Signature::from_raw_array(&signed.signature.0)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(signed);
        }
        Ok(signature)
    }

    /// alloy's rule first (the signer's chain id fills a transaction
    /// without one and refuses one with another), then the transaction's
    /// action and the digest alloy computes for it.
    fn prepare_transaction(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> alloy_signer::Result<(OwnedAction, B256)> {
        if let Some(chain_id) = self.chain_id
            && !tx.set_chain_id_checked(chain_id)
        {
            return Err(alloy_signer::Error::TransactionChainIdMismatch {
                signer: chain_id,
                tx: tx.chain_id().unwrap_or_default(),
            });
        }
        let action = self.transaction_action(tx).map_err(other)?;
        Ok((action, b256(&tx.signature_hash())))
    }

    /// The action of an alloy transaction.
    fn transaction_action(
        &self,
        tx: &dyn SignableTransaction<Signature>,
    ) -> Result<OwnedAction, DeviceSignerError> {
        use DeviceSignerError::Unsupported;
        let fees = match tx.ty() {
            0 => Fees::Legacy { gas_price: tx.gas_price().ok_or(Unsupported("no gas price"))? },
            2 => Fees::Eip1559 {
                max_fee_per_gas: tx.max_fee_per_gas(),
                max_priority_fee_per_gas: tx.max_priority_fee_per_gas().unwrap_or(0),
            },
            _ => {
                return Err(Unsupported(
                    "only legacy (0) and EIP-1559 (2) transactions are signed",
                ));
            }
        };
        if tx.access_list().is_some_and(|l| !l.is_empty()) {
            return Err(Unsupported("only an empty access list is taken"));
        }
        let request = TxRequest {
            fees,
            chain_id: tx.chain_id().ok_or(Unsupported(
                "no chain id: a transaction valid on every chain (pre-EIP-155) is not signed",
            ))?,
            nonce: tx.nonce(),
            gas_limit: tx.gas_limit(),
            to: Address(tx.to().ok_or(Unsupported("contract creation is not signed"))?.0.0),
            value: U256(tx.value().to_be_bytes()),
            data: tx.input().to_vec(),
        };
        Ok(request.into_action(&self.registries)?)
    }

    fn typed_data_action<T: SolStruct>(payload: &T, domain: &Eip712Domain) -> Action<'static> {
        if let Some(w) = agent_wallet_set(payload, domain) {
            return Action::AgentWalletSet(w);
        }
        Action::Eip712Prehashed(Eip712Prehashed {
            domain_separator: b256(&domain.separator()),
            struct_hash: b256(&payload.eip712_hash_struct()),
        })
    }
}

/// The identity registry's `AgentWalletSet` in its domain, read from the
/// struct's EIP-712 encoding; `None` for any other typed data.
fn agent_wallet_set<T: SolStruct>(payload: &T, domain: &Eip712Domain) -> Option<AgentWalletSet> {
    const TYPE: &str =
        "AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)";
    if T::eip712_encode_type() != TYPE
        || domain.name.as_deref() != Some(tee_core::eip712::IDENTITY_REGISTRY_NAME)
        || domain.version.as_deref() != Some(tee_core::eip712::IDENTITY_REGISTRY_VERSION)
        || domain.salt.is_some()
    {
        return None;
    }
    let data = payload.eip712_encode_data();
    let word = |i: usize| -> Option<[u8; 32]> { data.get(32 * i..32 * (i + 1))?.try_into().ok() };
    let address = |w: [u8; 32]| -> Option<Address> { Some(Address(w.get(12..)?.try_into().ok()?)) };
    let deadline = alloy_primitives::U256::from_be_bytes(word(3)?);
    Some(AgentWalletSet {
        chain_id: u64::try_from(domain.chain_id?).ok()?,
        identity_registry: Address(domain.verifying_contract?.0.0),
        agent_id: U256(word(0)?),
        new_wallet: address(word(1)?)?,
        owner: address(word(2)?)?,
        deadline: u64::try_from(deadline).ok()?,
    })
}

/// Runs the blocking `f` on a thread of its own and awaits its result, on
/// any executor.
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> alloy_signer::Result<T> + Send + 'static,
) -> alloy_signer::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.map_err(alloy_signer::Error::other)?
}

impl SignerSync for DeviceSigner {
    fn sign_hash_sync(&self, _: &alloy_primitives::B256) -> alloy_signer::Result<Signature> {
        Err(alloy_signer::Error::UnsupportedOperation(UnsupportedSignerOperation::SignHash))
    }

    fn sign_message_sync(&self, message: &[u8]) -> alloy_signer::Result<Signature> {
        let expected = b256(&alloy_primitives::eip191_hash_message(message));
        self.sign_action(&Action::PersonalMessage(PersonalMessage { message }), expected)
    }

    fn sign_typed_data_sync<T: SolStruct>(
        &self,
        payload: &T,
        domain: &Eip712Domain,
    ) -> alloy_signer::Result<Signature> {
        let action = Self::typed_data_action(payload, domain);
        self.sign_action(&action, b256(&payload.eip712_signing_hash(domain)))
    }

    fn sign_dynamic_typed_data_sync(
        &self,
        payload: &alloy_dyn_abi::TypedData,
    ) -> alloy_signer::Result<Signature> {
        let json = serde_json::to_string(payload).map_err(alloy_signer::Error::other)?;
        let action = crate::actions::from_json(&json, &self.registries).map_err(other)?.action;
        self.sign_action(&action.view(), b256(&payload.eip712_signing_hash()?))
    }

    fn chain_id_sync(&self) -> Option<ChainId> {
        self.chain_id
    }
}

impl TxSignerSync<Signature> for DeviceSigner {
    fn address(&self) -> alloy_primitives::Address {
        self.address
    }

    fn sign_transaction_sync(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> alloy_signer::Result<Signature> {
        let (action, expected) = self.prepare_transaction(tx)?;
        self.sign_action(&action.view(), expected)
    }
}

#[async_trait::async_trait]
impl Signer for DeviceSigner {
    async fn sign_hash(&self, hash: &alloy_primitives::B256) -> alloy_signer::Result<Signature> {
        self.sign_hash_sync(hash)
    }

    async fn sign_message(&self, message: &[u8]) -> alloy_signer::Result<Signature> {
        let (this, message) = (self.clone(), message.to_vec());
        off_thread(move || this.sign_message_sync(&message)).await
    }

    async fn sign_typed_data<T: SolStruct + Send + Sync>(
        &self,
        payload: &T,
        domain: &Eip712Domain,
    ) -> alloy_signer::Result<Signature>
    where
        Self: Sized,
    {
        let action = Self::typed_data_action(payload, domain);
        let expected = b256(&payload.eip712_signing_hash(domain));
        let this = self.clone();
        off_thread(move || this.sign_action(&action, expected)).await
    }

    async fn sign_dynamic_typed_data(
        &self,
        payload: &alloy_dyn_abi::TypedData,
    ) -> alloy_signer::Result<Signature> {
        let (this, payload) = (self.clone(), payload.clone());
        off_thread(move || this.sign_dynamic_typed_data_sync(&payload)).await
    }

    fn address(&self) -> alloy_primitives::Address {
        self.address
    }

    fn chain_id(&self) -> Option<ChainId> {
        self.chain_id
    }

    fn set_chain_id(&mut self, chain_id: Option<ChainId>) {
        self.chain_id = chain_id;
    }
}

#[async_trait::async_trait]
impl TxSigner<Signature> for DeviceSigner {
    fn address(&self) -> alloy_primitives::Address {
        self.address
    }

    async fn sign_transaction(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> alloy_signer::Result<Signature> {
        // The chain id is settled here, on the caller's transaction; the
        // thread signs the action made of its fields.
        let (action, expected) = self.prepare_transaction(tx)?;
        let this = self.clone();
        off_thread(move || this.sign_action(&action.view(), expected)).await
    }
}

alloy_network::impl_into_wallet!(DeviceSigner);
