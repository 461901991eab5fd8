"""A chain node over HTTP JSON-RPC for tools outside Python (the TypeScript
tests in js/, a `curl` by hand): eth-tester on py-evm with the ERC-8004
v2.0.0 registries deployed (chain.py), served on 127.0.0.1.

    python python/tests/chain_node.py

prints one JSON line, {"url", "chainId", "identity", "reputation",
"validation", "funder"} (the funder an unlocked account of the node, which
sends `eth_sendTransaction` itself), then serves until stdin closes."""

import json
import sys

from chain import JsonRpcEndpoint, deployment


def main() -> None:
    w3, identity, reputation, validation = deployment()
    node = JsonRpcEndpoint(w3)
    print(json.dumps({
        "url": node.url,
        "chainId": w3.eth.chain_id,
        "identity": identity.address,
        "reputation": reputation.address,
        "validation": validation.address,
        "funder": w3.eth.accounts[0],
    }), flush=True)
    sys.stdin.read()
    node.close()


if __name__ == "__main__":
    main()
