"""The real ERC-8004 v2.0.0 contracts accept the signer's signatures.

The identity, reputation and validation registries (compiled from upstream,
tests/data/README.md) are deployed behind their proxies on an in-process
chain (eth-tester on py-evm), as the upstream tests deploy them; then every
agent-side call goes through web3.py's signing middleware and `TeeAccount`,
each key in the signer: the agent registers with metadata, sets its URI and
metadata, binds a wallet whose `AgentWalletSet` consent the wallet's own key
signs, a client gives and revokes feedback, the agent responds, the agent
requests validation and the validator answers. Every call succeeds and
emits its event; the slots' policies name these registries, so each went
through the device as the typed registry call (a policy without generic
transactions would refuse anything else)."""

import time

import pytest
from eth_utils import keccak
from web3.middleware import SignAndSendRawMiddlewareBuilder

from chain import agent_wallet_set, deployment, events, tee_accounts
from conftest import ADMIN_KEY
from tee_signer import Refused


def test_the_registries_accept_every_call_signed_by_the_device(signer_endpoint):
    w3, identity, reputation, validation = deployment()
    chain_id = w3.eth.chain_id
    contracts = [identity.address, reputation.address, validation.address]
    slots = {
        "agent": (1, ["register(string,(string,bytes)[])", "setAgentURI", "setMetadata",
                      "setAgentWallet", "appendResponse", "validationRequest"]),
        "wallet": (2, ["AgentWalletSet"]),
        "client": (3, ["giveFeedback", "revokeFeedback"]),
        "validator": (4, ["validationResponse"]),
    }
    accounts = tee_accounts(w3, signer_endpoint, ADMIN_KEY, "erc8004", slots, contracts)
    for account in accounts.values():
        w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    agent, wallet, client, validator = (accounts[k] for k in ("agent", "wallet", "client", "validator"))

    def send(account, call):
        receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": account.address}))
        assert receipt["status"] == 1
        assert account.last_signature["transactionHash"] == "0x" + bytes(receipt["transactionHash"]).hex()
        return receipt

    # Register, with metadata naming the TEE signer.
    r = send(agent, identity.functions.register(
        "ipfs://bafkreiagent", [("tee-signer", bytes.fromhex(agent.address[2:]))]
    ))
    (registered,) = events(identity, "Registered", r)
    agent_id = registered["args"]["agentId"]
    assert registered["args"]["owner"] == agent.address
    assert agent.last_signature["kind"] == "register(string,(string,bytes)[])"

    r = send(agent, identity.functions.setAgentURI(agent_id, "ipfs://bafkreiagent-v2"))
    assert events(identity, "URIUpdated", r)[0]["args"]["newURI"] == "ipfs://bafkreiagent-v2"
    r = send(agent, identity.functions.setMetadata(agent_id, "model", b"gpt-5"))
    assert events(identity, "MetadataSet", r)[0]["args"]["metadataKey"] == "model"

    # The wallet consents (its own key signs AgentWalletSet), the owner binds it.
    deadline = int(time.time()) + 120
    consent = wallet.sign_typed_data(full_message=agent_wallet_set(
        chain_id, identity.address, agent_id, wallet.address, agent.address, deadline
    ))
    assert wallet.last_signature["kind"] == "AgentWalletSet"
    send(agent, identity.functions.setAgentWallet(agent_id, wallet.address, deadline, consent.signature))
    assert identity.functions.getAgentWallet(agent_id).call() == wallet.address

    # A client's feedback, the agent's response, the client's revocation.
    feedback_hash = keccak(b"feedback")
    r = send(client, reputation.functions.giveFeedback(
        agent_id, 87, 0, "quality", "speed", "https://agent.example/a2a", "ipfs://bafkreifeedback", feedback_hash
    ))
    (fb,) = events(reputation, "NewFeedback", r)
    index = fb["args"]["feedbackIndex"]
    r = send(agent, reputation.functions.appendResponse(
        agent_id, client.address, index, "ipfs://bafkreiresponse", keccak(b"response")
    ))
    assert events(reputation, "ResponseAppended", r)
    r = send(client, reputation.functions.revokeFeedback(agent_id, index))
    assert events(reputation, "FeedbackRevoked", r)

    # Validation: the agent asks, the validator answers.
    request_hash = keccak(b"attestation bundle")
    r = send(agent, validation.functions.validationRequest(
        validator.address, agent_id, "ipfs://bafkreibundle", request_hash
    ))
    assert events(validation, "ValidationRequest", r)
    r = send(validator, validation.functions.validationResponse(
        request_hash, 100, "ipfs://bafkreireport", keccak(b"report"), "tee-attestation"
    ))
    (resp,) = events(validation, "ValidationResponse", r)
    assert resp["args"]["response"] == 100

    # A call outside a slot's policy is never signed: the client's key does
    # not set agent URIs (built with its gas given, so the chain is not
    # asked to estimate a call that would revert anyway).
    hijack = identity.functions.setAgentURI(agent_id, "ipfs://hijack").build_transaction(
        {"from": client.address, "gas": 200_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1,
         "nonce": w3.eth.get_transaction_count(client.address)}
    )
    with pytest.raises(Refused) as e:
        client.sign_transaction(hijack)
    assert e.value.reason == "KindNotAllowed"
