"""TEE-verified reputation on the ERC-8004 v2 registries: an agent returns,
with each task's result, a `TaskReceipt` signed in its TEE (a typed kind
its policy allows); its clients put the receipt in the feedback file whose
hash `giveFeedback` commits. `tee-signer reputation` (and
`tee_signer.onchain.reputation`) counts all feedback and, apart, the
feedback whose receipts verify, each left out with its reason: a client
with no receipt, a receipt forged by a key outside the TEE, a receipt of
another agent. The agent's TEE verdict is a validator's 100 under
`tee-attestation` (its checks are test_tee_trust.py's; here it answers
directly)."""

import base64
import json
import subprocess
import time

from eth_account import Account
from eth_utils import keccak
from web3.middleware import SignAndSendRawMiddlewareBuilder

from chain import JsonRpcEndpoint, deployment, events, tee_accounts
from conftest import ADMIN_KEY, tee_signer
from tee_signer import Signer, onchain, pin_policy, simulated_deployment


def data_uri(doc: dict) -> tuple[str, bytes]:
    content = json.dumps(doc).encode()
    return "data:application/json;base64," + base64.b64encode(content).decode(), keccak(content)


def test_tee_verified_feedback_counts_apart_and_forgeries_are_named(signer_endpoint, tmp_path):
    w3, identity, reputation, validation = deployment()
    chain_id = w3.eth.chain_id
    contracts = [identity.address, reputation.address, validation.address]
    slots = {
        "agent": (50, ["register(string)", "validationRequest", "TaskReceipt"]),
        "other": (51, ["register(string)", "TaskReceipt"]),
        "validator": (52, ["validationResponse"]),
    }
    accounts = tee_accounts(w3, signer_endpoint, ADMIN_KEY, "reputation", slots, contracts)
    agent, other, validator = accounts["agent"], accounts["other"], accounts["validator"]
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build([agent, other, validator]), layer=0)

    def send(call, account):
        receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": account.address}))
        assert receipt["status"] == 1
        return receipt

    def register(account):
        r = send(identity.functions.register("ipfs://agent-card"), account)
        return events(identity, "Registered", r)[0]["args"]["agentId"]

    agent_id, other_id = register(agent), register(other)
    # The validator's verdict on the agent: 100 under tee-attestation.
    request_hash = keccak(b"the agent's attestation bundle")
    send(validation.functions.validationRequest(validator.address, agent_id, "ipfs://bundle", request_hash), agent)
    send(validation.functions.validationResponse(
        request_hash, 100, "ipfs://report", keccak(b"report"), "tee-attestation"), validator)

    def receipt(account, receipt_agent, task):
        typed = onchain.task_receipt(chain_id, identity.address, receipt_agent, task,
                                     b"result of " + task, int(time.time()))
        account.sign_typed_data(full_message=typed)
        assert account.last_signature["kind"] == "TaskReceipt"
        return {"typedData": typed, "signature": account.last_signature}

    honest = receipt(agent, agent_id, b"task 1")
    # Forged: a key outside the TEE signs the receipt, and the forger
    # dresses it in a genuine attestation and claims the agent's address.
    forged = receipt(agent, agent_id, b"task 2")
    outsider = Account.create()
    fake = outsider.sign_typed_data(full_message=forged["typedData"])
    forged["signature"] = {**forged["signature"], "signature": "0x" + bytes(fake.signature).hex(),
                           "address": outsider.address}
    # Another agent's receipt, real, for its own agent id.
    foreign = receipt(other, other_id, b"task 3")

    clients = w3.eth.accounts[1:5]
    files = [{"teeReceipt": honest}, {"teeReceipt": forged}, {"teeReceipt": foreign},
             {"comment": "no receipt"}]
    for client, (value, doc) in zip(clients, zip([90, 10, 20, 60], files)):
        uri, file_hash = data_uri(doc)
        tx = reputation.functions.giveFeedback(agent_id, value, 0, "quality", "", "", uri, file_hash)
        assert w3.eth.wait_for_transaction_receipt(tx.transact({"from": client}))["status"] == 1

    # The reader pins the agent's app (the simulated deployment) and trusts the validator.
    simulated = json.loads(simulated_deployment())
    pinned = pin_policy(
        json.dumps(json.loads(Signer(signer_endpoint).attestation_report(50, b"\x07" * 32))),
        app_compose=simulated["appCompose"].encode(), kms_root=simulated["kmsRoot"],
        trust_simulator_root=True,
    )
    node = JsonRpcEndpoint(w3)
    try:
        reader = Signer(signer_endpoint, verifier_policy=pinned)
        out = onchain.reputation(
            reader, rpc=node.url, reputation_registry=reputation.address,
            validation_registry=validation.address, agent_id=agent_id,
            validators=[validator.address],
        )
        assert out["validated"] and agent.address in out["teeSigners"], out
        assert out["all"] == {"count": 4, "average": 45.0}, out
        assert out["teeVerified"] == {"count": 1, "average": 90.0}, out
        reasons = {f["client"]: f.get("reason") for f in out["feedback"]}
        assert reasons[clients[0]] is None
        assert "not the agent's TEE signer" in reasons[clients[1]], reasons
        assert "not of this agent" in reasons[clients[2]], reasons
        assert "no teeReceipt" in reasons[clients[3]], reasons

        # The command line says the same.
        policy_file = tmp_path / "reader-policy.json"
        policy_file.write_text(pinned)
        cli = subprocess.run(
            [tee_signer(), "reputation", "--rpc", node.url, "--reputation-registry", reputation.address,
             "--validation-registry", validation.address, "--agent-id", str(agent_id),
             "--validator", validator.address, "--policy", str(policy_file)],
            capture_output=True, text=True, check=True,
        )
        assert json.loads(cli.stdout)["teeVerified"] == out["teeVerified"]

        # Without a passing verdict from the validators given, nothing counts as TEE-verified.
        nobody = onchain.reputation(
            reader, rpc=node.url, reputation_registry=reputation.address,
            validation_registry=validation.address, agent_id=agent_id,
            validators=[outsider.address],
        )
        assert not nobody["validated"] and nobody["teeVerified"]["count"] == 0, nobody
    finally:
        node.close()
