"""chaoschain-sdk 0.4.1's own `ChaosChainAgentSDK`, unchanged, with its
agents' keys in the signer: it registers its identity, sets metadata and
gives feedback on the ERC-8004 v2 registries of a chain it reaches over
HTTP, every transaction signed by a TEE key under that slot's policy.

How it is wired, with no patch to its source:
- keys: its `WalletManager` loads each agent's key from its wallet file
  with `Account.from_key(private_key)` and signs with
  `w3.eth.account.sign_transaction(tx, account.key)`. The wallet file
  holds, instead of a key, the handle `tee-signer:slot/N@ENDPOINT` (what
  `PhalaDstackTEE.generate_key` hands out); `tee_signer.use_with()` makes
  eth_account turn it into a `TeeAccount` and route its signing there;
- chain: `network="local"` reaches `LOCAL_RPC_URL` (the in-process chain
  behind HTTP, chain.JsonRpcEndpoint);
- registries: for `local` the SDK uses the testnet's deployed addresses and
  has no setting for others. The test points its `contract_addresses` at
  this chain's registries and reloads its contracts; the upstream change
  that makes this a setting (`LOCAL_IDENTITY_REGISTRY`, ... as
  `LOCAL_RPC_URL` is) is python/patches/chaoschain-sdk-0.4.1-local-registries.patch.
"""

import json

import pytest
from chain import JsonRpcEndpoint, deployment, events, fund, policy
from conftest import ADMIN_KEY
from tee_signer import Signer, TeeAccount, use_with

from chaoschain_sdk import ChaosChainAgentSDK

WORKER, CLIENT = 40, 41


@pytest.fixture(scope="module")
def chain():
    w3, identity, reputation, validation = deployment()
    # Agent 0 is someone else's: chaoschain-sdk 0.4.1 reads agent id 0 as
    # "not registered" (`if not self.agent_id`), as on a live registry it
    # never is.
    first = identity.functions.register("ipfs://someone-else").transact({"from": w3.eth.accounts[0]})
    w3.eth.wait_for_transaction_receipt(first)
    node = JsonRpcEndpoint(w3)
    yield w3, identity, reputation, validation, node
    node.close()


@pytest.fixture
def wired(chain, signer_endpoint, tmp_path, monkeypatch):
    """Two slots (a worker that registers and sets metadata, a client that
    gives feedback), funded; a chaoschain wallet file naming them; the SDK's
    chain at the in-process node; eth_account routed (undone after)."""
    w3, identity, reputation, _, node = chain
    admin = Signer(signer_endpoint, admin_key=ADMIN_KEY)
    contracts = [identity.address, reputation.address]
    kinds = {WORKER: ["register(string)", "register(string,(string,bytes)[])", "setMetadata"],
             CLIENT: ["giveFeedback"]}
    wallets = {}
    for slot, allowed in kinds.items():
        admin.generate_key(slot, f"chaoschain/{slot}", policy(allowed, w3.eth.chain_id, contracts))
        account = TeeAccount(signer_endpoint, slot)
        fund(w3, account.address)
        name = "worker-agent" if slot == WORKER else "client-agent"
        wallets[name] = {"address": account.address,
                         "private_key": f"tee-signer:slot/{slot}@{signer_endpoint}"}
    wallet_file = tmp_path / "chaoschain_wallets.json"
    wallet_file.write_text(json.dumps(wallets))
    monkeypatch.setenv("LOCAL_RPC_URL", node.url)
    monkeypatch.chdir(tmp_path)  # the SDK caches agent ids in the working directory
    undo = use_with()
    yield str(wallet_file), wallets
    undo()


def agent_sdk(name, role, wallet_file, chain):
    _, identity, reputation, validation, _ = chain
    sdk = ChaosChainAgentSDK(
        agent_name=name, agent_domain=f"{name}.example", agent_role=role, network="local",
        enable_process_integrity=False, enable_payments=False, enable_storage=False,
        enable_ap2=False, wallet_file=wallet_file,
    )
    # The registries of this chain (the upstream patch makes it a setting).
    addresses = sdk.chaos_agent.contract_addresses
    addresses.identity_registry = identity.address
    addresses.reputation_registry = reputation.address
    addresses.validation_registry = validation.address
    sdk.chaos_agent._load_contracts()
    return sdk


def test_chaoschain_agents_register_and_act_with_their_keys_in_the_signer(chain, wired):
    w3, identity, reputation, _, _ = chain
    wallet_file, wallets = wired
    worker = agent_sdk("worker-agent", "worker", wallet_file, chain)
    # Its wallet is the signer's slot: a TeeAccount, the address the slot holds.
    account = worker.wallet_manager.wallets["worker-agent"]
    assert isinstance(account, TeeAccount) and account.slot == WORKER
    assert worker.wallet_address == wallets["worker-agent"]["address"]

    agent_id, _ = worker.register_identity(token_uri="ipfs://chaoschain-worker")
    assert identity.functions.ownerOf(agent_id).call() == account.address
    assert account.last_signature["kind"] == "register(string)"
    worker.set_agent_metadata("tee-signer", bytes.fromhex(account.address[2:]))
    assert identity.functions.getMetadata(agent_id, "tee-signer").call() == bytes.fromhex(account.address[2:])
    assert account.last_signature["kind"] == "setMetadata"
    assert account.last_signature["attestation"]["bound"]["purpose"] == "action_digest"

    client = agent_sdk("client-agent", "client", wallet_file, chain)
    tx = client.chaos_agent.give_feedback(agent_id, 91, tag1="quality")
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    (feedback,) = events(reputation, "NewFeedback", receipt)
    assert feedback["args"]["clientAddress"] == wallets["client-agent"]["address"]
    assert feedback["args"]["value"] == 91


def test_what_a_slot_may_not_sign_is_refused_and_reaches_no_chain(chain, wired):
    w3, identity, _, _, _ = chain
    wallet_file, wallets = wired
    # The client's slot gives feedback only: registering is refused.
    client = agent_sdk("client-agent", "client", wallet_file, chain)
    address = wallets["client-agent"]["address"]
    nonce = w3.eth.get_transaction_count(address)
    with pytest.raises(Exception, match="KindNotAllowed"):
        client.register_identity(token_uri="ipfs://not-allowed")
    assert w3.eth.get_transaction_count(address) == nonce
    assert identity.functions.balanceOf(address).call() == 0
