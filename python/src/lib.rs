//! `tee_signer._native`: the Python binding of tee-client's client, JSON
//! actions and verifier. One implementation of the wire format and the
//! checks: Python marshals JSON text in and out, and never encodes a frame
//! or checks a quote itself.
//!
//! Errors are raised as the exception classes of `tee_signer.errors`
//! (`Refused` with the device's typed reason, `InvalidRequest`,
//! `Unavailable`, `AttestationError`), so Python code catches what the
//! device said, not a string.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

mod functions;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tee_client::actions::OwnedAction;
use tee_client::approval::{ApprovalRequest, Approvals};
use tee_client::policyfile::PolicyFile;
use tee_client::provider::{PhalaDstackProvider, ProviderError, SignedJson};
use tee_core::action::{Eip712Prehashed, PersonalMessage};
use tee_core::{Action, B256, SigningKey};
use tee_transport::Endpoint;
use tee_verify::{Policy, TeeSignature, Verifier};

/// The exception of `tee_signer.errors` named `class`, with `message` and
/// the device's typed `reason` (`None` when the device said nothing).
fn raise(py: Python<'_>, class: &str, message: String, reason: Option<String>) -> PyErr {
    let made = py
        .import("tee_signer.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((message.clone(), reason)));
    match made {
        Ok(e) => PyErr::from_value(e),
        Err(_) => PyRuntimeError::new_err(message),
    }
}

fn provider_err(py: Python<'_>, e: ProviderError) -> PyErr {
    let message = e.to_string();
    match e {
        // The reason is the policy rule's name (`KindNotAllowed`), or the
        // device's error; a policy refusal's message says what the action
        // was read as and the limit it met.
        ProviderError::Refused(d) | ProviderError::Denied { reason: d, .. } => {
            let reason = match d.violation() {
                Some(v) => format!("{v:?}"),
                None => format!("{d:?}"),
            };
            raise(py, "Refused", message, Some(reason))
        }
        // What the approvers sign rides on the exception (`request`).
        ProviderError::ApprovalRequired(r) => {
            let request = serde_json::json!({
                "approvalRequest": r,
                "typedData": r.typed_data(),
            });
            let made = py
                .import("tee_signer.errors")
                .and_then(|m| m.getattr("ApprovalRequired"))
                .and_then(|c| c.call1((message.clone(), "ApprovalRequired", request.to_string())));
            match made {
                Ok(e) => PyErr::from_value(e),
                Err(_) => PyRuntimeError::new_err(message),
            }
        }
        ProviderError::Client { .. } => raise(py, "Unavailable", message, None),
        ProviderError::Evidence { .. } => raise(py, "AttestationError", message, None),
        _ => raise(py, "InvalidRequest", message, None),
    }
}

fn invalid(py: Python<'_>, e: impl std::fmt::Display) -> PyErr {
    raise(py, "InvalidRequest", e.to_string(), None)
}

fn json_out(py: Python<'_>, v: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| invalid(py, e))
}

fn b256(py: Python<'_>, name: &str, b: &[u8]) -> PyResult<B256> {
    Ok(B256(b.try_into().map_err(|_| invalid(py, format!("{name} is not 32 bytes")))?))
}

/// A signer at an endpoint (`unix:/run/tee-signer.sock`, `tcp:host:port`,
/// ...): what `TeeAccount` and `PhalaDstackTEE` call.
#[pyclass(frozen, module = "tee_signer._native")]
struct Signer {
    provider: Arc<PhalaDstackProvider>,
    endpoint: String,
}

#[pymethods]
impl Signer {
    /// `endpoint`; `verifier_policy`: the validator's pinned policy as JSON
    /// (what `tee-signer policy` writes), for `verify`; `admin_key`: the
    /// signer's admin key (32 bytes), only for `generate_key`; the DCAP
    /// collateral: stored (`collateral`, dcap-qvl JSON) or from a PCCS
    /// (`pccs`, its URL), kept per FMSPC in `collateral_cache` (a
    /// directory) until its nextUpdate.
    #[new]
    #[pyo3(signature = (endpoint, verifier_policy=None, admin_key=None, collateral=None, pccs=None, collateral_cache=None))]
    fn new(
        py: Python<'_>,
        endpoint: &str,
        verifier_policy: Option<&str>,
        admin_key: Option<&[u8]>,
        collateral: Option<&str>,
        pccs: Option<&str>,
        collateral_cache: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let at = Endpoint::from_str(endpoint).map_err(|e| invalid(py, e))?;
        let policy: Policy = match verifier_policy {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| invalid(py, format!("verifier policy: {e}")))?,
            None => Policy::default(),
        };
        let collateral = collateral
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| invalid(py, format!("collateral: {e}")))?;
        let pccs = match (pccs, collateral_cache) {
            (Some(url), cache) => {
                let p = tee_verify::pccs::Pccs::new(url, None).map_err(|e| invalid(py, e))?;
                Some(match cache {
                    Some(dir) => p.with_cache(&dir).map_err(|e| invalid(py, e))?,
                    None => p,
                })
            }
            (None, Some(_)) => return Err(invalid(py, "collateral_cache needs pccs")),
            (None, None) => None,
        };
        let mut provider = PhalaDstackProvider::new(
            at,
            Verifier { policy, collateral, pccs, simulated_root: Some(tee_sim::root()) },
        );
        if let Some(key) = admin_key {
            let key: [u8; 32] =
                key.try_into().map_err(|_| invalid(py, "the admin key is 32 bytes"))?;
            provider = provider.with_admin(
                SigningKey::from_bytes(&key).map_err(|e| invalid(py, format!("{e:?}")))?,
            );
        }
        Ok(Signer { provider: Arc::new(provider), endpoint: endpoint.to_owned() })
    }

    /// The endpoint, as given.
    #[getter]
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `DeviceInfo`, as JSON.
    fn info(&self, py: Python<'_>) -> PyResult<String> {
        let p = Arc::clone(&self.provider);
        let info = py.detach(move || p.info()).map_err(|e| provider_err(py, e))?;
        let v = serde_json::json!({
            "protocolVersion": info.protocol_version,
            "firmware": info.firmware.as_str(),
            "backend": format!("{:?}", info.backend),
            "capabilities": info.capabilities,
            "slots": info.slots,
            "deviceId": info.device_id.to_string(),
            "admin": info.admin.to_string(),
            "bounds": {
                "uri": info.bounds.uri, "metadataValue": info.bounds.metadata_value,
                "calldata": info.bounds.calldata, "message": info.bounds.message,
                "action": info.bounds.action,
            },
        });
        json_out(py, &v)
    }

    /// Whether the signer answers and runs on (simulated) dstack with
    /// attestation.
    fn is_available(&self, py: Python<'_>) -> bool {
        let p = Arc::clone(&self.provider);
        py.detach(move || p.is_available())
    }

    /// The address of `slot`, EIP-55.
    fn address(&self, py: Python<'_>, slot: u8) -> PyResult<String> {
        let p = Arc::clone(&self.provider);
        let (address, _) =
            py.detach(move || p.slot_context(slot)).map_err(|e| provider_err(py, e))?;
        Ok(address.to_string())
    }

    /// Signs a JSON request as wallets send it (a transaction, typed data,
    /// `personal_sign`), with its attestation: the JSON `tee-signer sign
    /// --json` prints.
    #[pyo3(signature = (slot, request, sequence=None))]
    fn sign_json(
        &self,
        py: Python<'_>,
        slot: u8,
        request: &str,
        sequence: Option<u64>,
    ) -> PyResult<String> {
        let (p, request) = (Arc::clone(&self.provider), request.to_owned());
        let signed = py
            .detach(move || p.sign_json(slot, &request, sequence))
            .map_err(|e| provider_err(py, e))?;
        json_out(py, &signed.to_json())
    }

    /// [`Signer::sign_json`] with the approvals the slot's policy asked for:
    /// `approval_request` the request (`ApprovalRequired.request`, JSON),
    /// `signatures` the approvers' 65-byte signatures over its typed data.
    fn sign_json_approved(
        &self,
        py: Python<'_>,
        slot: u8,
        request: &str,
        approval_request: &str,
        signatures: Vec<Vec<u8>>,
    ) -> PyResult<String> {
        let v: serde_json::Value =
            serde_json::from_str(approval_request).map_err(|e| invalid(py, e))?;
        let inner = v.get("approvalRequest").cloned().unwrap_or(v);
        let asked: ApprovalRequest = serde_json::from_value(inner).map_err(|e| invalid(py, e))?;
        let signatures = signatures
            .into_iter()
            .map(|s| <[u8; 65]>::try_from(s).map_err(|_| invalid(py, "an approval is 65 bytes")))
            .collect::<PyResult<Vec<_>>>()?;
        let approvals = Approvals::of(&asked, signatures);
        let (p, request) = (Arc::clone(&self.provider), request.to_owned());
        let signed = py
            .detach(move || p.sign_json_approved(slot, &request, &approvals))
            .map_err(|e| provider_err(py, e))?;
        json_out(py, &signed.to_json())
    }

    /// Signs an EIP-191 `personal_sign` message (version `0x45`).
    fn sign_personal(&self, py: Python<'_>, slot: u8, message: &[u8]) -> PyResult<String> {
        // A message over the signer's bound is refused naming the bound.
        self.sign_action(py, slot, Action::PersonalMessage(PersonalMessage { message }).into())
    }

    /// Signs pre-hashed EIP-712 data (EIP-191 version `0x01`): the domain
    /// separator and the struct hash (the blind kind a policy must name).
    fn sign_prehashed(
        &self,
        py: Python<'_>,
        slot: u8,
        domain_separator: &[u8],
        struct_hash: &[u8],
    ) -> PyResult<String> {
        let action = Action::Eip712Prehashed(Eip712Prehashed {
            domain_separator: b256(py, "domain_separator", domain_separator)?,
            struct_hash: b256(py, "struct_hash", struct_hash)?,
        });
        self.sign_action(py, slot, action.into())
    }

    /// The key in `slot` with an attestation bound to a fresh challenge.
    fn key(&self, py: Python<'_>, slot: u8) -> PyResult<String> {
        let p = Arc::clone(&self.provider);
        let key = py.detach(move || p.key(slot)).map_err(|e| provider_err(py, e))?;
        json_out(py, &key)
    }

    /// Admin: derives dstack's key for `path` into `slot` under `policy`
    /// (the policy file's TOML), each command confirmed by the signer's
    /// identity; the key with its attestation.
    fn generate_key(&self, py: Python<'_>, slot: u8, path: &str, policy: &str) -> PyResult<String> {
        let policy = PolicyFile::parse(policy)
            .map_err(|e| invalid(py, e))?
            .to_policy()
            .map_err(|e| invalid(py, e))?;
        let (p, path) = (Arc::clone(&self.provider), path.to_owned());
        let key = py
            .detach(move || p.generate_key(slot, &path, &policy))
            .map_err(|e| provider_err(py, e))?;
        json_out(py, &key)
    }

    /// A quote binding `slot`'s address to `challenge` (32 bytes), with its
    /// event log, key chain and info.
    fn attestation_report(&self, py: Python<'_>, slot: u8, challenge: &[u8]) -> PyResult<String> {
        let challenge = b256(py, "challenge", challenge)?;
        let p = Arc::clone(&self.provider);
        let a = py
            .detach(move || p.get_attestation_report(slot, challenge))
            .map_err(|e| provider_err(py, e))?;
        json_out(py, &a)
    }

    /// An ERC-8004 attestation bundle (`tee_client::onchain`): `slot`'s
    /// attestation bound to the challenge of agent `agent_id` (decimal) on
    /// `identity_registry` of `chain_id`, made now. JSON: `bundle` (its
    /// bytes as published, as text), `requestHash`, `dataUri`, `signer`,
    /// `challenge`.
    fn agent_bundle(
        &self,
        py: Python<'_>,
        slot: u8,
        chain_id: u64,
        identity_registry: &str,
        agent_id: &str,
    ) -> PyResult<String> {
        use tee_client::onchain::bundle::{AgentRef, AttestationBundle, data_uri};
        let agent = AgentRef {
            chain_id,
            identity_registry: tee_core::Address::from_str(identity_registry)
                .map_err(|e| invalid(py, format!("identity_registry: {e:?}")))?,
            agent_id: tee_core::U256::from_decimal(agent_id)
                .ok_or_else(|| invalid(py, "agent_id: not a decimal uint256"))?,
        };
        let issued_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let p = Arc::clone(&self.provider);
        let a = py
            .detach(move || p.get_attestation_report(slot, agent.challenge(issued_at)))
            .map_err(|e| provider_err(py, e))?;
        let b = AttestationBundle::new(&agent, issued_at, a).map_err(|e| invalid(py, e))?;
        let bytes = b.to_bytes();
        json_out(
            py,
            &serde_json::json!({
                "bundle": String::from_utf8_lossy(&bytes),
                "requestHash": AttestationBundle::request_hash(&bytes).to_string(),
                "dataUri": data_uri(&bytes),
                "signer": b.attestation.address.to_string(),
                "challenge": b.challenge.to_string(),
            }),
        )
    }

    /// An agent's reputation (`tee_client::onchain::reputation`): all its
    /// feedback and the TEE-verified part, under this signer's pinned
    /// verifier policy. `query` is JSON: `rpc`, `reputationRegistry`,
    /// `validationRegistry`, `agentId` (decimal), `validators`, and
    /// optionally `allowHttp`, `allowPrivateHosts`, `fromBlock`.
    #[pyo3(signature = (query, now=None))]
    fn reputation(&self, py: Python<'_>, query: &str, now: Option<u64>) -> PyResult<String> {
        use tee_client::onchain::reputation::{Query, reputation};
        let q: serde_json::Value =
            serde_json::from_str(query).map_err(|e| invalid(py, format!("query: {e}")))?;
        let text = |k: &str| {
            q.get(k)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| invalid(py, format!("query: {k} is required")))
        };
        let address = |k: &str| -> PyResult<tee_core::Address> {
            tee_core::Address::from_str(text(k)?).map_err(|e| invalid(py, format!("{k}: {e:?}")))
        };
        let validators: Vec<tee_core::Address> = q
            .get("validators")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| invalid(py, "query: validators is required"))?
            .iter()
            .map(|v| {
                v.as_str()
                    .and_then(|a| tee_core::Address::from_str(a).ok())
                    .ok_or_else(|| invalid(py, format!("validators: {v}")))
            })
            .collect::<PyResult<_>>()?;
        let flag = |k: &str| q.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
        let rpc = tee_client::onchain::rpc::Rpc::new(text("rpc")?);
        let query = Query {
            rpc: &rpc,
            reputation_registry: address("reputationRegistry")?,
            validation_registry: address("validationRegistry")?,
            agent_id: tee_core::U256::from_decimal(text("agentId")?)
                .ok_or_else(|| invalid(py, "agentId: a decimal number"))?,
            validators: &validators,
            verifier: self.provider.verifier(),
            fetch: tee_client::onchain::fetch::FetchRules {
                ipfs_gateway: None,
                allow_http: flag("allowHttp"),
                allow_private: flag("allowPrivateHosts"),
            },
            from_block: q.get("fromBlock").and_then(serde_json::Value::as_u64).unwrap_or(0),
            now: now.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            }),
        };
        let out = py
            .detach(|| reputation(&query))
            .map_err(|e| raise(py, "Unavailable", e.to_string(), None))?;
        json_out(py, &out)
    }

    /// The validator's checks (`tee_client::onchain::validate`) of `bundle`
    /// (its bytes as published) for the request `request` (JSON:
    /// `chainId`, `identityRegistry`, `requestHash`, `agentId`,
    /// `agentWallet`, `teeSigner`) under this signer's pinned verifier
    /// policy: the report as JSON, with `responseHash` and `reasons`.
    #[pyo3(signature = (request, bundle, max_age=30 * 24 * 3600, now=None))]
    fn validate_bundle(
        &self,
        py: Python<'_>,
        request: &str,
        bundle: &[u8],
        max_age: u64,
        now: Option<u64>,
    ) -> PyResult<String> {
        let r: serde_json::Value =
            serde_json::from_str(request).map_err(|e| invalid(py, format!("request: {e}")))?;
        let field = |k: &str| r.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
        let address = |k: &str| -> PyResult<Option<tee_core::Address>> {
            field(k)
                .map(|a| tee_core::Address::from_str(&a))
                .transpose()
                .map_err(|e| invalid(py, format!("{k}: {e:?}")))
        };
        let on_chain = tee_client::onchain::AgentOnChain {
            chain_id: r
                .get("chainId")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| invalid(py, "chainId"))?,
            identity_registry: address("identityRegistry")?
                .ok_or_else(|| invalid(py, "identityRegistry"))?,
            request_hash: field("requestHash")
                .and_then(|h| B256::from_str(&h).ok())
                .ok_or_else(|| invalid(py, "requestHash"))?,
            agent_id: field("agentId")
                .and_then(|a| tee_core::U256::from_decimal(&a))
                .ok_or_else(|| invalid(py, "agentId (a decimal string)"))?,
            agent_wallet: address("agentWallet")?,
            tee_signer: address("teeSigner")?,
        };
        let now = now.unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
        });
        let v = tee_client::onchain::validate(
            &on_chain,
            bundle,
            self.provider.verifier(),
            max_age,
            now,
        );
        let mut out = serde_json::to_value(&v).map_err(|e| invalid(py, e))?;
        if let Some(o) = out.as_object_mut() {
            o.insert("responseHash".into(), v.response_hash().to_string().into());
            o.insert("reasons".into(), v.reasons().into());
            o.insert(
                "report".into(),
                String::from_utf8_lossy(&v.report_bytes()).into_owned().into(),
            );
        }
        json_out(py, &out)
    }

    /// Runs the full verifier on a signature's JSON under the pinned policy
    /// at unix time `now` (default: the clock): the report as JSON, with
    /// `verified` and `verifiedButDcap`.
    #[pyo3(signature = (signature, now=None))]
    fn verify(&self, py: Python<'_>, signature: &str, now: Option<u64>) -> PyResult<String> {
        let s: TeeSignature =
            serde_json::from_str(signature).map_err(|e| invalid(py, format!("signature: {e}")))?;
        let now = now.unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
        });
        let report = self.provider.verify_attestation(&s, Some(now));
        let mut v = serde_json::to_value(&report).map_err(|e| invalid(py, e))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("verified".into(), report.verified().into());
            o.insert("verifiedButDcap".into(), report.verified_but_dcap().into());
            o.insert("text".into(), report.to_string().into());
        }
        json_out(py, &v)
    }

    /// The TCB of the signer's platform at unix time `now` (default: the
    /// clock), read with this signer's verifier (its collateral and
    /// policy), as JSON: what `tee-signer tcb -c … --json` prints
    /// (`status`, `advisoryIds`, `fmspc`, `accepted`, `nextUpdate`,
    /// `secondsLeft`, ...).
    #[pyo3(signature = (now=None))]
    fn tcb(&self, py: Python<'_>, now: Option<u64>) -> PyResult<String> {
        let now = now.unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
        });
        let p = Arc::clone(&self.provider);
        let report = py.detach(move || p.tcb(now)).map_err(|e| provider_err(py, e))?;
        json_out(py, &report)
    }
}

impl Signer {
    fn sign_action(&self, py: Python<'_>, slot: u8, action: OwnedAction) -> PyResult<String> {
        let p = Arc::clone(&self.provider);
        let signed = py
            .detach(move || {
                let signature = p.sign_slot_at(slot, &action.view(), None)?;
                Ok::<_, ProviderError>(SignedJson { action, signature })
            })
            .map_err(|e| provider_err(py, e))?;
        json_out(py, &signed.to_json())
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Signer>()?;
    m.add_function(wrap_pyfunction!(functions::pin_policy, m)?)?;
    m.add_function(wrap_pyfunction!(functions::simulated_deployment, m)?)?;
    m.add_function(wrap_pyfunction!(functions::registration_file, m)?)?;
    m.add_function(wrap_pyfunction!(functions::task_receipt, m)?)?;
    m.add("PROVIDER_NAME", tee_client::provider::PROVIDER_NAME)?;
    Ok(())
}
