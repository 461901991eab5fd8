"""agent0-sdk (an ERC-8004 SDK) drives the real registries with `TeeAccount`
as its `signer=`, every key in the signer.

What agent0-sdk 1.7.1 does with the account, read from its wheel:
`Web3Client.signMessage` and `sign_typed_data` call `account.sign_message`
(EIP-191 version 0x45, and version 0x01 where only the domain separator and
the struct hash reach the account); `transact_contract` signs transactions
with `w3.eth.account.sign_transaction(tx, self.account.key)`. A device
account's `key` is a handle with no secret (`tee_signer.TeeKey`): without
`tee_signer.use_with()` eth_account refuses it, naming it, and nothing is
sent; with it, eth_account routes the handle to the account and agent0's
registration, wallet binding and feedback flows run with no patch to its
source.

agent0-sdk reaches the chain through `Web3(Web3.HTTPProvider(rpcUrl))`; the
test hands it the in-process chain instead of an HTTP one (its only change
of transport), so its calls meet the same contracts as test_onchain.py."""

import time

import pytest
from agent0_sdk import SDK
from agent0_sdk.core import web3_client as agent0_web3
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from chain import deployment, events, fund, in_process, policy
from conftest import ADMIN_KEY
from tee_signer import Refused, Signer, TeeAccount, UnsupportedOperation, use_with


@pytest.fixture
def chain(monkeypatch):
    """The registries on an in-process chain, given to agent0-sdk for any
    RPC URL."""
    w3, identity, reputation, validation = deployment()
    in_process(monkeypatch, agent0_web3, w3)
    return w3, identity, reputation, validation


@pytest.fixture
def routed():
    """`tee_signer.use_with()`: every eth_account `Account` (agent0 builds
    its own Web3) routes a `TeeAccount.key` handle to its account; undone
    after the test."""
    undo = use_with()
    yield
    undo()


def sdk(w3, identity, reputation, validation, account):
    chain_id = w3.eth.chain_id
    return SDK(
        chainId=chain_id,
        rpcUrl="http://in-process.invalid",
        signer=account,
        registryOverrides={
            chain_id: {
                "IDENTITY": identity.address,
                "REPUTATION": reputation.address,
                "VALIDATION": validation.address,
            }
        },
    )


def slots(signer_endpoint, w3, identity, reputation, first_slot):
    """An agent owner, the agent's wallet and a client, each a slot whose
    policy names only what it signs; the wallet's only kind is pre-hashed
    EIP-712 in the identity registry's domain (what agent0 hands over)."""
    chain_id = w3.eth.chain_id
    contracts = [identity.address, reputation.address]
    admin = Signer(signer_endpoint, admin_key=ADMIN_KEY)
    domain = encode_typed_data(
        domain_data={"name": "ERC8004IdentityRegistry", "version": "1", "chainId": chain_id,
                     "verifyingContract": identity.address},
        message_types={"AgentWalletSet": [{"name": "agentId", "type": "uint256"}]},
        message_data={"agentId": 0},
    ).header
    kinds = {
        "owner": ["register(string,(string,bytes)[])", "setAgentWallet", "personal_sign"],
        "wallet": ["eip712-prehashed"],
        "client": ["giveFeedback"],
    }
    accounts = {}
    for i, (who, allowed) in enumerate(kinds.items()):
        extra = f'eip712_domains = ["0x{bytes(domain).hex()}"]\n' if who == "wallet" else ""
        admin.generate_key(first_slot + i, f"agent0/{who}", policy(allowed, chain_id, contracts) + extra)
        accounts[who] = TeeAccount(signer_endpoint, first_slot + i)
        fund(w3, accounts[who].address)
    return accounts


def test_without_routing_the_key_handle_is_refused_by_name_and_nothing_is_sent(signer_endpoint, chain):
    """Unchanged agent0-sdk hands `account.key` to eth_account: without
    `use_with()` eth_account cannot read the handle as a key and says which
    it is; nothing is signed with a made-up key, nothing reaches the chain,
    and the handle gives no bytes to anyone who asks."""
    w3, identity, reputation, validation = chain
    accounts = slots(signer_endpoint, w3, identity, reputation, 20)
    owner = accounts["owner"]
    agent0 = sdk(w3, identity, reputation, validation, owner)
    agent = agent0.createAgent("tee agent", "signs inside a TEE")
    nonce = w3.eth.get_transaction_count(owner.address)
    with pytest.raises(Exception, match="TeeKey"):
        agent.registerOnChain()
    assert w3.eth.get_transaction_count(owner.address) == nonce
    assert owner.last_signature is None
    for leak in (bytes, int, lambda k: k.hex()):
        with pytest.raises(UnsupportedOperation, match="no key bytes"):
            leak(owner.key)
    with pytest.raises(Exception, match="TeeKey"):
        Account.from_key(owner.key)


def test_agent0_registers_binds_its_wallet_and_takes_feedback(signer_endpoint, chain, routed):
    w3, identity, reputation, validation = chain
    accounts = slots(signer_endpoint, w3, identity, reputation, 24)
    owner, wallet, client = accounts["owner"], accounts["wallet"], accounts["client"]
    agent0 = sdk(w3, identity, reputation, validation, owner)

    # Registration with the fully on-chain registration file (a data: URI).
    agent = agent0.createAgent("tee agent", "signs inside a TEE")
    agent.setMetadata({"tee-signer": owner.address})
    mined = agent.registerOnChain().wait_mined()
    assert mined.receipt["status"] == 1
    assert owner.last_signature["kind"] == "register(string,(string,bytes)[])"
    agent_id = int(agent.agentId.split(":")[1])
    assert identity.functions.ownerOf(agent_id).call() == owner.address
    assert identity.functions.tokenURI(agent_id).call().startswith("data:application/json")
    (registered,) = events(identity, "Registered", mined.receipt)
    assert registered["args"]["agentId"] == agent_id

    # The wallet's consent: agent0 hands the wallet account encode_typed_data's
    # two hashes; its policy signs them only in the identity registry's domain.
    mined = agent.setWallet(wallet.address, new_wallet_signer=wallet).wait_mined()
    assert mined.receipt["status"] == 1
    assert wallet.last_signature["kind"] == "eip712-prehashed"
    assert owner.last_signature["kind"] == "setAgentWallet"
    assert identity.functions.getAgentWallet(agent_id).call() == wallet.address

    # EIP-191 through agent0's helpers, recovered by agent0 and eth_account.
    signature = agent0.web3_client.signMessage(b"agent0 says hello")
    assert agent0.web3_client.recoverAddress(b"agent0 says hello", signature) == owner.address
    assert Account.recover_message(encode_defunct(b"agent0 says hello"), signature=signature) == owner.address

    # A client's feedback, from its own SDK instance and device key.
    reviewer = sdk(w3, identity, reputation, validation, client)
    mined = reviewer.giveFeedback(agent.agentId, 87, tag1="quality").wait_mined()
    assert mined.receipt["status"] == 1
    (feedback,) = events(reputation, "NewFeedback", mined.receipt)
    assert feedback["args"]["clientAddress"] == client.address
    assert client.last_signature["kind"] == "giveFeedback"

    # What a slot's policy does not name is refused, typed, through agent0:
    # the client's key does not register agents, and the wallet's pre-hashed
    # kind signs no other domain.
    rogue = reviewer.createAgent("rogue", "not allowed")
    with pytest.raises(Refused) as e:
        rogue.registerOnChain()
    assert e.value.reason == "KindNotAllowed"
    other_domain = agent0.web3_client.build_agent_wallet_set_typed_data(
        agent_id, wallet.address, owner.address, int(time.time()) + 60,
        verifying_contract=reputation.address, chain_id=w3.eth.chain_id,
    )
    with pytest.raises(Refused) as e:
        agent0.web3_client.sign_typed_data(other_domain, wallet)
    assert e.value.reason == "DomainNotAllowed"
