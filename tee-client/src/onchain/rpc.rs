//! The registries over any Ethereum JSON-RPC endpoint the user names
//! (`eth_call` for reads; fees, nonce, `eth_sendRawTransaction` and the
//! receipt for a transaction the signer signed). Blocking, with timeouts.

use std::time::{Duration, Instant};

use alloy_sol_types::{SolCall, SolEvent, sol};
use serde_json::{Value, json};
use tee_core::{Address, B256, U256};

use super::validator::AgentOnChain;

sol! {
    /// The reads of the ERC-8004 v2.0.0 registries used here.
    interface IRegistryReads {
        function getIdentityRegistry() external view returns (address);
        function getValidationStatus(bytes32 requestHash) external view returns (address validatorAddress, uint256 agentId, uint8 response, bytes32 responseHash, string tag, uint256 lastUpdate);
        function getSummary(uint256 agentId, address[] validatorAddresses, string tag) external view returns (uint64 count, uint8 averageResponse);
        function getAgentValidations(uint256 agentId) external view returns (bytes32[] requestHashes);
        function getAgentWallet(uint256 agentId) external view returns (address);
        function getMetadata(uint256 agentId, string metadataKey) external view returns (bytes);
    }

    /// The Validation Registry's request event.
    event ValidationRequest(address indexed validatorAddress, uint256 indexed agentId, string requestURI, bytes32 indexed requestHash);
}

/// Why a JSON-RPC call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The endpoint did not answer, or not with JSON.
    #[error("{url}: {message}")]
    Transport {
        /// The endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The node answered with an error (a reverted call among them).
    #[error("{method}: {message}")]
    Node {
        /// The method called.
        method: &'static str,
        /// The node's message.
        message: String,
    },
    /// The answer is not what the method returns.
    #[error("{method}: unexpected answer: {message}")]
    Answer {
        /// The method called.
        method: &'static str,
        /// What did not decode.
        message: String,
    },
    /// The transaction was not mined in time, or reverted.
    #[error("transaction {hash}: {message}")]
    Transaction {
        /// Its hash.
        hash: B256,
        /// What happened.
        message: String,
    },
}

/// A JSON-RPC endpoint.
#[derive(Debug, Clone)]
pub struct Rpc {
    url: String,
    agent: ureq::Agent,
}

fn a(x: &Address) -> alloy_primitives::Address {
    alloy_primitives::Address::from(x.0)
}

fn u(x: &U256) -> alloy_primitives::U256 {
    alloy_primitives::U256::from_be_bytes(x.0)
}

fn quantity(method: &'static str, v: &Value) -> Result<u128, RpcError> {
    let s = v.as_str().ok_or_else(|| RpcError::Answer { method, message: v.to_string() })?;
    u128::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|e| RpcError::Answer { method, message: format!("{s}: {e}") })
}

/// How a transaction's fees are set: EIP-1559 from the latest block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// `maxFeePerGas`: twice the latest base fee plus the tip.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`: the node's suggestion (1 gwei if it has none).
    pub max_priority_fee_per_gas: u128,
}

impl Rpc {
    /// The endpoint at `url` (`http://` or `https://`), 30 s per call.
    #[must_use]
    pub fn new(url: &str) -> Rpc {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Rpc { url: url.to_owned(), agent }
    }

    /// One call.
    pub fn call(&self, method: &'static str, params: Value) -> Result<Value, RpcError> {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let answer = self.post(&body)?;
        if let Some(err) = answer.get("error") {
            let message = err.get("message").and_then(Value::as_str).map_or_else(
                || err.to_string(),
                |m| match err.get("data") {
                    Some(d) => format!("{m} ({d})"),
                    None => m.to_owned(),
                },
            );
            return Err(RpcError::Node { method, message });
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| RpcError::Answer { method, message: answer.to_string() })
    }

    /// Sends `request` (a JSON-RPC request object, or a batch) as it is and
    /// returns the node's answer as it is, its errors included: what a
    /// proxy in front of the node forwards.
    pub fn forward(&self, request: &Value) -> Result<Value, RpcError> {
        self.post(request)
    }

    fn post(&self, body: &Value) -> Result<Value, RpcError> {
        let transport = |message: String| RpcError::Transport { url: self.url.clone(), message };
        let mut resp = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|e| transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| transport(format!("HTTP {status}: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| transport(format!("HTTP {status}: not JSON-RPC: {e}")))
    }

    /// `eth_chainId`.
    pub fn chain_id(&self) -> Result<u64, RpcError> {
        let id = quantity("eth_chainId", &self.call("eth_chainId", json!([]))?)?;
        u64::try_from(id)
            .map_err(|_| RpcError::Answer { method: "eth_chainId", message: id.to_string() })
    }

    /// `eth_call` of `call` on `to` at the latest block, decoded.
    pub fn view<C: SolCall>(&self, to: &Address, call: &C) -> Result<C::Return, RpcError> {
        let data = format!("0x{}", hex::encode(call.abi_encode()));
        let out =
            self.call("eth_call", json!([{ "to": to.to_string(), "data": data }, "latest"]))?;
        let bytes = out
            .as_str()
            .and_then(|s| hex::decode(s.trim_start_matches("0x")).ok())
            .ok_or_else(|| RpcError::Answer { method: "eth_call", message: out.to_string() })?;
        C::abi_decode_returns(&bytes).map_err(|e| RpcError::Answer {
            method: "eth_call",
            message: format!("{}: {e}", C::SIGNATURE),
        })
    }

    /// The request `request_hash` of the Validation Registry at
    /// `validation`, and what the identity registry says of its agent:
    /// the request's validator and the [`AgentOnChain`].
    pub fn validation_request(
        &self,
        validation: &Address,
        request_hash: &B256,
    ) -> Result<(Address, AgentOnChain), RpcError> {
        use IRegistryReads::*;
        let status = self.view(
            validation,
            &getValidationStatusCall { requestHash: alloy_primitives::B256::from(request_hash.0) },
        )?;
        let identity = Address(self.view(validation, &getIdentityRegistryCall {})?.0.0);
        let agent_id = U256(status.agentId.to_be_bytes());
        let (agent_wallet, tee_signer) = self.tee_signers(&identity, &agent_id)?;
        Ok((
            Address(status.validatorAddress.0.0),
            AgentOnChain {
                chain_id: self.chain_id()?,
                identity_registry: identity,
                request_hash: *request_hash,
                agent_id,
                agent_wallet,
                tee_signer,
            },
        ))
    }

    /// What the identity registry at `identity` names as `agent_id`'s
    /// signers: its wallet (`getAgentWallet`, if set) and the signer its
    /// metadata names ([`super::METADATA_KEY`], if any).
    pub fn tee_signers(
        &self,
        identity: &Address,
        agent_id: &U256,
    ) -> Result<(Option<Address>, Option<Address>), RpcError> {
        use IRegistryReads::*;
        let wallet = self.view(identity, &getAgentWalletCall { agentId: u(agent_id) })?;
        let meta = self.view(
            identity,
            &getMetadataCall { agentId: u(agent_id), metadataKey: super::METADATA_KEY.into() },
        )?;
        let tee_signer = <[u8; 20]>::try_from(meta.as_ref()).ok().map(Address);
        Ok((Some(Address(wallet.0.0)).filter(|w| w.0 != [0; 20]), tee_signer))
    }

    /// `getSummary(agentId, validators, tag)`: how many responses and
    /// their average.
    pub fn summary(
        &self,
        validation: &Address,
        agent_id: &U256,
        validators: &[Address],
        tag: &str,
    ) -> Result<(u64, u8), RpcError> {
        let s = self.view(
            validation,
            &IRegistryReads::getSummaryCall {
                agentId: u(agent_id),
                validatorAddresses: validators.iter().map(a).collect(),
                tag: tag.into(),
            },
        )?;
        Ok((s.count, s.averageResponse))
    }

    /// Every request for `agent_id`, with its status: (request hash,
    /// validator, response, response hash, tag, last update).
    pub fn validations(
        &self,
        validation: &Address,
        agent_id: &U256,
    ) -> Result<Vec<Value>, RpcError> {
        use IRegistryReads::*;
        let hashes = self.view(validation, &getAgentValidationsCall { agentId: u(agent_id) })?;
        hashes
            .iter()
            .map(|h| {
                let s = self.view(validation, &getValidationStatusCall { requestHash: *h })?;
                Ok(json!({
                    "requestHash": B256(h.0).to_string(),
                    "validator": Address(s.validatorAddress.0.0).to_string(),
                    "response": s.response,
                    "responseHash": B256(s.responseHash.0).to_string(),
                    "tag": s.tag,
                    "lastUpdate": s.lastUpdate.to_string(),
                }))
            })
            .collect()
    }

    /// The `requestURI` of the request `request_hash`, from its
    /// `ValidationRequest` event (searched from block `from_block`: public
    /// endpoints limit the range of `eth_getLogs`).
    pub fn request_uri(
        &self,
        validation: &Address,
        request_hash: &B256,
        from_block: u64,
    ) -> Result<String, RpcError> {
        let method = "eth_getLogs";
        let filter = json!({
            "address": [validation.to_string()],
            "fromBlock": format!("{from_block:#x}"),
            "toBlock": "latest",
            "topics": [
                B256(ValidationRequest::SIGNATURE_HASH.0).to_string(),
                null, null, request_hash.to_string(),
            ],
        });
        let logs = self.call(method, json!([filter]))?;
        let data = logs
            .as_array()
            .and_then(|l| l.last())
            .and_then(|l| l.get("data"))
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::Answer {
                method,
                message: format!(
                    "no ValidationRequest event for {request_hash} since block {from_block}"
                ),
            })?;
        let bytes = hex::decode(data.trim_start_matches("0x"))
            .map_err(|e| RpcError::Answer { method, message: e.to_string() })?;
        let (uri,) = ValidationRequest::abi_decode_data(&bytes)
            .map_err(|e| RpcError::Answer { method, message: e.to_string() })?;
        Ok(uri)
    }

    /// The next nonce of `from` (pending).
    pub fn nonce(&self, from: &Address) -> Result<u64, RpcError> {
        let n = self.call("eth_getTransactionCount", json!([from.to_string(), "pending"]))?;
        let n = quantity("eth_getTransactionCount", &n)?;
        u64::try_from(n).map_err(|_| RpcError::Answer {
            method: "eth_getTransactionCount",
            message: n.to_string(),
        })
    }

    /// EIP-1559 fees from the latest block.
    pub fn fees(&self) -> Result<Fees, RpcError> {
        let block = self.call("eth_getBlockByNumber", json!(["latest", false]))?;
        let base =
            quantity("eth_getBlockByNumber", block.get("baseFeePerGas").unwrap_or(&Value::Null))?;
        let tip = self
            .call("eth_maxPriorityFeePerGas", json!([]))
            .ok()
            .and_then(|t| quantity("eth_maxPriorityFeePerGas", &t).ok())
            .unwrap_or(1_000_000_000);
        Ok(Fees { max_fee_per_gas: base * 2 + tip, max_priority_fee_per_gas: tip })
    }

    /// `eth_estimateGas` of a call from `from` to `to`.
    pub fn estimate_gas(&self, from: &Address, to: &Address, data: &[u8]) -> Result<u64, RpcError> {
        let call = json!({
            "from": from.to_string(), "to": to.to_string(),
            "data": format!("0x{}", hex::encode(data)),
        });
        let g = quantity("eth_estimateGas", &self.call("eth_estimateGas", json!([call]))?)?;
        u64::try_from(g)
            .map_err(|_| RpcError::Answer { method: "eth_estimateGas", message: g.to_string() })
    }

    /// Sends a signed transaction and waits up to `timeout` for its
    /// receipt; a reverted one is an error.
    pub fn send_raw(&self, raw: &[u8], timeout: Duration) -> Result<Value, RpcError> {
        let hash =
            self.call("eth_sendRawTransaction", json!([format!("0x{}", hex::encode(raw))]))?;
        let hash: B256 = serde_json::from_value(hash.clone()).map_err(|_| RpcError::Answer {
            method: "eth_sendRawTransaction",
            message: hash.to_string(),
        })?;
        let start = Instant::now();
        loop {
            let receipt = self.call("eth_getTransactionReceipt", json!([hash.to_string()]))?;
            if !receipt.is_null() {
                let status = receipt.get("status").and_then(Value::as_str).unwrap_or("0x1");
                if status == "0x0" {
                    return Err(RpcError::Transaction { hash, message: "reverted".into() });
                }
                return Ok(receipt);
            }
            if start.elapsed() > timeout {
                return Err(RpcError::Transaction {
                    hash,
                    message: format!("not mined within {} s", timeout.as_secs()),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_that_does_not_answer_is_a_transport_error() {
        // Nothing listens on port 1.
        let rpc = Rpc::new("http://127.0.0.1:1");
        assert!(matches!(rpc.chain_id(), Err(RpcError::Transport { .. })));
    }
}
