"""Fixtures: the `tee-signer` binary's processes, as a user starts them."""

import os
import pathlib
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tee_signer() -> str:
    """The tee-signer binary: $TEE_SIGNER_BIN, else the workspace's debug build."""
    path = os.environ.get("TEE_SIGNER_BIN", str(ROOT / "target" / "debug" / "tee-signer"))
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build it (cargo build -p tee-signer) or set TEE_SIGNER_BIN")
    return path


def start(args: list[str], stream: str, ready: str) -> subprocess.Popen:
    """Starts `tee-signer ARGS` and returns once it prints `ready` on
    `stream` ("stdout" or "stderr"): no clock, its output ending first means
    it exited, and the failure shows what it said. The rest of that output
    is drained so it never blocks on a full pipe; the line that said it is
    `proc.ready_line`."""
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: subprocess.PIPE}
    proc = subprocess.Popen([tee_signer(), *args], text=True, **pipes)
    out = getattr(proc, stream)
    seen = []
    for line in out:
        seen.append(line)
        if ready in line:
            proc.ready_line = line
            threading.Thread(target=out.read, daemon=True).start()
            return proc
    proc.wait()
    pytest.fail(f"tee-signer {args[0]} exited before it was ready:\n{''.join(seen)}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture(scope="module")
def sim_dstack(tmp_path_factory):
    """`tee-signer sim-dstack` on a unix socket: the socket's path."""
    sock = tmp_path_factory.mktemp("sim") / "dstack.sock"
    proc = start(["sim-dstack", "--listen", f"unix:{sock}"], "stdout", "simulated dstack at")
    yield str(sock)
    stop(proc)


#: anvil's account 0: the signer's admin in these tests (its key only
#: authorizes admin commands; it never signs an action).
ADMIN_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
ADMIN = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.fixture(scope="module")
def signer_endpoint(tmp_path_factory):
    """`tee-signer serve --simulated` on a unix socket, as an operator starts
    it (admin: ADMIN): the endpoint string."""
    tmp = tmp_path_factory.mktemp("signer")
    sock = tmp / "signer.sock"
    proc = start(
        [
            "serve", "--simulated", "--state", str(tmp / "state"),
            "--listen", f"unix:{sock}", "--admin", ADMIN,
        ],
        "stderr",
        "signer running",
    )
    yield f"unix:{sock}"
    stop(proc)
