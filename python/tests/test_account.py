"""`TeeAccount` against a real `tee-signer serve --simulated` process: an
eth_account `LocalAccount` whose key stays in the signer. Every signature
recovers with eth_account; web3.py's signing middleware sends a
transaction through it to an in-process chain (eth-tester on py-evm);
policy refusals arrive as exceptions carrying the device's reason."""

import json
import time

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from chain import agent_wallet_set, policy
from conftest import ADMIN_KEY
from tee_signer import (
    InvalidRequest,
    Refused,
    Signer,
    TeeAccount,
    UnsupportedOperation,
    use_with,
)

IDENTITY = "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"
BASE = 8453
OWNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
# setAgentURI(uint256,string) of agent 42 to "ipfs://bafkreiagent"
SET_AGENT_URI = (
    "0x0af28bd3"
    + (42).to_bytes(32, "big").hex()
    + (64).to_bytes(32, "big").hex()
    + (19).to_bytes(32, "big").hex()
    + b"ipfs://bafkreiagent".ljust(32, b"\0").hex()
)

REGISTRY_POLICY = policy(
    ["setAgentURI", "AgentWalletSet", "personal_sign"],
    BASE,
    [IDENTITY],
    agents=[42],
    max_gas_limit=500000,
    max_fee_per_gas_wei="100000000000",
)


@pytest.fixture(scope="module")
def admin(signer_endpoint):
    return Signer(signer_endpoint, admin_key=ADMIN_KEY)


@pytest.fixture(scope="module")
def account(signer_endpoint, admin):
    admin.generate_key(0, "erc8004/agent-42", REGISTRY_POLICY)
    return TeeAccount(signer_endpoint, 0)


def wallet_set(account, deadline):
    return agent_wallet_set(BASE, IDENTITY, 42, account.address, OWNER, deadline)


def test_it_is_a_local_account_without_a_key(account):
    assert isinstance(account, LocalAccount)
    assert account.address == to_checksum_address(account.address)
    # `key` is a handle naming the slot: no bytes, and eth_account cannot
    # sign with it (unless `use_with` routes it to this account).
    handle = account.key
    assert "TeeKey" in repr(handle) and account.address in repr(handle)
    for leak in (bytes, int, lambda k: k.hex(), lambda k: bytes(HexBytes(k))):
        with pytest.raises((UnsupportedOperation, TypeError), match="TeeKey"):
            leak(handle)
    with pytest.raises(TypeError, match="TeeKey"):
        Account.sign_transaction({"to": IDENTITY, "nonce": 0, "gas": 21000, "gasPrice": 1,
                                  "value": 0, "chainId": BASE}, handle)
    with pytest.raises(UnsupportedOperation):
        account.encrypt("password")
    with pytest.raises(UnsupportedOperation):
        account.unsafe_sign_hash(b"\x11" * 32)


def test_use_with_routes_the_handle_to_the_account_and_nothing_else(account):
    tx = {"to": IDENTITY, "data": SET_AGENT_URI, "value": 0, "nonce": 9, "gas": 200000,
          "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 10**9, "chainId": BASE, "type": 2}
    w3 = Web3()
    undo = use_with(w3)
    try:
        signed = w3.eth.account.sign_transaction(tx, account.key)
        assert signed.raw_transaction == HexBytes(account.last_signature["rawTransaction"])
        assert w3.eth.account.from_key(account.key) is account
        # Another key is signed as eth_account always did.
        plain = Account.create()
        other = w3.eth.account.sign_transaction(tx, plain.key)
        assert Account.recover_transaction(other.raw_transaction) == plain.address
        with pytest.raises(UnsupportedOperation):
            w3.eth.account.unsafe_sign_hash(b"\x11" * 32, account.key)
        # Only that Web3's account routes: the class does not.
        with pytest.raises(TypeError, match="TeeKey"):
            Account.sign_transaction(tx, account.key)
    finally:
        undo()
    with pytest.raises(TypeError, match="TeeKey"):
        w3.eth.account.sign_transaction(tx, account.key)


def test_transactions_as_web3_fills_them(account):
    # EIP-1559, numbers as web3.py fills them (hex strings) and `from`.
    tx = {
        "from": account.address, "to": IDENTITY, "data": SET_AGENT_URI, "value": "0x0",
        "nonce": "0x7", "gas": "0x30d40", "chainId": hex(BASE), "type": "0x2",
        "maxFeePerGas": hex(30 * 10**9), "maxPriorityFeePerGas": hex(10**9),
    }
    signed = account.sign_transaction(tx)
    assert Account.recover_transaction(signed.raw_transaction) == account.address
    assert signed.hash == keccak(signed.raw_transaction)
    assert signed.v in (0, 1)
    # The signature is attested, bound to its digest.
    bound = account.last_attestation["bound"]
    assert bound == {"purpose": "action_digest", "value": account.last_signature["digest"]}
    assert account.last_signature["kind"] == "setAgentURI"

    # Legacy (type 0, EIP-155), ints and bytes.
    legacy = {
        "to": IDENTITY, "data": bytes.fromhex(SET_AGENT_URI[2:]), "value": 0, "nonce": 8,
        "gas": 200_000, "chainId": BASE, "gasPrice": 10 * 10**9,
    }
    signed = account.sign_transaction(legacy)
    assert Account.recover_transaction(signed.raw_transaction) == account.address
    assert signed.v in (BASE * 2 + 35, BASE * 2 + 36)
    assert account.last_signature["request"]["type"] == "0x0"


def test_messages_and_typed_data(account):
    signed = account.sign_message(encode_defunct(text="hello, agent"))
    assert Account.recover_message(encode_defunct(text="hello, agent"), signature=signed.signature) == account.address

    deadline = int(time.time()) + 120
    full = wallet_set(account, deadline)
    signed = account.sign_typed_data(full_message=full)
    assert account.last_signature["kind"] == "AgentWalletSet"
    assert Account.recover_message(encode_typed_data(full_message=full), signature=signed.signature) == account.address
    # In parts, as eth_account's own sign_typed_data takes them.
    parts = account.sign_typed_data(full["domain"], {"AgentWalletSet": full["types"]["AgentWalletSet"]}, full["message"])
    assert parts.signature == signed.signature


def test_refusals_carry_the_device_reason(account):
    # A transaction to a contract the policy does not name: a generic
    # (blind) transaction, which this slot does not sign.
    tx = {
        "to": OWNER, "value": 1, "nonce": 9, "gas": 21000, "chainId": BASE,
        "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 1,
    }
    with pytest.raises(Refused) as e:
        account.sign_transaction(tx)
    assert e.value.reason == "KindNotAllowed"
    # Pre-hashed typed data (EIP-191 version 0x01), blind: refused too.
    other = wallet_set(account, int(time.time()) + 120)
    other["domain"]["name"] = "SomeToken"
    with pytest.raises(Refused) as e:
        account.sign_message(encode_typed_data(full_message=other))
    assert e.value.reason == "KindNotAllowed"
    # A consent for another wallet than this key.
    bad = wallet_set(account, int(time.time()) + 120)
    bad["message"]["newWallet"] = OWNER
    with pytest.raises(Refused) as e:
        account.sign_typed_data(full_message=bad)
    assert e.value.reason == "WalletIsNotSigner"
    # `from` another account; a field the signer does not know.
    with pytest.raises(InvalidRequest):
        account.sign_transaction({**tx, "to": IDENTITY, "data": SET_AGENT_URI, "value": 0, "from": OWNER})
    with pytest.raises(InvalidRequest) as e:
        account.sign_transaction({**tx, "maxFeePerGass": 1})
    assert "maxFeePerGass" in str(e.value)


def test_web3_signing_middleware_on_an_in_process_chain(signer_endpoint, admin):
    from web3 import EthereumTesterProvider, Web3
    from web3.middleware import SignAndSendRawMiddlewareBuilder

    w3 = Web3(EthereumTesterProvider())
    chain_id = w3.eth.chain_id
    admin.generate_key(
        1,
        "erc8004/payments",
        f"""
kinds = ["generic-tx"]
chains = [{chain_id}]
contracts = "any"
agents = "any"
max_value_wei = "1000000000000000000"
max_gas_limit = 3000000
max_fee_per_gas_wei = "1000000000000"
max_deadline_ahead_secs = 300
""",
    )
    account = TeeAccount(signer_endpoint, 1)
    funder = w3.eth.accounts[0]
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": funder, "to": account.address, "value": 5 * 10**18})
    )
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    payee = "0x" + "42" * 20
    tx_hash = w3.eth.send_transaction({"from": account.address, "to": to_checksum_address(payee), "value": 12345})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    assert receipt["from"] == account.address
    assert w3.eth.get_balance(to_checksum_address(payee)) == 12345
    assert account.last_signature["transactionHash"] == "0x" + bytes(tx_hash).hex()
    # Over the policy's value cap: the device refuses, the chain sees nothing.
    with pytest.raises(Refused) as e:
        w3.eth.send_transaction({"from": account.address, "to": to_checksum_address(payee), "value": 2 * 10**18})
    assert e.value.reason == "ValueTooHigh"


def test_a_spend_cap_stops_the_payment_that_would_pass_it(signer_endpoint, admin):
    """web3.py's signing middleware pays from slot 6 under a daily spend cap
    of 0.3 ether: 0.2 goes through and lands; the next 0.2 is refused with
    what the day has left, and the chain never sees it; 0.1 still fits."""
    from web3 import EthereumTesterProvider, Web3
    from web3.middleware import SignAndSendRawMiddlewareBuilder

    w3 = Web3(EthereumTesterProvider())
    chain_id = w3.eth.chain_id
    admin.generate_key(
        6,
        "erc8004/capped-payments",
        policy(
            ["generic-tx"],
            chain_id,
            extra='max_value_wei = "1000000000000000000"\n'
            'spend_cap = { max_wei = "300000000000000000", window_secs = 86400 }\n',
        ).replace('max_value_wei = "0"\n', ""),
    )
    account = TeeAccount(signer_endpoint, 6)
    funder = w3.eth.accounts[0]
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": funder, "to": account.address, "value": 10**18})
    )
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    payee = to_checksum_address("0x" + "43" * 20)
    pay = lambda wei: w3.eth.send_transaction({"from": account.address, "to": payee, "value": wei})  # noqa: E731
    assert w3.eth.wait_for_transaction_receipt(pay(2 * 10**17))["status"] == 1
    with pytest.raises(Refused) as e:
        pay(2 * 10**17)
    assert e.value.reason == "SpendCapExceeded"
    assert "100000000000000000 wei" in str(e.value), str(e.value)
    assert w3.eth.get_balance(payee) == 2 * 10**17
    assert w3.eth.wait_for_transaction_receipt(pay(10**17))["status"] == 1
    assert w3.eth.get_balance(payee) == 3 * 10**17


def test_the_signer_verifies_its_own_signature_under_a_pinned_policy(signer_endpoint, account):
    account.sign_message(encode_defunct(text="attested"))
    # Unpinned: the verifier refuses to give a verdict.
    report = json.loads(account.signer.verify(json.dumps(account.last_signature)))
    assert report["verified"] is False


def test_typed_data_handed_over_as_two_hashes_in_an_allowed_domain(signer_endpoint, admin):
    """agent0-sdk hands the account only `encode_typed_data(...)`: EIP-191
    version 0x01, the domain separator and the struct hash. A policy that
    names the pre-hashed kind only for the identity registry's domain signs
    its AgentWalletSet that way, and refuses pre-hashed data of any other
    domain (blind typed data in general stays off)."""
    probe = TeeAccount(signer_endpoint, 0)
    registry_domain = encode_typed_data(full_message=wallet_set(probe, 0)).header
    admin.generate_key(
        5,
        "erc8004/agent0",
        policy(
            ["eip712-prehashed"],
            BASE,
            [IDENTITY],
            agents=[42],
            max_gas_limit=0,
            max_fee_per_gas_wei="0",
            extra=f'eip712_domains = ["0x{bytes(registry_domain).hex()}"]\n',
        ),
    )
    account = TeeAccount(signer_endpoint, 5)
    consent = encode_typed_data(full_message=wallet_set(account, int(time.time()) + 120))
    signed = account.sign_message(consent)
    assert Account.recover_message(consent, signature=signed.signature) == account.address
    assert account.last_signature["kind"] == "eip712-prehashed"
    other = wallet_set(account, int(time.time()) + 120)
    other["domain"]["name"] = "SomeToken"
    with pytest.raises(Refused) as e:
        account.sign_message(encode_typed_data(full_message=other))
    assert e.value.reason == "DomainNotAllowed"
