"""Writes deploy/app-compose.json from deploy/docker-compose.yml: the
app-compose file dstack deploys (its compose hash is what validators pin),
keys sorted and no spaces, as dstack's SDKs write it (get_compose_hash).

    python3 deploy/app-compose.py
"""

import json
from pathlib import Path

here = Path(__file__).resolve().parent
app = {
    "allowed_envs": [],
    "docker_compose_file": (here / "docker-compose.yml").read_text(),
    "gateway_enabled": False,
    "kms_enabled": True,
    "manifest_version": 2,
    "name": "erc8004-tee-signer",
    "no_instance_id": False,
    "public_logs": False,
    "public_sysinfo": True,
    "runner": "docker-compose",
}
(here / "app-compose.json").write_text(json.dumps(app, sort_keys=True, separators=(",", ":")))
