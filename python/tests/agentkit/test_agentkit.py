"""coinbase-agentkit's `EthAccountWalletProvider` takes `TeeAccount` as its
account (its config requires an eth_account `LocalAccount`) and signs
through the device: messages, typed data, and transactions it sends through
web3.py's signing middleware to a registry on the in-process chain.

agentkit 0.7.4 pins `web3<8` and `x402<2` where chaoschain-sdk 0.4.1 needs
`x402` 2, so this runs in a venv of its own (`.ci/run`,
python/requirements-agentkit.txt). agentkit builds `Web3(Web3.HTTPProvider(
rpc_url))` and knows chains by id: the test hands it the in-process chain
for its RPC URL and names that chain's id as a network agentkit knows (its
only two changes; the provider's own code signs and sends)."""

import time

import pytest
from coinbase_agentkit import EthAccountWalletProvider, EthAccountWalletProviderConfig
from coinbase_agentkit.wallet_providers import eth_account_wallet_provider as agentkit_provider
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from chain import agent_wallet_set, deployment, events, fund, in_process, policy
from conftest import ADMIN_KEY
from tee_signer import Refused, Signer, TeeAccount


@pytest.fixture
def chain(monkeypatch):
    w3, identity, reputation, validation = deployment()
    in_process(monkeypatch, agentkit_provider, w3)
    monkeypatch.setitem(agentkit_provider.CHAIN_ID_TO_NETWORK_ID, str(w3.eth.chain_id), "base-sepolia")
    return w3, identity


def test_agentkit_wallet_provider_signs_and_sends_through_the_device(signer_endpoint, chain):
    w3, identity = chain
    chain_id = w3.eth.chain_id
    Signer(signer_endpoint, admin_key=ADMIN_KEY).generate_key(
        1, "agentkit/agent",
        policy(["register(string)", "personal_sign", "AgentWalletSet"], chain_id, [identity.address]),
    )
    account = TeeAccount(signer_endpoint, 1)
    fund(w3, account.address)
    wallet = EthAccountWalletProvider(
        EthAccountWalletProviderConfig(account=account, chain_id=str(chain_id), rpc_url="http://in-process.invalid")
    )
    assert wallet.get_address() == account.address

    # A message and typed data, as agentkit's actions sign them.
    signature = wallet.sign_message("agentkit says hello")
    message = encode_defunct(text="agentkit says hello")
    assert Account.recover_message(message, signature=bytes.fromhex(signature.removeprefix("0x"))) == account.address
    typed = agent_wallet_set(chain_id, identity.address, 1, account.address, account.address, int(time.time()) + 120)
    signature = wallet.sign_typed_data(typed)
    assert account.last_signature["kind"] == "AgentWalletSet"
    recovered = Account.recover_message(
        encode_typed_data(full_message=typed), signature=bytes.fromhex(signature.removeprefix("0x"))
    )
    assert recovered == account.address

    # A registry transaction: agentkit fills nonce, fees and gas, web3.py's
    # middleware has the device sign it, the registry mints the agent.
    data = identity.encode_abi("register", ["ipfs://bafkreiagentkit"])
    tx_hash = wallet.send_transaction({"to": identity.address, "data": data})
    receipt = wallet.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    assert account.last_signature["kind"] == "register(string)"
    (registered,) = events(identity, "Registered", receipt)
    assert registered["args"]["owner"] == account.address

    # What the slot's policy does not name is refused, typed: a plain ETH
    # transfer agentkit's native_transfer action would send.
    with pytest.raises(Refused) as e:
        wallet.send_transaction({"to": w3.eth.accounts[1], "value": 1})
    assert e.value.reason == "KindNotAllowed"
