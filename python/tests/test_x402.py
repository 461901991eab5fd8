"""x402 payments and ERC-20 transfers from a TEE key, under the slot's token
rules, on an in-process chain.

The released x402 package does both ends: its client (`ExactEvmScheme`,
which wraps any eth_account account, here a `TeeAccount`) signs the
EIP-3009 `TransferWithAuthorization` that a `402 Payment Required` asks
for; its facilitator (`FacilitatorWeb3Signer` over the chain's JSON-RPC)
verifies the payment with its own checks and settles it on chain, against
`contracts/AuthorizedToken.sol` (an EIP-3009 token as USDC implements it).
The signer reads the typed data as the typed action, so the slot's token
rule bounds it: a payment above the token's `max_amount`, to a payee the
policy does not name, or in a token it does not name never gets a
signature. web3.py's ERC-20 `transfer` through the same account is the
typed `transfer` action under the same rule."""

import json
import pathlib

import pytest
from eth_account import Account
from web3 import EthereumTesterProvider, Web3
from web3.middleware import SignAndSendRawMiddlewareBuilder

from chain import JsonRpcEndpoint, fund, policy
from conftest import ADMIN_KEY
from tee_signer import Refused, Signer, TeeAccount

x402 = pytest.importorskip("x402")
from x402 import x402ClientSync, x402FacilitatorSync  # noqa: E402
from x402.mechanisms.evm.exact import (  # noqa: E402
    register_exact_evm_client,
    register_exact_evm_facilitator,
)
from x402.mechanisms.evm.signers import FacilitatorWeb3Signer  # noqa: E402
from x402.schemas import PaymentRequired, PaymentRequirements  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKEN = json.loads((ROOT / "contracts" / "artifacts.json").read_text())["contracts"][
    "AuthorizedToken"
]
USDC = 10**6
#: The most one payment may move: five USDC.
MAX = 5 * USDC
#: The most all payments may move in a day: ten USDC.
CAP = 10 * USDC
PAYEE = Web3.to_checksum_address("0x" + "5a" * 20)
STRANGER = Web3.to_checksum_address("0x" + "5e" * 20)


@pytest.fixture(scope="module")
def chain():
    """eth-tester with the token deployed (`USD Coin`, version `2`, as
    USDC's domain), served over HTTP for the facilitator."""
    w3 = Web3(EthereumTesterProvider())
    deployer = w3.eth.accounts[0]
    factory = w3.eth.contract(abi=TOKEN["abi"], bytecode=TOKEN["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor("USD Coin", "2").transact({"from": deployer})
    )
    token = w3.eth.contract(address=receipt["contractAddress"], abi=TOKEN["abi"])
    node = JsonRpcEndpoint(w3)
    yield w3, token, node
    node.close()


@pytest.fixture(scope="module")
def payer(signer_endpoint, chain):
    """Slot 1: x402 payments and ERC-20 transfers of the token only, at most
    five USDC each and ten a day, to PAYEE only; funded with 100 USDC and
    gas."""
    w3, token, _ = chain
    admin = Signer(signer_endpoint, admin_key=ADMIN_KEY)
    admin.generate_key(
        1,
        "x402/payer",
        policy(
            ["TransferWithAuthorization", "transfer"],
            w3.eth.chain_id,
            extra=f'tokens = [{{ token = "{token.address}", max_amount = "{MAX}", '
            f'cap = {{ max = "{CAP}", window_secs = 86400 }} }}]\n'
            f'recipients = ["{PAYEE}"]\n',
        ),
    )
    account = TeeAccount(signer_endpoint, 1)
    fund(w3, account.address)
    w3.eth.wait_for_transaction_receipt(
        token.functions.mint(account.address, 100 * USDC).transact({"from": w3.eth.accounts[0]})
    )
    return account


def x402_client(payer):
    """x402's client around the account, its own spend controls off: they
    run in the agent's process, which the threat model does not trust, so
    what stops a payment here is the signer's rule."""
    client = register_exact_evm_client(x402ClientSync(), payer)
    client.set_spend_controls(False)
    return client


def required(w3, token, amount, pay_to=PAYEE):
    """The server's `402 Payment Required`: `amount` of the token to `pay_to`."""
    return PaymentRequired(
        accepts=[
            PaymentRequirements(
                scheme="exact",
                network=f"eip155:{w3.eth.chain_id}",
                asset=token.address,
                amount=str(amount),
                pay_to=pay_to,
                max_timeout_seconds=120,
                extra={"name": "USD Coin", "version": "2"},
            )
        ]
    )


def facilitator_on(w3, node):
    """x402's own facilitator: its key pays the gas, its checks verify."""
    operator = Account.create()
    fund(w3, operator.address)
    return register_exact_evm_facilitator(
        x402FacilitatorSync(),
        FacilitatorWeb3Signer(private_key=operator.key.hex(), rpc_url=node.url),
        networks=f"eip155:{w3.eth.chain_id}",
    )


def test_an_x402_payment_signed_in_the_tee_verifies_and_settles_with_x402s_facilitator(
    chain, payer
):
    w3, token, node = chain
    client = x402_client(payer)
    payment = client.create_payment_payload(required(w3, token, 2 * USDC))
    # The signature is the slot's, over the typed action the signer read.
    auth = payment.payload["authorization"]
    assert auth["from"] == payer.address and auth["to"] == PAYEE
    assert payer.last_signature["kind"] == "TransferWithAuthorization"

    facilitator = facilitator_on(w3, node)
    requirements = payment.accepted
    verdict = facilitator.verify(payment, requirements)
    assert verdict.is_valid, verdict
    assert verdict.payer == payer.address
    settled = facilitator.settle(payment, requirements)
    assert settled.success, settled
    assert token.functions.balanceOf(PAYEE).call() == 2 * USDC
    # The token runs an authorization once: the same payment again is not.
    again = facilitator.settle(payment, requirements)
    assert not again.success
    assert token.functions.balanceOf(PAYEE).call() == 2 * USDC


@pytest.mark.parametrize(
    ("amount", "pay_to", "reason"),
    [
        (MAX + 1, PAYEE, "TokenAmountTooHigh"),
        (1, STRANGER, "RecipientNotAllowed"),
    ],
)
def test_a_payment_outside_the_token_rule_gets_no_signature(chain, payer, amount, pay_to, reason):
    w3, token, _ = chain
    client = x402_client(payer)
    with pytest.raises(Refused) as e:
        client.create_payment_payload(required(w3, token, amount, pay_to))
    assert e.value.reason == reason, str(e.value)


def test_a_payment_in_a_token_the_policy_does_not_name_gets_no_signature(chain, payer):
    w3, token, _ = chain
    other = Web3.to_checksum_address("0x" + "70" * 20)
    client = x402_client(payer)
    pay = required(w3, token, 1)
    pay.accepts[0].asset = other
    with pytest.raises(Refused) as e:
        client.create_payment_payload(pay)
    assert e.value.reason == "TokenNotAllowed", str(e.value)


def test_an_erc20_transfer_is_the_typed_transfer_under_the_same_rule(chain, payer):
    """web3.py's contract call through the signing middleware: the signer
    reads the calldata as `transfer`, so the token's bound holds for it as
    for a payment."""
    w3, token, _ = chain
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(payer), layer=0, name="tee")
    try:
        before = token.functions.balanceOf(PAYEE).call()
        tx = token.functions.transfer(PAYEE, 3 * USDC).transact({"from": payer.address})
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
        assert payer.last_signature["kind"] == "transfer"
        assert token.functions.balanceOf(PAYEE).call() == before + 3 * USDC
        for amount, to, reason in [
            (MAX + 1, PAYEE, "TokenAmountTooHigh"),
            (1, STRANGER, "RecipientNotAllowed"),
        ]:
            with pytest.raises(Refused) as e:
                token.functions.transfer(to, amount).transact({"from": payer.address})
            assert e.value.reason == reason, str(e.value)
        assert token.functions.balanceOf(STRANGER).call() == 0
    finally:
        w3.middleware_onion.remove("tee")


def test_the_days_cap_stops_the_next_payment(chain, payer):
    """Every payment so far went to PAYEE: what the day has left is the cap
    less PAYEE's balance. A payment of exactly that settles; the next,
    of one unit, is refused with nothing left, and never reaches the chain."""
    w3, token, node = chain
    left = CAP - token.functions.balanceOf(PAYEE).call()
    assert 0 < left <= MAX
    client = x402_client(payer)
    payment = client.create_payment_payload(required(w3, token, left))
    facilitator = facilitator_on(w3, node)
    assert facilitator.settle(payment, payment.accepted).success
    assert token.functions.balanceOf(PAYEE).call() == CAP
    with pytest.raises(Refused) as e:
        client.create_payment_payload(required(w3, token, 1))
    assert e.value.reason == "SpendCapExceeded", str(e.value)
    assert "0 of" in str(e.value) or "above the 0" in str(e.value), str(e.value)
