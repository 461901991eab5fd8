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
