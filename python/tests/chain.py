"""The in-process chain the on-chain tests share: eth-tester on py-evm, and
the ERC-8004 v2.0.0 registries (compiled from upstream, data/README.md)
deployed behind their proxies as upstream deploys them."""

import json
import pathlib

from web3 import EthereumTesterProvider, Web3
from web3.logs import DISCARD

ARTIFACTS = json.loads(
    (pathlib.Path(__file__).parent / "data" / "erc8004-v2.0.0.json").read_text()
)


def deploy(w3, name, *args):
    a = ARTIFACTS[name]
    c = w3.eth.contract(abi=a["abi"], bytecode=a["bytecode"])
    tx = c.constructor(*args).transact({"from": w3.eth.accounts[0]})
    return w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]


def registry(w3, name, init_args):
    """`name` behind an ERC1967 proxy: the proxy starts on the minimal UUPS
    implementation and is upgraded to the registry with its initializer, as
    upstream deploys it."""
    owner = w3.eth.accounts[0]
    minimal = w3.eth.contract(abi=ARTIFACTS["HardhatMinimalUUPS"]["abi"])
    identity = init_args[0] if init_args else "0x" + "00" * 20
    init = minimal.encode_abi("initialize", [identity])
    proxy = deploy(w3, "ERC1967Proxy", deploy(w3, "HardhatMinimalUUPS"), init)
    impl = deploy(w3, name)
    real = w3.eth.contract(address=proxy, abi=ARTIFACTS[name]["abi"])
    data = real.encode_abi("initialize", init_args)
    upgrade = w3.eth.contract(address=proxy, abi=ARTIFACTS["HardhatMinimalUUPS"]["abi"])
    w3.eth.wait_for_transaction_receipt(
        upgrade.functions.upgradeToAndCall(impl, data).transact({"from": owner})
    )
    assert real.functions.getVersion().call() == "2.0.0"
    return real


def policy(
    kinds,
    chain_id=None,
    contracts=None,
    *,
    agents=None,
    max_gas_limit=3000000,
    max_fee_per_gas_wei="1000000000000",
    extra="",
):
    """A slot policy file (TOML): `kinds` on `chain_id`, `contracts` and
    `agents` (each any when not given), the gas and fee caps, `extra` lines."""
    any_or = lambda v, text: '"any"' if v is None else text  # noqa: E731
    return f"""
kinds = {json.dumps(kinds)}
chains = {any_or(chain_id, f"[{chain_id}]")}
contracts = {any_or(contracts, json.dumps(contracts))}
agents = {any_or(agents, json.dumps(agents))}
max_value_wei = "0"
max_gas_limit = {max_gas_limit}
max_fee_per_gas_wei = "{max_fee_per_gas_wei}"
max_deadline_ahead_secs = 300
{extra}"""


def tee_accounts(w3, endpoint, admin_key, prefix, slots, contracts):
    """A funded `TeeAccount` per role of `slots` (role -> (slot, kinds)):
    the admin puts dstack's key for `{prefix}/{role}` in the slot, under a
    policy allowing `kinds` on `contracts` of this chain."""
    from tee_signer import Signer, TeeAccount

    admin = Signer(endpoint, admin_key=admin_key)
    accounts = {}
    for who, (slot, kinds) in slots.items():
        admin.generate_key(slot, f"{prefix}/{who}", policy(kinds, w3.eth.chain_id, contracts))
        accounts[who] = TeeAccount(endpoint, slot)
        fund(w3, accounts[who].address)
    return accounts


def events(contract, name, receipt):
    return getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD)


def deployment():
    """A fresh chain with the three registries: (w3, identity, reputation, validation)."""
    w3 = Web3(EthereumTesterProvider())
    identity = registry(w3, "IdentityRegistryUpgradeable", [])
    reputation = registry(w3, "ReputationRegistryUpgradeable", [identity.address])
    validation = registry(w3, "ValidationRegistryUpgradeable", [identity.address])
    return w3, identity, reputation, validation


def fund(w3, address, wei=10**18):
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": address, "value": wei})
    )


def agent_wallet_set(chain_id, identity, agent_id, wallet, owner, deadline):
    """The identity registry's `AgentWalletSet` consent as eth_signTypedData_v4
    JSON (`identity`: the registry's address)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "AgentWalletSet": [
                {"name": "agentId", "type": "uint256"},
                {"name": "newWallet", "type": "address"},
                {"name": "owner", "type": "address"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "AgentWalletSet",
        "domain": {"name": "ERC8004IdentityRegistry", "version": "1", "chainId": chain_id,
                   "verifyingContract": identity},
        "message": {"agentId": agent_id, "newWallet": wallet, "owner": owner, "deadline": deadline},
    }


def _to_json_rpc(value):
    """web3.py's Python values back into JSON-RPC's: numbers as hex
    quantities, bytes as hex data."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _to_json_rpc(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_rpc(v) for v in value]
    return str(value)


class JsonRpcEndpoint:
    """The in-process chain behind a real HTTP JSON-RPC endpoint on
    127.0.0.1 (what any node offers), so tools outside this process (the
    `tee-signer validate` and `verdict` commands) read and send to it."""

    def __init__(self, w3):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, body):
                answer = {"jsonrpc": "2.0", "id": body.get("id")}
                try:
                    with lock:
                        result = w3.manager.request_blocking(body["method"], body.get("params", []))
                    answer["result"] = _to_json_rpc(result)
                except Exception as e:  # the node's error, as a node reports it
                    answer["error"] = {"code": -32000, "message": f"{type(e).__name__}: {e}"}
                return answer

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                # A batch (ethers sends them) is its requests, answered in order.
                if isinstance(body, list):
                    answer = [self.answer(r) for r in body]
                else:
                    answer = self.answer(body)
                out = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def in_process(monkeypatch, module, w3):
    """Gives an SDK's `module.Web3` the in-process chain `w3` for any RPC
    URL it is handed."""

    class InProcess(module.Web3):
        @staticmethod
        def HTTPProvider(url, **kwargs):  # noqa: N802 (web3's name)
            return w3.provider

    monkeypatch.setattr(module, "Web3", InProcess)
