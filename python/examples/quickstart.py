"""Quick start: a TEE key as an eth_account account, with nothing but the
`tee-signer` wheel installed. Start a signer on the built-in simulated TEE
first (the wheel installs the command), its admin anvil's account 0:

    tee-signer serve --simulated --state /tmp/tee-state --listen unix:/tmp/tee-signer.sock \\
        --admin 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 &
    python quickstart.py
"""

import os
import time

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from tee_signer import Refused, Signer, TeeAccount

endpoint = os.environ.get("TEE_SIGNER_ENDPOINT", "unix:/tmp/tee-signer.sock")
identity_registry = "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"  # ERC-8004 on Base
# The admin (anvil's account 0: a public test key) puts a key in slot 0 under a
# policy that signs one thing: the identity registry's AgentWalletSet on Base.
admin = Signer(endpoint, admin_key=bytes.fromhex(
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"))
admin.generate_key(0, "quickstart/agent", f"""
kinds = ["AgentWalletSet"]
chains = [8453]
contracts = ["{identity_registry}"]
agents = "any"
max_value_wei = "0"
max_gas_limit = 1000000
max_fee_per_gas_wei = "100000000000"
max_deadline_ahead_secs = 300
""")

account = TeeAccount(endpoint, slot=0)  # an eth_account LocalAccount; the key stays in the signer
consent = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                         {"name": "chainId", "type": "uint256"},
                         {"name": "verifyingContract", "type": "address"}],
        "AgentWalletSet": [{"name": "agentId", "type": "uint256"}, {"name": "newWallet", "type": "address"},
                           {"name": "owner", "type": "address"}, {"name": "deadline", "type": "uint256"}],
    },
    "primaryType": "AgentWalletSet",
    "domain": {"name": "ERC8004IdentityRegistry", "version": "1", "chainId": 8453,
               "verifyingContract": identity_registry},
    "message": {"agentId": 42, "newWallet": account.address,
                "owner": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "deadline": int(time.time()) + 60},
}
signed = account.sign_typed_data(full_message=consent)
assert Account.recover_message(encode_typed_data(full_message=consent), signature=signed.signature) == account.address
print("signed by", account.address, "attested:", account.last_attestation["bound"]["purpose"])

try:  # anything else is refused, with the policy's reason
    account.sign_message(encode_defunct(text="sign this too"))
except Refused as e:
    print("refused:", e.reason)
