"""`PhalaDstackTEE`, chaoschain-sdk's `TEEProvider`, against a real
`tee-signer serve --simulated` process: it satisfies the released SDK's
protocol with the SDK's own dataclasses; the keypair carries a handle, never
a key; signatures recover with eth_account; a validator pinned to the
deployment verifies them (simulated root), and one pinned to another app
does not."""

import json
import typing

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from chain import policy
from conftest import ADMIN_KEY
from chaoschain_sdk.providers.tee import base
from tee_signer import PhalaDstackTEE, Refused, pin_policy, simulated_deployment

POLICY = policy(["personal_sign"], max_gas_limit=0, max_fee_per_gas_wei="0")


@pytest.fixture(scope="module")
def keypair(signer_endpoint):
    admin = PhalaDstackTEE(signer_endpoint, admin_key=ADMIN_KEY)
    return admin.generate_key(slot=2, path="chaoschain/agent", policy=POLICY)


def test_the_sdk_protocol_with_its_own_dataclasses(signer_endpoint, keypair):
    tee = PhalaDstackTEE(signer_endpoint, slot=2)
    for name in ("provider_name", "is_available", "generate_key", "sign", "verify_attestation", "get_attestation_report"):
        assert hasattr(tee, name), name
    assert tee.provider_name == "phala-dstack"
    assert tee.is_available
    assert isinstance(keypair, base.TEEKeypair)
    # The handle names the slot and the signer; it is no key.
    assert keypair.private_key == f"tee-signer:slot/2@{signer_endpoint}"
    assert keypair.public_key.startswith("0x") and len(keypair.public_key) == 68
    assert keypair.attestation["bound"]["purpose"] == "challenge"
    sig = tee.sign(b"hello from chaoschain", keypair)
    assert isinstance(sig, base.TEESignature)
    assert len(sig.signature) == 65
    message = encode_defunct(b"hello from chaoschain")
    assert Account.recover_message(message, signature=sig.signature) == keypair.attestation["address"]
    report = tee.get_attestation_report()
    assert set(["quote", "eventLog", "challenge"]) <= set(report), sorted(report)


def test_a_pinned_validator_verifies_and_another_app_does_not(signer_endpoint, keypair):
    agent = PhalaDstackTEE(signer_endpoint, slot=2)
    sig = agent.sign(b"attested action", keypair)
    # Unpinned: no verdict.
    assert agent.verify_attestation(sig) is False
    # Pinned to this deployment: its attestation, the app-compose file the
    # validator reviewed, the KMS root its keys chain to; simulated DCAP root.
    simulated = json.loads(simulated_deployment())
    deployment = json.dumps(agent.get_attestation_report())
    pinned = json.loads(
        pin_policy(
            deployment,
            app_compose=simulated["appCompose"].encode(),
            kms_root=simulated["kmsRoot"],
            trust_simulator_root=True,
        )
    )
    validator = PhalaDstackTEE(signer_endpoint, verifier_policy=pinned)
    assert validator.verify_attestation(sig) is True, validator.last_report["text"]
    # Another app's compose hash: refused, with the reason in the report.
    other = dict(pinned, compose_hash=["0x" + "ab" * 32])
    strict = PhalaDstackTEE(signer_endpoint, verifier_policy=other)
    assert strict.verify_attestation(sig) is False
    assert "compose" in strict.last_report["text"].lower()
    # A signature whose message was swapped after signing: refused.
    forged = type(sig)(signature=sig.signature, attestation=dict(sig.attestation, digest="0x" + "00" * 32), verified=False, provider=sig.provider)
    assert validator.verify_attestation(forged) is False


def test_a_key_from_another_signer_or_a_refused_kind(signer_endpoint, keypair):
    tee = PhalaDstackTEE(signer_endpoint, slot=2)
    stranger = type(keypair)(public_key=keypair.public_key, private_key="tee-signer:slot/2@unix:/elsewhere.sock", attestation={}, provider="phala-dstack")
    with pytest.raises(Exception, match="not a key of the signer"):
        tee.sign(b"x", stranger)
    # A handle to an empty slot: the device says so.
    empty = type(keypair)(public_key="", private_key=f"tee-signer:slot/3@{signer_endpoint}", attestation={}, provider="phala-dstack")
    with pytest.raises(Refused) as e:
        tee.sign(b"x", empty)
    assert e.value.reason == "SlotEmpty"


def test_a_chaoschain_sdk_that_does_not_import_is_named_not_silently_replaced(tmp_path):
    """chaoschain-sdk 0.4.1 imports flask without declaring it: with the SDK
    installed but flask missing, importing tee_signer warns with the reason
    (and `CHAOSCHAIN_IMPORT_ERROR` keeps it) instead of falling back quietly
    to its own dataclasses."""
    import subprocess
    import sys

    shadow = tmp_path / "chaoschain_sdk"
    (shadow / "providers" / "tee").mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    (shadow / "providers" / "__init__.py").write_text("import flask\n")
    (shadow / "providers" / "tee" / "__init__.py").write_text("")
    (shadow / "providers" / "tee" / "base.py").write_text("")
    blocked = tmp_path / "flask.py"
    blocked.write_text("raise ModuleNotFoundError(\"No module named 'flask'\", name='flask')\n")
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    from tee_signer import tee\n"
        "print(tee.CHAOSCHAIN_IMPORT_ERROR)\n"
        "print(len([x for x in w if 'chaoschain-sdk is installed' in str(x.message)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path)}, check=True).stdout
    assert "No module named 'flask'" in out and "pip install flask" in out, out
    assert out.strip().endswith("1"), out


def test_the_seed_snippet_registers_an_agent_with_tee_attestation(signer_endpoint):
    """ChaosChain's request, as close to its lines as the SDK allows: a
    `PhalaDstackTEE`, `generate_key()`, and the agent registered with
    `tee_attestation=True`: a registration file trusting tee-attestation,
    the bundle, the validationRequest; every transaction signed in the TEE
    with its attestation bound to its digest."""
    import base64
    import json

    from chain import deployment, events, fund
    from conftest import ADMIN_KEY
    from eth_utils import keccak

    from tee_signer import PhalaDstackTEE

    w3, identity, _, validation = deployment()
    kinds = ["register(string)", "setAgentURI", "validationRequest"]
    tee = PhalaDstackTEE(signer_endpoint, slot=30, admin_key=ADMIN_KEY)
    keypair = tee.generate_key(path="chaoschain/seed", policy=policy(
        kinds, w3.eth.chain_id, [identity.address, validation.address]))
    fund(w3, keypair.attestation["address"])
    validator = w3.eth.accounts[3]
    agent = tee.register_agent(
        w3, keypair, identity_registry=identity.address, name="seed agent",
        description="signs inside a TEE", tee_attestation=True,
        validation_registry=validation.address, validator=validator,
        bundle_uri="https://agent.example/.well-known/tee-attestation.json",
    )
    agent_id = agent["agentId"]
    assert identity.functions.ownerOf(agent_id).call() == keypair.attestation["address"]
    uri = identity.functions.tokenURI(agent_id).call()
    registration = json.loads(base64.b64decode(uri.split(",", 1)[1]))
    assert registration["supportedTrust"] == ["tee-attestation"]
    assert registration["tee"]["signer"] == keypair.attestation["address"]
    bundle = agent["bundle"]
    assert bundle.request_hash == keccak(bundle.content)
    status = validation.functions.getValidationStatus(bundle.request_hash).call()
    assert status[0] == validator and status[1] == agent_id
    # Three transactions, each with its attestation bound to its digest.
    kinds_signed = [t["kind"] for t in agent["transactions"]]
    assert kinds_signed == ["register(string)", "setAgentURI", "validationRequest"]
    for t in agent["transactions"]:
        assert t["attestation"]["bound"] == {"purpose": "action_digest", "value": t["digest"]}


def test_a_validator_reads_the_signers_tcb(signer_endpoint):
    # The simulated platform's TCB, with the simulator's collateral (made
    # for the time asked): accepted, and how long it lasts; at a time past
    # that collateral's own window, not.
    simulated = json.loads(simulated_deployment())
    agent = PhalaDstackTEE(signer_endpoint, slot=2)
    pinned = json.loads(
        pin_policy(
            json.dumps(agent.get_attestation_report()),
            app_compose=simulated["appCompose"].encode(),
            kms_root=simulated["kmsRoot"],
            trust_simulator_root=True,
        )
    )
    validator = PhalaDstackTEE(signer_endpoint, verifier_policy=pinned)
    tcb = validator.tcb()
    assert tcb["status"] == "UpToDate" and tcb["accepted"] is True, tcb
    assert tcb["advisoryIds"] == [] and tcb["secondsLeft"] > 0, tcb
    assert len(tcb["fmspc"]) == 12, tcb
    # A PCCS that does not answer is an error naming it, never a verdict.
    with pytest.raises(Exception, match="collateral_cache needs pccs"):
        PhalaDstackTEE(signer_endpoint, verifier_policy=pinned, collateral_cache="/tmp/x")
    unpinned = PhalaDstackTEE(signer_endpoint, pccs="http://127.0.0.1:1")
    with pytest.raises(Exception, match="(?i)pccs|collateral|127.0.0.1"):
        unpinned.tcb()
