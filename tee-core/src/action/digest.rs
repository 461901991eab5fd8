//! The only place an action is hashed: each action's 32-byte digest (the
//! EIP-712 typed-data hash, the EIP-1559 signing hash or the EIP-191 message
//! hash), and signing an action.

use sha3::{Digest, Keccak256};

use super::tx::{TxView, signing_hash};
use super::types::{Action, AgentWalletSet, AuthorizationKind, TaskReceipt, TokenAuthorization};
use crate::abi::word;
use crate::eip712::{
    AGENT_WALLET_SET_TYPEHASH, RECEIVE_WITH_AUTHORIZATION_TYPEHASH, TASK_RECEIPT_TYPEHASH,
    TRANSFER_WITH_AUTHORIZATION_TYPEHASH, domain_separator, identity_registry_domain,
    personal_message_digest, task_receipt_domain, typed_data_digest,
};
use crate::error::Result;
use crate::primitives::B256;
use crate::signer::{Signed, SigningKey};

impl Action<'_> {
    /// The 32-byte digest the signer signs: the EIP-712 typed-data hash, the
    /// transaction signing hash (EIP-1559, or legacy with EIP-155), or the
    /// EIP-191 message hash.
    #[must_use]
    pub fn digest(&self) -> B256 {
        match self {
            Action::AgentWalletSet(a) => a.digest(),
            Action::Transaction(t) => signing_hash(&TxView::new(t)),
            Action::PersonalMessage(m) => personal_message_digest(m.message),
            Action::Eip712Prehashed(p) => typed_data_digest(&p.domain_separator, &p.struct_hash),
            Action::TaskReceipt(r) => r.digest(),
            Action::TokenAuthorization(a) => a.digest(),
        }
    }
}

impl AgentWalletSet {
    /// `hashStruct(AgentWalletSet)`, as `IdentityRegistry.setAgentWallet`
    /// computes it.
    #[must_use]
    pub fn struct_hash(&self) -> B256 {
        let mut h = Keccak256::new();
        h.update(AGENT_WALLET_SET_TYPEHASH.0);
        h.update(self.agent_id.0);
        h.update(word::address(&self.new_wallet));
        h.update(word::address(&self.owner));
        h.update(word::uint(self.deadline));
        B256(h.finalize().into())
    }

    /// The identity registry's EIP-712 domain separator for this chain.
    #[must_use]
    pub fn domain_separator(&self) -> B256 {
        identity_registry_domain(self.chain_id, &self.identity_registry)
    }

    /// The EIP-712 digest the new wallet signs.
    #[must_use]
    pub fn digest(&self) -> B256 {
        typed_data_digest(&self.domain_separator(), &self.struct_hash())
    }
}

impl TaskReceipt {
    /// `hashStruct(TaskReceipt)`.
    #[must_use]
    pub fn struct_hash(&self) -> B256 {
        let mut h = Keccak256::new();
        h.update(TASK_RECEIPT_TYPEHASH.0);
        h.update(self.agent_id.0);
        h.update(self.task_hash.0);
        h.update(self.result_hash.0);
        h.update(word::uint(self.completed_at));
        B256(h.finalize().into())
    }

    /// The receipt's EIP-712 domain separator (`ERC8004TaskReceipt`, this
    /// chain, the identity registry).
    #[must_use]
    pub fn domain_separator(&self) -> B256 {
        task_receipt_domain(self.chain_id, &self.identity_registry)
    }

    /// The EIP-712 digest the agent signs.
    #[must_use]
    pub fn digest(&self) -> B256 {
        typed_data_digest(&self.domain_separator(), &self.struct_hash())
    }
}

impl TokenAuthorization<'_> {
    /// `hashStruct(TransferWithAuthorization)` or `hashStruct(ReceiveWithAuthorization)`.
    #[must_use]
    pub fn struct_hash(&self) -> B256 {
        let mut h = Keccak256::new();
        h.update(match self.kind {
            AuthorizationKind::Transfer => TRANSFER_WITH_AUTHORIZATION_TYPEHASH.0,
            AuthorizationKind::Receive => RECEIVE_WITH_AUTHORIZATION_TYPEHASH.0,
        });
        h.update(word::address(&self.from));
        h.update(word::address(&self.to));
        h.update(self.value.0);
        h.update(word::uint(self.valid_after));
        h.update(word::uint(self.valid_before));
        h.update(self.nonce.0);
        B256(h.finalize().into())
    }

    /// The token's EIP-712 domain separator (its name and version, this
    /// chain, the token as the verifying contract).
    #[must_use]
    pub fn domain_separator(&self) -> B256 {
        domain_separator(self.name, self.version, self.chain_id, &self.token)
    }

    /// The EIP-712 digest the payer signs.
    #[must_use]
    pub fn digest(&self) -> B256 {
        typed_data_digest(&self.domain_separator(), &self.struct_hash())
    }
}

impl SigningKey {
    /// Signs `action`'s digest.
    pub fn sign(&self, action: &Action<'_>) -> Result<Signed> {
        let digest = action.digest();
        let signature = self.sign_digest(&digest)?;
        Ok(Signed { digest, signature })
    }
}
