"""m-of-n approvals from Python: a `TeeAccount` whose slot's policy holds
transfers above 0.1 ETH for 2 of 3 approvers gets `ApprovalRequired` with
EIP-712 typed data; the approvers sign it with eth-account (any wallet
would do), the account signs again with their signatures, and the
transaction lands on the in-process chain. Fewer approvals, a stranger's,
and approvals reused for another transaction get no signature."""

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import EthereumTesterProvider, Web3

from chain import fund, policy
from conftest import ADMIN_KEY
from tee_signer import ApprovalRequired, Refused, Signer, TeeAccount

APPROVERS = [Account.create() for _ in range(3)]
STRANGER = Account.create()
PAYEE = Web3.to_checksum_address("0x" + "5a" * 20)
BOUND = 10**17


@pytest.fixture(scope="module")
def chain():
    return Web3(EthereumTesterProvider())


@pytest.fixture(scope="module")
def account(signer_endpoint, chain):
    """Slot 3: transfers of up to 1 ETH; above 0.1 ETH, 2 of 3 approvers."""
    approvers = ", ".join(f'"{a.address}"' for a in APPROVERS)
    Signer(signer_endpoint, admin_key=ADMIN_KEY).generate_key(
        3,
        "approvals/agent",
        policy(["generic-tx"], chain.eth.chain_id).replace(
            'max_value_wei = "0"', f'max_value_wei = "{10**18}"'
        )
        + f'approvals = {{ approvers = [{approvers}], threshold = 2, '
        f'above_value_wei = "{BOUND}", max_ttl_secs = 600 }}\n',
    )
    account = TeeAccount(signer_endpoint, 3)
    fund(chain, account.address, 5 * 10**18)
    return account


def transfer(chain, account, value):
    return {
        "type": 2,
        "chainId": chain.eth.chain_id,
        "nonce": chain.eth.get_transaction_count(account.address),
        "to": PAYEE,
        "value": value,
        "gas": 21000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1,
    }


def approve(request, *keys):
    return [Account.sign_typed_data(k.key, full_message=request["typedData"]).signature for k in keys]


def test_two_of_three_approve_a_transfer_above_the_bound(chain, account):
    small = account.sign_transaction(transfer(chain, account, BOUND))
    chain.eth.wait_for_transaction_receipt(chain.eth.send_raw_transaction(small.raw_transaction))

    tx = transfer(chain, account, 5 * BOUND)
    with pytest.raises(ApprovalRequired) as held:
        account.sign_transaction(tx)
    request = held.value.request
    asked = request["approvalRequest"]
    assert held.value.reason == "ApprovalRequired"
    assert (asked["need"], asked["have"]) == (2, 0)
    assert asked["approvers"] == [a.address for a in APPROVERS]
    # eth-account reads the typed data as the signer does: the digest it
    # signs is the one the signer recovers approvers from.
    signable = encode_typed_data(full_message=request["typedData"])
    one = approve(request, APPROVERS[0])
    assert Account.recover_message(signable, signature=one[0]) == APPROVERS[0].address

    # One approver, the same one twice, one and a stranger: held.
    for sigs in (one, one + one, one + approve(request, STRANGER)):
        with pytest.raises(ApprovalRequired) as again:
            account.approved(request, sigs).sign_transaction(tx)
        assert again.value.request["approvalRequest"]["have"] == 1

    before = chain.eth.get_balance(PAYEE)
    approved = account.approved(request, approve(request, APPROVERS[2], APPROVERS[1]))
    signed = approved.sign_transaction(tx)
    chain.eth.wait_for_transaction_receipt(chain.eth.send_raw_transaction(signed.raw_transaction))
    assert chain.eth.get_balance(PAYEE) == before + 5 * BOUND
    assert approved.last_signature["sequence"] == asked["sequence"]
    assert approved.last_attestation is not None

    # The approvals were for that transaction at that sequence: another
    # transfer with them is a replay of the sequence; without them, held.
    nxt = transfer(chain, account, 5 * BOUND)
    with pytest.raises(Refused) as replay:
        account.approved(request, approve(request, APPROVERS[0], APPROVERS[1])).sign_transaction(nxt)
    assert replay.value.reason.startswith("Replay"), replay.value.reason
    with pytest.raises(ApprovalRequired):
        account.sign_transaction(nxt)
