//! The module's functions besides `Signer`: a validator's pinned policy,
//! an agent's registration file and task receipt, and the simulated
//! deployment.

use std::str::FromStr;

use pyo3::prelude::*;
use tee_core::Action;
use tee_verify::Policy;

use crate::{b256, invalid, json_out, raise};

/// A validator's policy pinned to a deployment, from an attestation of it
/// (the JSON of `attestation_report`): its compose hash and app id, with
/// `image` its MRTD and RTMR0-2, and `kms_root`; where `app_compose` (the
/// app-compose file the validator reviewed) is given, its SHA-256 must be
/// the deployment's compose hash. The policy as JSON, for `Signer`.
#[pyfunction]
#[pyo3(signature = (attestation, app_compose=None, kms_root=None, image=false, trust_simulator_root=false))]
pub(crate) fn pin_policy(
    py: Python<'_>,
    attestation: &str,
    app_compose: Option<&[u8]>,
    kms_root: Option<&str>,
    image: bool,
    trust_simulator_root: bool,
) -> PyResult<String> {
    let a: tee_verify::Attestation =
        serde_json::from_str(attestation).map_err(|e| invalid(py, format!("attestation: {e}")))?;
    let kms_root = kms_root
        .map(tee_core::Address::from_str)
        .transpose()
        .map_err(|e| invalid(py, format!("kms_root: {e:?}")))?;
    let mut policy =
        Policy::pin(tee_verify::policy::Deployment::Attestation(&a), kms_root, app_compose, image)
            .map_err(|e| raise(py, "AttestationError", e.to_string(), None))?;
    policy.trust_simulator_root = trust_simulator_root;
    json_out(py, &policy)
}

/// The ERC-8004 registration file (`registration-v1`) for the agent a
/// bundle names: `supportedTrust: ["tee-attestation"]`, its registration,
/// and a `tee` section naming the signer and the bundle (`bundle_uri`, by
/// default a data: URI holding it, and its hash). `services`: JSON list of
/// `{name, endpoint, version?}`. JSON.
#[pyfunction]
#[pyo3(signature = (bundle, name, description="", services="[]", image=None, bundle_uri=None))]
pub(crate) fn registration_file(
    py: Python<'_>,
    bundle: &[u8],
    name: &str,
    description: &str,
    services: &str,
    image: Option<&str>,
    bundle_uri: Option<&str>,
) -> PyResult<String> {
    use tee_client::onchain::bundle::{AttestationBundle, Registration, data_uri};
    let b = AttestationBundle::from_bytes(bundle).map_err(|e| invalid(py, e))?;
    let agent = b.agent().map_err(|e| invalid(py, e))?;
    let registration = Registration {
        name: name.to_owned(),
        description: description.to_owned(),
        image: image.map(str::to_owned),
        services: serde_json::from_str(services)
            .map_err(|e| invalid(py, format!("services: {e}")))?,
    };
    let uri = bundle_uri.map_or_else(|| data_uri(bundle), str::to_owned);
    json_out(
        py,
        &registration.file(
            &agent,
            &b.attestation.address,
            &uri,
            &AttestationBundle::request_hash(bundle),
        ),
    )
}

/// An agent's `TaskReceipt` (tee-core's typed action) as
/// eth_signTypedData_v4 JSON, written by tee-client's `to_json`.
#[pyfunction]
pub(crate) fn task_receipt(
    py: Python<'_>,
    chain_id: u64,
    identity_registry: &str,
    agent_id: &str,
    task_hash: &[u8],
    result_hash: &[u8],
    completed_at: u64,
) -> PyResult<String> {
    let action = Action::TaskReceipt(tee_core::action::TaskReceipt {
        chain_id,
        identity_registry: tee_core::Address::from_str(identity_registry)
            .map_err(|e| invalid(py, format!("identity_registry: {e:?}")))?,
        agent_id: tee_core::U256::from_decimal(agent_id)
            .ok_or_else(|| invalid(py, "agent_id: a decimal number"))?,
        task_hash: b256(py, "task_hash", task_hash)?,
        result_hash: b256(py, "result_hash", result_hash)?,
        completed_at,
    });
    json_out(py, &tee_client::actions::to_json(&action))
}

/// The deployment `tee-signer serve --simulated` (and `sim-dstack`)
/// simulates, as a validator of it pins it: its KMS root address and the
/// app-compose file whose hash the event log carries. For trying things
/// out: anyone can run that simulator.
#[pyfunction]
pub(crate) fn simulated_deployment(py: Python<'_>) -> PyResult<String> {
    use tee_sim::deployment::{APP_COMPOSE, APP_ID, KMS_ROOT};
    let sim = tee_sim::SimDstack::with_app_compose(&KMS_ROOT, APP_ID, APP_COMPOSE)
        .map_err(|e| invalid(py, format!("{e:?}")))?;
    json_out(
        py,
        &serde_json::json!({
            "kmsRoot": sim.kms_root().to_string(),
            "appCompose": APP_COMPOSE,
        }),
    )
}
