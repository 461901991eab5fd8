//! The agent's side of the flow: which agent ([`AgentRef`]), the challenge
//! its attestation binds, the [`AttestationBundle`] a validator checks, and
//! the ERC-8004 registration file that points to it.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tee_core::primitives::keccak256;
use tee_core::{Address, B256, U256};

use tee_verify::{Attestation, Bound};

/// An agent on one identity registry of one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentRef {
    /// The chain's id.
    pub chain_id: u64,
    /// The identity registry's address.
    pub identity_registry: Address,
    /// The agent's id (its ERC-721 token id).
    pub agent_id: U256,
}

/// Domain separation of the agent challenge.
const CHALLENGE_DOMAIN: &[u8] = b"tee-signer/erc8004-agent-attestation/v1";

impl AgentRef {
    /// `eip155:{chainId}:{identityRegistry}`, as registration files name a
    /// registry (CAIP-10).
    #[must_use]
    pub fn agent_registry(&self) -> String {
        format!("eip155:{}:{}", self.chain_id, self.identity_registry)
    }

    /// The challenge an attestation for this agent binds, made at
    /// `issued_at` (unix seconds): `keccak256(domain ‖ chainId (32 bytes) ‖
    /// identityRegistry (20) ‖ agentId (32) ‖ issuedAt (8))`. A bundle made
    /// for another agent, registry or chain binds another value.
    #[must_use]
    pub fn challenge(&self, issued_at: u64) -> B256 {
        let mut m = Vec::with_capacity(CHALLENGE_DOMAIN.len() + 92);
        m.extend_from_slice(CHALLENGE_DOMAIN);
        m.extend_from_slice(&U256::from_u64(self.chain_id).0);
        m.extend_from_slice(&self.identity_registry.0);
        m.extend_from_slice(&self.agent_id.0);
        m.extend_from_slice(&issued_at.to_be_bytes());
        keccak256(&m)
    }
}

/// What `type` a bundle says it is.
pub const BUNDLE_TYPE: &str = "tee-signer/erc8004-attestation-bundle/v1";

/// What an agent publishes for a validator: its TEE signer's attestation,
/// bound to [`AgentRef::challenge`]. Its bytes as published are what
/// `requestHash` commits to ([`AttestationBundle::request_hash`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationBundle {
    /// [`BUNDLE_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// `eip155:{chainId}:{identityRegistry}`.
    pub agent_registry: String,
    /// The agent's id, decimal.
    pub agent_id: U256,
    /// When the bundle was made (unix seconds); part of the challenge.
    pub issued_at: u64,
    /// The challenge the attestation binds.
    pub challenge: B256,
    /// The TEE signer's attestation (quote, event log, key chain).
    pub attestation: Attestation,
}

/// Why a bundle could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The attestation binds something other than the agent's challenge.
    #[error("the attestation binds {found:?}, not the agent's challenge {expected}")]
    WrongBinding {
        /// What it binds.
        found: Bound,
        /// The agent's challenge.
        expected: B256,
    },
    /// Not JSON of a bundle.
    #[error("not an attestation bundle: {0}")]
    Json(#[from] serde_json::Error),
    /// Another `type`.
    #[error("bundle type {0:?}, not {BUNDLE_TYPE:?}")]
    Type(String),
    /// `agentRegistry` is not `eip155:{chainId}:{address}`.
    #[error("agentRegistry {0:?} is not eip155:CHAIN_ID:ADDRESS")]
    Registry(String),
    /// A `data:` URI that does not decode.
    #[error("data URI: {0}")]
    DataUri(String),
}

impl BundleError {
    /// The reason in words fit for a public report: what is wrong, never
    /// the fetched bytes nor a parser's text about them (an agent's owner
    /// chooses the URI, and could point the validator at an internal page).
    #[must_use]
    pub fn public_reason(&self) -> &'static str {
        match self {
            BundleError::WrongBinding { .. } => {
                "the attestation binds something other than the agent's challenge"
            }
            BundleError::Json(_) => "not the JSON of an attestation bundle",
            BundleError::Type(_) => "not a tee-attestation bundle (another type)",
            BundleError::Registry(_) => "agentRegistry is not eip155:CHAIN_ID:ADDRESS",
            BundleError::DataUri(_) => "a data: URI that does not decode",
        }
    }
}

impl AttestationBundle {
    /// The bundle for `agent` around `attestation`, which must bind
    /// `agent.challenge(issued_at)` (the provider's
    /// `get_attestation_report(slot, challenge)` makes one).
    pub fn new(
        agent: &AgentRef,
        issued_at: u64,
        attestation: Attestation,
    ) -> Result<AttestationBundle, BundleError> {
        let challenge = agent.challenge(issued_at);
        if attestation.bound != Bound::Challenge(challenge) {
            return Err(BundleError::WrongBinding {
                found: attestation.bound,
                expected: challenge,
            });
        }
        Ok(AttestationBundle {
            kind: BUNDLE_TYPE.to_owned(),
            agent_registry: agent.agent_registry(),
            agent_id: agent.agent_id,
            issued_at,
            challenge,
            attestation,
        })
    }

    /// The bytes to publish (compact JSON): what `requestHash` commits to.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads published bytes (as published: the validator hashes those,
    /// never a re-encoding).
    pub fn from_bytes(bytes: &[u8]) -> Result<AttestationBundle, BundleError> {
        let b: AttestationBundle = serde_json::from_slice(bytes)?;
        if b.kind != BUNDLE_TYPE {
            return Err(BundleError::Type(b.kind));
        }
        Ok(b)
    }

    /// The agent the bundle names.
    pub fn agent(&self) -> Result<AgentRef, BundleError> {
        let bad = || BundleError::Registry(self.agent_registry.clone());
        let rest = self.agent_registry.strip_prefix("eip155:").ok_or_else(bad)?;
        let (chain, address) = rest.split_once(':').ok_or_else(bad)?;
        Ok(AgentRef {
            chain_id: chain.parse().map_err(|_| bad())?,
            identity_registry: address.parse().map_err(|_| bad())?,
            agent_id: self.agent_id,
        })
    }

    /// `keccak256` of the published bytes: the `requestHash` of the
    /// validation request and the registration file's `hash`.
    #[must_use]
    pub fn request_hash(bytes: &[u8]) -> B256 {
        keccak256(bytes)
    }
}

/// `data:application/json;base64,…`: a document stored on-chain whole.
#[must_use]
pub fn data_uri(json: &[u8]) -> String {
    format!(
        "data:application/json;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(json)
    )
}

/// The content of a `data:` URI (base64 or percent-encoded).
pub fn read_data_uri(uri: &str) -> Result<Vec<u8>, BundleError> {
    let bad = |why: &str| BundleError::DataUri(why.to_owned());
    let rest = uri.strip_prefix("data:").ok_or_else(|| bad("not a data: URI"))?;
    let (meta, data) = rest.split_once(',').ok_or_else(|| bad("no comma"))?;
    if meta.ends_with(";base64") {
        base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| bad(&e.to_string()))
    } else {
        Ok(percent_encoding::percent_decode_str(data).collect())
    }
}

/// A service the agent offers (`services` of the registration file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// `web`, `A2A`, `MCP`, `OASF`, `ENS`, `DID`, `email`, or another name.
    pub name: String,
    /// Its endpoint.
    pub endpoint: String,
    /// Its version, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What the agent says about itself in its registration file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// An image URI, if any.
    pub image: Option<String>,
    /// Its services.
    pub services: Vec<Service>,
}

/// A JSON number when it is one exactly (below 2^53), a decimal string
/// otherwise.
fn id_json(id: &U256) -> serde_json::Value {
    let text = id.to_string();
    match text.parse::<u64>() {
        Ok(n) if n < 1 << 53 => n.into(),
        _ => text.into(),
    }
}

impl Registration {
    /// The ERC-8004 registration file (`registration-v1`) of `agent`,
    /// trusting `tee-attestation`, with a `tee` section naming the signer
    /// and the attestation bundle (its URI and `keccak256`).
    #[must_use]
    pub fn file(
        &self,
        agent: &AgentRef,
        signer: &Address,
        bundle_uri: &str,
        bundle_hash: &B256,
    ) -> serde_json::Value {
        let mut file = serde_json::json!({
            "type": "https://eips.ethereum.org/EIPS/eip-8004#registration-v1",
            "name": self.name,
            "description": self.description,
            "services": self.services,
            "active": true,
            "registrations": [{
                "agentId": id_json(&agent.agent_id),
                "agentRegistry": agent.agent_registry(),
            }],
            "supportedTrust": [super::TAG],
            "tee": {
                "provider": crate::provider::PROVIDER_NAME,
                "signer": signer.to_string(),
                "attestation": { "uri": bundle_uri, "hash": bundle_hash.to_string() },
                "validationTag": super::TAG,
            },
        });
        if let (Some(image), Some(o)) = (&self.image, file.as_object_mut()) {
            o.insert("image".into(), image.clone().into());
        }
        file
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_commits_to_every_part_of_the_agent() {
        let a = AgentRef {
            chain_id: 8453,
            identity_registry: Address([0x80; 20]),
            agent_id: U256::from_u64(7),
        };
        let c = a.challenge(1000);
        assert_ne!(c, AgentRef { chain_id: 1, ..a }.challenge(1000));
        assert_ne!(c, AgentRef { identity_registry: Address([0x81; 20]), ..a }.challenge(1000));
        assert_ne!(c, AgentRef { agent_id: U256::from_u64(8), ..a }.challenge(1000));
        assert_ne!(c, a.challenge(1001));
        assert_eq!(a.agent_registry(), format!("eip155:8453:{}", Address([0x80; 20])));
    }

    #[test]
    fn data_uris_round_trip_and_bad_ones_are_errors() {
        let doc = br#"{"a":"b c"}"#;
        assert_eq!(read_data_uri(&data_uri(doc)).unwrap(), doc);
        assert_eq!(read_data_uri("data:application/json,%7B%7D").unwrap(), b"{}");
        for bad in ["ipfs://x", "data:no-comma", "data:;base64,***"] {
            assert!(matches!(read_data_uri(bad), Err(BundleError::DataUri(_))), "{bad}");
        }
    }
}
