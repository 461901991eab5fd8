"""The official Python dstack SDK (PyPI dstack-sdk 0.5.x) against
`tee-signer sim-dstack`, as agent code would use it: every method of
`DstackClient`, checked on its values, with independent libraries where a
value can be checked (eth-keys for the KMS chains, `cryptography` for
signatures and certificates, hashlib for the compose hash and RTMR3).
"""

import asyncio
import hashlib
import json

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from dstack_sdk import AsyncDstackClient, DstackClient, get_compose_hash
from dstack_sdk.ethereum import to_account_secure
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

# The demo's simulated KMS root (a public secret, never fund it).
KMS_ROOT = "0x504e4FbaB7bC2962b361E3730B965E61F289d0cC"
DEMO_APP_ID = bytes([0xA9] * 20)
# TDX quote v4: 48-byte header, then the TD report: RTMR3 at +472, report_data at +520.
RTMR3 = slice(48 + 472, 48 + 520)
REPORT_DATA = slice(48 + 520, 48 + 584)


@pytest.fixture
def client(sim_dstack):
    return DstackClient(sim_dstack)


def recover(signature: bytes, digest: bytes) -> keys.PublicKey:
    """The key whose recoverable signature (r || s || v) over digest this is."""
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    sig = keys.Signature(
        vrs=(v, int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"))
    )
    return sig.recover_public_key_from_msg_hash(digest)


def compressed(pk: keys.PublicKey) -> bytes:
    return pk.to_compressed_bytes()


def check_chain(chain: list, public_hex: str, purpose: str) -> None:
    """dstack's key chain: the app key signed "{purpose}:{hex(key)}", the KMS
    root signed "dstack-kms-issued:" || app id || app key."""
    app_sig, kms_sig = (bytes.fromhex(c) for c in chain)
    app = recover(app_sig, keccak(f"{purpose}:{public_hex}".encode()))
    issued = b"dstack-kms-issued:" + DEMO_APP_ID + compressed(app)
    root = recover(kms_sig, keccak(issued))
    assert to_checksum_address(root.to_canonical_address()) == KMS_ROOT


def test_version_and_reachability(client):
    v = client.version()
    assert v.version.endswith("-simulated") and v.rev
    assert client.is_reachable()


def test_info_parses_and_agrees_with_itself(client):
    info = client.info()
    tcb = info.tcb_info
    for field in (tcb.mrtd, tcb.rtmr0, tcb.rtmr1, tcb.rtmr2, tcb.rtmr3):
        assert len(bytes.fromhex(field)) == 48
    assert len(bytes.fromhex(tcb.mr_aggregated)) == 32
    assert len(bytes.fromhex(tcb.os_image_hash)) == 32
    assert tcb.device_id == info.device_id and len(bytes.fromhex(info.device_id)) == 32
    # The compose hash is the app-compose file's SHA-256, which the SDK's own
    # deterministic hash of that file agrees with.
    assert tcb.compose_hash == info.compose_hash
    assert hashlib.sha256(tcb.app_compose.encode()).hexdigest() == info.compose_hash
    assert get_compose_hash(json.loads(tcb.app_compose)) == info.compose_hash
    assert bytes.fromhex(info.app_id) == DEMO_APP_ID
    assert json.loads(info.key_provider_info)["id"] == KMS_ROOT
    events = {e.event: e.event_payload for e in tcb.event_log}
    assert events["compose-hash"] == info.compose_hash
    assert events["app-id"] == info.app_id


def test_get_key_is_deterministic_and_chained_to_the_kms(client):
    a = client.get_key("agent/1", "signing")
    b = client.get_key("agent/1", "signing")
    other = client.get_key("agent/2", "signing")
    assert a.decode_key() == b.decode_key() != other.decode_key()
    assert len(a.decode_key()) == 32
    public = keys.PrivateKey(a.decode_key()).public_key
    check_chain(a.signature_chain, compressed(public).hex(), "signing")
    # The purpose changes the chain, not the key.
    c = client.get_key("agent/1", "other")
    assert c.decode_key() == a.decode_key() and c.signature_chain != a.signature_chain
    check_chain(c.signature_chain, compressed(public).hex(), "other")
    # dstack_sdk's Ethereum helper takes it.
    assert to_account_secure(a).address.startswith("0x")


def test_get_key_ed25519(client):
    k = client.get_key("agent/1", "signing", algorithm="ed25519")
    assert k.decode_key() == client.get_key("agent/1", "signing").decode_key()
    public = ed25519.Ed25519PrivateKey.from_private_bytes(k.decode_key()).public_key()
    check_chain(k.signature_chain, public.public_bytes_raw().hex(), "signing")


def test_get_quote_binds_report_data_and_replays_rtmr3(client):
    q = client.get_quote(b"hello agent")
    quote = q.decode_quote()
    assert quote[:2] == (4).to_bytes(2, "little")
    assert quote[REPORT_DATA] == b"hello agent".ljust(64, b"\0")
    assert bytes.fromhex(q.report_data) == quote[REPORT_DATA]
    assert q.replay_rtmrs()[3] == quote[RTMR3].hex()
    with pytest.raises(ValueError):
        client.get_quote(b"x" * 65)


def test_emit_event_extends_rtmr3(client):
    before = client.get_quote(b"x").decode_quote()[RTMR3]
    client.emit_event("agent-config", b"v2")
    q = client.get_quote(b"x")
    quote = q.decode_quote()
    log = q.decode_event_log()
    assert log[-1].event == "agent-config" and log[-1].event_payload == b"v2".hex()
    assert quote[RTMR3] != before
    assert q.replay_rtmrs()[3] == quote[RTMR3].hex()
    # The new digest, as dstack defines a runtime event's (v1).
    digest = hashlib.sha384(
        (0x08000001).to_bytes(4, "little") + b":agent-config:" + b"v2"
    ).hexdigest()
    assert log[-1].digest == digest
    with pytest.raises(ValueError):
        client.emit_event("", b"x")


def test_attest_is_a_versioned_attestation(client):
    att = client.attest(b"challenge").decode_attestation()
    assert att[:2] == b"\x00\x00"  # V0, a dstack TDX quote
    assert b"challenge".ljust(64, b"\0") in att


@pytest.mark.parametrize("algorithm", ["secp256k1", "secp256k1_prehashed", "ed25519"])
def test_sign_and_verify(client, algorithm):
    data = hashlib.sha256(b"message").digest()
    s = client.sign(algorithm, data)
    sig, public = s.decode_signature(), s.decode_public_key()
    assert len(s.signature_chain) == 3 and s.signature_chain[0] == s.signature
    assert client.verify(algorithm, data, sig, public).valid
    assert not client.verify(algorithm, data[::-1], sig, public).valid
    # Checked independently of the signer.
    if algorithm == "ed25519":
        ed25519.Ed25519PublicKey.from_public_bytes(public).verify(sig, data)
        check_chain(s.signature_chain[1:], public.hex(), "signing")
    else:
        pk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public)
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        if algorithm == "secp256k1":
            pk.verify(der, data, ec.ECDSA(hashes.SHA256()))
        else:
            from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

            pk.verify(der, data, ec.ECDSA(Prehashed(hashes.SHA256())))
        check_chain(s.signature_chain[1:], public.hex(), "signing")


def test_get_tls_key_issues_a_chain(client):
    r = client.get_tls_key(
        subject="agent.example",
        alt_names=["agent.example", "127.0.0.1"],
        usage_ra_tls=True,
        usage_client_auth=True,
    )
    key = load_pem_private_key(r.key.encode(), password=None)
    chain = [x509.load_pem_x509_certificate(c.encode()) for c in r.certificate_chain]
    assert len(chain) == 3
    leaf, app_ca, root = chain
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "agent.example"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "agent.example" in sans.get_values_for_type(x509.DNSName)
    # Each certificate is signed by the next.
    for cert, issuer in ((leaf, app_ca), (app_ca, root), (root, root)):
        issuer.public_key().verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
        )
    # RA-TLS: the quote extension.
    quote_ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.62397.1.1"))
    assert len(quote_ext.value.value) > 1000


def test_async_client_and_v0_paths(sim_dstack):
    async def run():
        async with AsyncDstackClient(sim_dstack) as c:
            return (await c.get_key("agent/1", "signing")).decode_key()

    assert asyncio.run(run()) == DstackClient(sim_dstack).get_key("agent/1", "signing").decode_key()
    # dstack serves the same API under /v0.
    transport = httpx.HTTPTransport(uds=sim_dstack)
    with httpx.Client(transport=transport, base_url="http://dstack") as h:
        r = h.post("/v0/Info", json={})
        assert r.status_code == 200 and "tcb_info" in r.json()
        assert h.post("/NoSuchMethod", json={}).status_code == 404


def test_bad_requests_are_refused_with_reasons(client, sim_dstack):
    with pytest.raises(httpx.HTTPStatusError) as e:
        client.get_key("a", "b", algorithm="rsa")
    assert e.value.response.status_code == 400
    transport = httpx.HTTPTransport(uds=sim_dstack)
    with httpx.Client(transport=transport, base_url="http://dstack") as h:
        r = h.post("/GetQuote", json={"report_data": "zz"})
        assert r.status_code == 400 and "report_data" in r.json()["error"]
        r = h.post("/Sign", json={"algorithm": "secp256k1_prehashed", "data": "00"})
        assert r.status_code == 400
    # And the simulator goes on serving.
    assert client.is_reachable()
