"""Fixtures: the `tee-signer` binary's processes, as a user starts them."""

import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tee_signer() -> str:
    """The tee-signer binary: $TEE_SIGNER_BIN, else the workspace's debug build."""
    path = os.environ.get("TEE_SIGNER_BIN", str(ROOT / "target" / "debug" / "tee-signer"))
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build it (cargo build -p tee-std) or set TEE_SIGNER_BIN")
    return path


@pytest.fixture(scope="module")
def sim_dstack(tmp_path_factory):
    """`tee-signer sim-dstack` on a unix socket: the socket's path."""
    sock = tmp_path_factory.mktemp("sim") / "dstack.sock"
    proc = subprocess.Popen(
        [tee_signer(), "sim-dstack", "--listen", f"unix:{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None:
            pytest.fail(f"sim-dstack exited: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("sim-dstack did not start in 20 s")
        time.sleep(0.02)
    yield str(sock)
    proc.terminate()
    proc.wait(timeout=10)
    proc.stderr.close()


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
    proc = subprocess.Popen(
        [
            tee_signer(), "serve", "--simulated", "--state", str(tmp / "state"),
            "--listen", f"unix:{sock}", "--admin", ADMIN,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None:
            pytest.fail(f"tee-signer serve exited: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("tee-signer serve did not start in 20 s")
        time.sleep(0.02)
    yield f"unix:{sock}"
    proc.terminate()
    proc.wait(timeout=10)
    proc.stderr.close()
