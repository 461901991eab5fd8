"""`tee-signer rpc`, the JSON-RPC endpoint, in front of the signer and a
chain node serving the ERC-8004 registries: web3.py with a plain
`HTTPProvider` (no middleware, no account object) registers an agent, a
bare JSON-RPC POST (what `curl` sends) lands a call with nothing filled in,
and a call outside the policy gets the typed error and reaches no chain."""

import json
import time
import urllib.request

import pytest
from chain import JsonRpcEndpoint, agent_wallet_set, deployment, events, tee_accounts
from conftest import ADMIN_KEY, start, stop
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import HTTPProvider, Web3


@pytest.fixture(scope="module")
def rig(signer_endpoint):
    """The chain behind HTTP, a TEE key in slot 0 allowed to register and set
    its URI on the identity registry, and the endpoint in front of both:
    (w3 on the chain, identity, the TEE account, the endpoint's URL)."""
    w3, identity, _, _ = deployment()
    node = JsonRpcEndpoint(w3)
    kinds = ["register(string)", "setAgentURI", "AgentWalletSet"]
    (agent,) = tee_accounts(
        w3, signer_endpoint, ADMIN_KEY, "rpc", {"agent": (0, kinds)}, [identity.address]
    ).values()
    proc = start(
        ["rpc", "--connect", signer_endpoint, "--slot", "0", "--upstream", node.url,
         "--listen", "tcp:127.0.0.1:0"],
        "stdout", "JSON-RPC endpoint at",
    )
    url = proc.ready_line.split()[3]
    yield w3, identity, agent, url
    stop(proc)
    node.close()


def post(url, body):
    """A bare JSON-RPC POST, as `curl -H 'content-type: application/json' -d BODY` sends it."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def test_web3_with_a_plain_http_provider_registers_an_agent(rig):
    w3, identity, agent, url = rig
    tool = Web3(HTTPProvider(url))
    assert tool.eth.accounts == [agent.address]
    assert tool.eth.chain_id == w3.eth.chain_id  # forwarded to the node
    registry = tool.eth.contract(address=identity.address, abi=identity.abi)
    tx = registry.functions.register("ipfs://agent-card").transact({"from": agent.address})
    receipt = tool.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1
    (registered,) = events(identity, "Registered", receipt)
    agent_id = registered["args"]["agentId"]
    assert identity.functions.ownerOf(agent_id).call() == agent.address

    # The signature's attestation, by the transaction's hash.
    kept = post(url, {"jsonrpc": "2.0", "id": 1, "method": "tee_getAttestation",
                      "params": [tx.to_0x_hex()]})["result"]
    assert kept["transactionHash"] == tx.to_0x_hex()
    assert kept["address"] == agent.address
    assert kept["attestation"]["bound"] == {"purpose": "action_digest", "value": kept["digest"]}

    # The wallet consent, as eth_signTypedData_v4: the identity registry's type.
    data = agent_wallet_set(w3.eth.chain_id, identity.address, agent_id, agent.address,
                            agent.address, int(time.time()) + 60)
    sig = tool.manager.request_blocking("eth_signTypedData_v4", [agent.address, data])
    assert Account.recover_message(encode_typed_data(full_message=data), signature=sig) == agent.address


def test_a_bare_post_with_nothing_filled_lands_a_registry_call(rig):
    w3, identity, agent, url = rig
    data = identity.encode_abi("register", ["ipfs://bare"])
    sent = post(url, {"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction",
                      "params": [{"from": agent.address, "to": identity.address, "data": data}]})
    receipt = w3.eth.wait_for_transaction_receipt(sent["result"])
    assert receipt["status"] == 1
    (registered,) = events(identity, "Registered", receipt)
    assert registered["args"]["agentURI"] == "ipfs://bare"


def test_a_call_outside_the_policy_is_refused_typed_and_reaches_no_chain(rig):
    w3, identity, agent, url = rig
    before = (w3.eth.block_number, w3.eth.get_transaction_count(agent.address))
    # A value transfer (generic-tx is not among the slot's kinds).
    refused = post(url, {"jsonrpc": "2.0", "id": 9, "method": "eth_sendTransaction",
                         "params": [{"from": agent.address, "to": w3.eth.accounts[1],
                                     "value": "0x1"}]})
    assert refused["id"] == 9
    assert refused["error"]["code"] == 4001, refused
    assert refused["error"]["data"]["reason"] == "KindNotAllowed", refused
    # A registry call the policy does not name (setMetadata).
    data = identity.encode_abi("setMetadata", [1, "k", b"v"])
    refused = post(url, {"jsonrpc": "2.0", "id": 10, "method": "eth_sendTransaction",
                         "params": [{"from": agent.address, "to": identity.address, "data": data}]})
    assert refused["error"]["data"]["reason"] == "KindNotAllowed", refused
    assert (w3.eth.block_number, w3.eth.get_transaction_count(agent.address)) == before
    # web3.py raises the node-style error with the code and the device's reason.
    tool = Web3(HTTPProvider(url))
    with pytest.raises(Exception, match="KindNotAllowed"):
        tool.eth.send_transaction({"from": agent.address, "to": w3.eth.accounts[1], "value": 1})
    assert (w3.eth.block_number, w3.eth.get_transaction_count(agent.address)) == before


def test_concurrent_sends_from_one_account_get_one_nonce_each(rig):
    """Tools that fire transactions at once: the endpoint fills each nonce
    from the node and sends before the next one reads it, so none collides
    and every one lands."""
    from concurrent.futures import ThreadPoolExecutor

    w3, identity, agent, url = rig
    data = identity.encode_abi("register", ["ipfs://concurrent"])
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction",
            "params": [{"from": agent.address, "to": identity.address, "data": data}]}
    before = w3.eth.get_transaction_count(agent.address)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: post(url, body), range(6)))
    hashes = [a["result"] for a in answers]
    receipts = [w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert all(r["status"] == 1 for r in receipts)
    nonces = sorted(w3.eth.get_transaction(h)["nonce"] for h in hashes)
    assert nonces == list(range(before, before + 6))
