"""An attested signature from Python on a kept connection: `TeeAccount`
(over the native provider and its session) signing personal messages on a
`tee-signer serve --simulated`, p50 and p99 in milliseconds, beside the
same provider's first call (a new connection, DeviceInfo asked).

    TEE_SIGNER_BIN=target/release/tee-signer python python/bench/latency.py [RUNS]

Run with the venv that has the `tee_signer` wheel installed (`.ci/run` makes
`.venv`); the figures go in docs/performance.md.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from eth_account.messages import encode_defunct
from tee_signer import Signer, TeeAccount

ADMIN_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
ADMIN = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
POLICY = """
kinds = ["personal_sign"]
chains = "any"
contracts = "any"
agents = "any"
max_value_wei = "0"
max_gas_limit = 0
max_fee_per_gas_wei = "0"
max_deadline_ahead_secs = 300
"""


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    binary = os.environ.get("TEE_SIGNER_BIN", "target/release/tee-signer")
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "signer.sock"
        proc = subprocess.Popen(
            [binary, "serve", "--simulated", "--state", f"{tmp}/state",
             "--listen", f"unix:{sock}", "--admin", ADMIN],
            stderr=subprocess.PIPE, text=True,
        )
        for line in proc.stderr:
            if "signer running" in line:
                break
        else:
            raise SystemExit("the signer exited before it was running")
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        try:
            endpoint = f"unix:{sock}"
            Signer(endpoint, admin_key=ADMIN_KEY).generate_key(0, "bench/python", POLICY)
            start = time.perf_counter()
            account = TeeAccount(endpoint, 0)
            account.sign_message(encode_defunct(text="first"))
            first = (time.perf_counter() - start) * 1e3
            times = []
            for i in range(runs):
                start = time.perf_counter()
                account.sign_message(encode_defunct(text=f"message {i}"))
                times.append((time.perf_counter() - start) * 1e3)
            times.sort()
            p50 = statistics.median(times)
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(f"{runs} attested personal_sign signatures through TeeAccount, kept connection")
            print(f"p50 {p50:.3f} ms, p99 {p99:.3f} ms; a new account's first: {first:.3f} ms")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
