"""TEE trust on the real ERC-8004 v2.0.0 registries, end to end.

On the in-process chain (chain.py; eth-tester on py-evm, reached by the
`tee-signer` commands over a real JSON-RPC endpoint): an agent registers
naming its TEE signer, publishes its attestation bundle (bound to its agent
id on this registry and chain) and its registration file trusting
`tee-attestation`, binds the signer as its wallet with the signer's own
`AgentWalletSet`, and asks a validator; the validator (`tee-signer
validate`, its own key in the signer) verifies under its pinned policy and
answers; `getSummary` (and `tee-signer verdict`) shows one response of 100
under `tee-attestation`. Every transaction is signed by the signer. Then
the attacks, each on an agent of its own and each answered 0 with the
reason in the report: a bundle re-labelled for another agent, a bundle
from another app (another compose hash), a request whose hash is not the
bundle's."""

import base64
import json
import subprocess
import time

import pytest
from eth_utils import keccak
from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractLogicError
from web3.middleware import SignAndSendRawMiddlewareBuilder

from chain import JsonRpcEndpoint, agent_wallet_set, deployment, events, policy, tee_accounts
from conftest import ADMIN, ADMIN_KEY, ROOT, start, stop, tee_signer
from tee_signer import Signer, onchain, pin_policy, simulated_deployment

OTHER_APP_COMPOSE = '{"name":"not-the-agent","runner":"docker-compose","manifest_version":2}'


@pytest.fixture(scope="module")
def other_app(tmp_path_factory):
    """A signer of another (simulated) app: another compose hash, other keys."""
    tmp = tmp_path_factory.mktemp("other")
    compose = tmp / "app-compose.json"
    compose.write_text(OTHER_APP_COMPOSE)
    sock = tmp / "signer.sock"
    proc = start(
        ["serve", "--simulated", "--simulated-app-compose", str(compose),
         "--state", str(tmp / "state"), "--listen", f"unix:{sock}", "--admin", ADMIN],
        "stderr",
        "signer running",
    )
    yield f"unix:{sock}"
    stop(proc)


class Site:
    """Where the agent publishes its bundle: files over HTTP on 127.0.0.1."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def publish(self, path, content):
        self.files[path] = content
        return self.url + path

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def deploy_gate(w3, identity, validation, validators, max_age):
    """contracts/RequireTEE.sol's TEEGatedAction, from its committed artifacts."""
    artifacts = json.loads((ROOT / "contracts" / "artifacts.json").read_text())
    a = artifacts["contracts"]["TEEGatedAction"]
    factory = w3.eth.contract(abi=a["abi"], bytecode=a["bytecode"])
    tx = factory.constructor(identity, validation, validators, max_age).transact({"from": w3.eth.accounts[0]})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=a["abi"])


def cli(*args):
    out = subprocess.run([tee_signer(), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def data_uri(doc):
    return "data:application/json;base64," + base64.b64encode(doc).decode()


def test_an_attested_agent_is_validated_and_the_attacks_are_answered_zero(
    signer_endpoint, other_app, tmp_path
):
    w3, identity, reputation, validation = deployment()
    chain_id = w3.eth.chain_id
    contracts = [identity.address, reputation.address, validation.address]
    slots = {
        "owner": (11, ["register(string,(string,bytes)[])", "setAgentURI", "setAgentWallet",
                       "validationRequest"]),
        "tee": (12, ["AgentWalletSet"]),
        "validator": (13, ["validationResponse"]),
    }
    accounts = tee_accounts(w3, signer_endpoint, ADMIN_KEY, "tee-trust", slots, contracts)
    owner, tee, validator = accounts["owner"], accounts["tee"], accounts["validator"]
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build([owner, validator]), layer=0)
    signer = Signer(signer_endpoint)

    def send(call):
        receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": owner.address}))
        assert receipt["status"] == 1
        assert owner.last_signature["transactionHash"] == "0x" + bytes(receipt["transactionHash"]).hex()
        return receipt

    def register(tee_address):
        """A new agent whose metadata names `tee_address` as its TEE signer."""
        r = send(identity.functions.register(
            "", [(onchain.METADATA_KEY, bytes.fromhex(tee_address[2:]))]
        ))
        return events(identity, "Registered", r)[0]["args"]["agentId"]

    def request(agent_id, request_uri, request_hash):
        r = send(validation.functions.validationRequest(
            validator.address, agent_id, request_uri, request_hash
        ))
        (ev,) = events(validation, "ValidationRequest", r)
        assert ev["args"]["requestHash"] == request_hash
        return ev["args"]

    # The validator pins the agent's app: its compose file, reviewed, and
    # the KMS root (the simulator's DCAP root, for the simulated TEE).
    simulated = json.loads(simulated_deployment())
    pinned = pin_policy(
        json.dumps(json.loads(signer.attestation_report(12, b"\x07" * 32))),
        app_compose=simulated["appCompose"].encode(),
        kms_root=simulated["kmsRoot"],
        trust_simulator_root=True,
    )
    policy_file = tmp_path / "validator-policy.json"
    policy_file.write_text(pinned)
    rpc = JsonRpcEndpoint(w3)
    site = Site()

    def validate(req, bundle_file, *extra):
        """`tee-signer validate` over JSON-RPC, answered with the validator's
        slot; without `bundle_file`, the bundle is fetched from the request's
        URI (its ValidationRequest event)."""
        bundle = ["--bundle", str(bundle_file)] if bundle_file else []
        return cli(
            "validate", "--rpc", rpc.url, "--validation-registry", validation.address,
            "--request-hash", "0x" + req["requestHash"].hex(), *bundle,
            "--policy", str(policy_file), "-c", signer_endpoint, "--slot", "13",
            # The test's site serves the bundle over http on loopback.
            "--allow-http", "--allow-private-hosts", *extra,
        )

    try:
        # 1. The agent registers, naming its TEE signer in its metadata.
        agent_id = register(tee.address)

        # 2. Its attestation bundle, bound to (chain, registry, agent id),
        #    published where the agent serves files.
        bundle = onchain.attested_bundle(signer, 12, chain_id, identity.address, agent_id)
        assert bundle.signer == tee.address
        assert bundle.request_hash == keccak(bundle.content)
        bundle_uri = site.publish("/.well-known/tee-attestation.json", bundle.content)

        # 3. Its registration file, fully on-chain as a data: URI.
        reg = onchain.registration_file(
            bundle, "tee-agent", "An agent whose key lives in a TEE",
            services=[{"name": "A2A", "endpoint": "https://agent.example/.well-known/agent-card.json"}],
            bundle_uri=bundle_uri,
        )
        assert reg["type"] == "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"
        assert "tee-attestation" in reg["supportedTrust"]
        assert reg["registrations"] == [
            {"agentId": agent_id, "agentRegistry": f"eip155:{chain_id}:{identity.address}"}
        ]
        assert reg["tee"]["signer"] == tee.address
        assert reg["tee"]["attestation"] == {"uri": bundle_uri, "hash": "0x" + bundle.request_hash.hex()}
        reg_uri = data_uri(json.dumps(reg).encode())
        r = send(identity.functions.setAgentURI(agent_id, reg_uri))
        assert events(identity, "URIUpdated", r)[0]["args"]["newURI"] == reg_uri

        # 4. The TEE signer becomes the agent's wallet, by its own consent.
        deadline = int(time.time()) + 120
        consent = tee.sign_typed_data(full_message=agent_wallet_set(
            chain_id, identity.address, agent_id, tee.address, owner.address, deadline
        ))
        send(identity.functions.setAgentWallet(agent_id, tee.address, deadline, consent.signature))
        assert identity.functions.getAgentWallet(agent_id).call() == tee.address

        # 5. The validation request, committing to the bundle, which it
        #    carries whole: its URI is the bundle as a data: URI, signed as
        #    a typed validationRequest like any other.
        bundle_data_uri = data_uri(bundle.content)
        assert len(bundle_data_uri) > 8192  # more than the signer took before protocol 4
        req = request(agent_id, bundle_data_uri, bundle.request_hash)
        assert req["requestURI"] == bundle_data_uri

        # 6. The validator reads the request's event, reads the bundle from
        #    its data: URI, verifies and answers 100, signed by its own slot;
        #    its report carries the validator's own attestation, bound to
        #    this request and this response, and is on-chain whole too.
        report_file = tmp_path / "report.json"
        answer = validate(req, None, "--attest-validator", "--report-out", str(report_file))
        assert answer["response"] == 100, answer["reasons"]
        assert answer["responseURI"].startswith("data:application/json;base64,")
        assert base64.b64decode(answer["responseURI"].split(",", 1)[1]) == report_file.read_bytes()
        assert answer["validator"] == validator.address
        status = validation.functions.getValidationStatus(bundle.request_hash).call()
        assert status[0] == validator.address and status[1] == agent_id and status[2] == 100
        assert status[4] == onchain.TAG
        report = report_file.read_bytes()
        # The response hash binds the report's hash to the signer it attests.
        assert answer["reportHash"] == "0x" + keccak(report).hex()
        assert keccak(bytes.fromhex(tee.address[2:]) + keccak(report)) == status[3]
        good_report_hash = keccak(report)
        checks = json.loads(report)["checks"]
        assert [c["check"] for c in checks if c["passed"]] == [
            "requestHash", "bundle", "agent", "challenge", "freshness", "attestation", "signer"
        ]
        # A reader checks the validator: its attestation binds its key to
        # this request and response, in an app the reader pins.
        mine = json.loads(report)["validatorAttestation"]
        assert mine["address"] == validator.address
        (tmp_path / "validator-att.json").write_text(json.dumps(mine))
        challenge = keccak(b"tee-signer/erc8004-validator-report/v1" + bundle.request_hash + bytes([100]))
        verified = subprocess.run(
            [tee_signer(), "verify", str(tmp_path / "validator-att.json"), "--policy", str(policy_file),
             "--challenge", "0x" + challenge.hex()],
            capture_output=True, text=True,
        )
        assert verified.returncode == 0 and "VERIFIED" in verified.stdout, verified.stdout

        # 7. Anyone reads the verdict.
        assert validation.functions.getSummary(agent_id, [validator.address], onchain.TAG).call() == [1, 100]
        verdict = cli("verdict", "--rpc", rpc.url, "--validation-registry", validation.address,
                      "--agent-id", str(agent_id), "--validator", validator.address)
        assert (verdict["count"], verdict["averageResponse"]) == (1, 100)
        assert verdict["validations"][0]["response"] == 100

        # The same checks as a library call, for a validator in Python.
        lib = onchain.validate(
            Signer(signer_endpoint, verifier_policy=pinned), chain_id=chain_id,
            identity_registry=identity.address, request_hash=bundle.request_hash,
            agent_id=agent_id, agent_wallet=tee.address, tee_signer=tee.address,
            bundle=bundle.content,
        )
        assert lib["response"] == 100 and lib["reasons"] == []

        # Attack 1: agent 1's bundle re-labelled for another agent (whose
        # metadata names the same signer): its attestation binds agent 1.
        other_id = register(tee.address)
        relabelled = json.loads(bundle.content)
        relabelled["agentId"] = str(other_id)
        relabelled = json.dumps(relabelled, separators=(",", ":")).encode()
        f = tmp_path / "relabelled.json"
        f.write_bytes(relabelled)
        answer = validate(request(other_id, bundle_uri, keccak(relabelled)), f)
        assert answer["response"] == 0
        zero_verdict = (other_id, keccak(relabelled), bytes.fromhex(answer["reportHash"][2:]))
        # The report is on-chain whole (a data: URI), the reasons in it.
        report = json.loads(base64.b64decode(answer["responseURI"].split(",", 1)[1]))
        assert report["response"] == 0 and report["agentId"] == str(other_id)
        assert any(r.startswith("challenge:") for r in answer["reasons"]), answer["reasons"]

        # Attack 2: a bundle from another app, correctly bound to its agent.
        outsider = Signer(other_app, admin_key=ADMIN_KEY)
        outsider.generate_key(1, "tee-trust/tee", policy(["personal_sign"], chain_id, contracts))
        foreign_address = json.loads(outsider.key(1))["address"]
        foreign_id = register(foreign_address)
        foreign = onchain.attested_bundle(outsider, 1, chain_id, identity.address, foreign_id)
        f = tmp_path / "foreign.json"
        f.write_bytes(foreign.content)
        answer = validate(request(foreign_id, bundle_uri, foreign.request_hash), f)
        assert answer["response"] == 0
        assert any(r.startswith("attestation:") and "compose hash" in r for r in answer["reasons"]), answer["reasons"]

        # Attack 3: a request whose hash is not the bundle's. First, the
        # verdict alone (no signer given: nothing is sent), and a key that
        # is not the validator the request names cannot answer it.
        third_id = register(tee.address)
        third = onchain.attested_bundle(signer, 12, chain_id, identity.address, third_id)
        f = tmp_path / "third.json"
        f.write_bytes(third.content)
        req = request(third_id, bundle_uri, keccak(b"another bundle"))
        common = ["validate", "--rpc", rpc.url, "--validation-registry", validation.address,
                  "--request-hash", "0x" + req["requestHash"].hex(), "--bundle", str(f),
                  "--policy", str(policy_file)]
        dry = cli(*common)
        assert dry["response"] == 0 and "transactionHash" not in dry
        assert validation.functions.getSummary(third_id, [], onchain.TAG).call() == [0, 0]
        impostor = subprocess.run([tee_signer(), *common, "-c", signer_endpoint, "--slot", "12"],
                                  capture_output=True, text=True)
        assert impostor.returncode == 2  # invalid: not the validator named (docs/cli.md)
        assert f"the request names validator {validator.address}" in impostor.stderr, impostor.stderr
        answer = validate(req, f)
        assert answer["response"] == 0
        assert [r.split(":")[0] for r in answer["reasons"]] == ["requestHash"]

        # Attack 4: the agent's owner points the validator at what it must
        # not read (a local file, a host on loopback over https, plain
        # http); and a validator whose own configuration is wrong sends
        # nothing (an unpinned policy, the simulator's root on a chain that
        # is not a test chain). Each exits non-zero; nothing reaches the chain.
        fourth_id = register(tee.address)
        local = tmp_path / "validator-secret.txt"
        local.write_text("the validator's own file")

        def refused(req, *args, policy=policy_file):
            out = subprocess.run(
                [tee_signer(), "validate", "--rpc", rpc.url,
                 "--validation-registry", validation.address,
                 "--request-hash", "0x" + req["requestHash"].hex(),
                 "--policy", str(policy), "-c", signer_endpoint, "--slot", "13", *args],
                capture_output=True, text=True)
            assert out.returncode != 0, out.stdout
            return out.stderr

        e = refused(request(fourth_id, str(local), keccak(local.read_bytes())))
        assert "not a data:, https:// or ipfs:// URI" in e, e
        e = refused(request(fourth_id, bundle_uri.replace("http://", "https://"), keccak(b"4.2")))
        assert "loopback, private or link-local" in e, e
        e = refused(request(fourth_id, bundle_uri, keccak(b"4.3")))
        assert "--allow-http" in e, e
        unpinned = tmp_path / "unpinned.json"
        unpinned.write_text(json.dumps({**json.loads(pinned), "kms_root": None}))
        e = refused(request(fourth_id, bundle_uri, keccak(b"4.4")),
                    "--allow-http", "--allow-private-hosts", policy=unpinned)
        assert "not pinned" in e and "kms_root" in e, e
        e = refused(request(fourth_id, bundle_uri, keccak(b"4.5")),
                    "--allow-http", "--allow-private-hosts", "--test-chain", "1")
        assert f"chain {chain_id} is not a test chain" in e, e
        assert validation.functions.getSummary(fourth_id, [], onchain.TAG).call() == [0, 0]

        # Each attack shows as a 0 under the tag; the agent keeps its 100.
        for bad in (other_id, foreign_id, third_id):
            assert validation.functions.getSummary(bad, [validator.address], onchain.TAG).call() == [1, 0]
        assert validation.functions.getSummary(agent_id, [validator.address], onchain.TAG).call() == [1, 100]

        # A contract that requires a TEE agent (contracts/RequireTEE.sol, its
        # committed artifacts): it passes for the validated agent and
        # reverts, naming why, for anything else.
        funder = w3.eth.accounts[0]
        gate = deploy_gate(w3, identity.address, validation.address, [validator.address], 3600)

        def act(agent, request_hash, report_hash, on=gate):
            return on.functions.act(agent, request_hash, report_hash)

        def reverts(call, why):
            # eth-tester raises its TransactionFailed with the revert string.
            with pytest.raises((ContractLogicError, TransactionFailed), match=why):
                call.call({"from": funder})

        r = w3.eth.wait_for_transaction_receipt(
            act(agent_id, bundle.request_hash, good_report_hash).transact({"from": funder}))
        assert events(gate, "Acted", r)[0]["args"]["agentId"] == agent_id
        reverts(act(agent_id, bundle.request_hash, keccak(b"another report")),
                "the agent wallet is not the attested signer")
        reverts(act(*zero_verdict), "the verdict is not 100")
        reverts(act(other_id, bundle.request_hash, good_report_hash), "the verdict is for another agent")
        reverts(act(agent_id, keccak(b"never requested"), good_report_hash), "RequireTEE: no")
        untrusting = deploy_gate(w3, identity.address, validation.address, [owner.address], 3600)
        reverts(act(agent_id, bundle.request_hash, good_report_hash, on=untrusting),
                "no verdict from a trusted validator")
        # A verdict under ERC-8004's own tag, "tee", counts as well: the
        # validator answers a second request of the agent's with it.
        tee_request = keccak(b"a second request, answered under the tee tag")
        request(agent_id, "ipfs://bundle", tee_request)
        tee_report = keccak(b"the validator's report under the tee tag")
        answer = validation.functions.validationResponse(
            tee_request, 100, "ipfs://report", keccak(bytes.fromhex(tee.address[2:]) + tee_report), "tee")
        receipt = w3.eth.wait_for_transaction_receipt(answer.transact({"from": validator.address}))
        assert receipt["status"] == 1
        act(agent_id, tee_request, tee_report).call({"from": funder})
        # The agent's wallet changes after the verdict: it covers the old one only.
        newcomer = Account.create()
        deadline = int(time.time()) + 120
        consent = newcomer.sign_typed_data(full_message=agent_wallet_set(
            chain_id, identity.address, agent_id, newcomer.address, owner.address, deadline))
        send(identity.functions.setAgentWallet(agent_id, newcomer.address, deadline, consent.signature))
        reverts(act(agent_id, bundle.request_hash, good_report_hash),
                "the agent wallet is not the attested signer")
        # And a verdict older than the gate's window no longer passes.
        w3.testing.timeTravel(w3.eth.get_block("latest")["timestamp"] + 7200)
        w3.testing.mine()
        reverts(act(agent_id, bundle.request_hash, good_report_hash), "the verdict is too old")
    finally:
        rpc.close()
        site.close()
