"""RFC 3161 timestamps of checkpoints, against a local test authority answered by `openssl ts -reply`."""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medops.audit import NewEvent
from medops.audit.anchoring import FORGED
from medops.audit.checkpoint_store import TOKEN_SUFFIX, checkpoint_names, read_token, token_names
from medops.workspace import Workspace

OPENSSL_TS_CONFIG = """
[ tsa ]
default_tsa = test_tsa
[ test_tsa ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _authority(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a TSA certificate it issued: (tsa cert, tsa key, chain PEM for medops)."""
    folder.mkdir()
    ca_key, tsa_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("medops test root", ca_key, None, ca_key)
    tsa = _cert("medops test TSA", tsa_key, ca, ca_key)
    (folder / "tsa.crt").write_bytes(_pem(tsa))
    (folder / "tsa.key").write_bytes(
        tsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (folder / "chain.pem").write_bytes(_pem(tsa) + _pem(ca))
    (folder / "serial").write_text("01\n")
    (folder / "ts.cnf").write_text(OPENSSL_TS_CONFIG.format(dir=folder))
    return folder / "tsa.crt", folder / "tsa.key", folder / "chain.pem"


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local RFC 3161 authority on 127.0.0.1: (its URL, the PEM chain medops is told to trust)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to answer as a test timestamp authority")
    folder = tmp_path / "tsa"
    cert, key, chain = _authority(folder)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            query = folder / f"{uuid.uuid4().hex}.tsq"
            reply = query.with_suffix(".tsr")
            query.write_bytes(self.rfile.read(int(self.headers["Content-Length"])))
            done = subprocess.run(
                ["openssl", "ts", "-reply", "-config", str(folder / "ts.cnf"), "-queryfile", str(query)]
                + ["-signer", str(cert), "-inkey", str(key), "-out", str(reply)],
                capture_output=True,
                check=False,
            )
            body = reply.read_bytes() if done.returncode == 0 else b""
            self.send_response(200 if body else 500)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa", chain
    finally:
        server.shutdown()
        server.server_close()


def _open(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, url: str, chain: Path) -> Workspace:
    monkeypatch.setenv("MEDOPS_TIMESTAMP_AUTHORITY", url)
    monkeypatch.setenv("MEDOPS_TIMESTAMP_AUTHORITY_CERT", str(chain))
    return Workspace.open(workspace.settings.home)


def _grow(ws: Workspace, n: int) -> None:
    for i in range(n):
        ws.trail.record(NewEvent("admin", "test.event", "thing", str(i)))


def test_checkpoints_get_a_token_at_most_once_per_interval_and_verify_checks_it(
    workspace: Workspace, tsa: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _open(workspace, monkeypatch, *tsa)
    try:
        _grow(ws, 4)
        stamped = token_names(ws.checkpoints)
        assert len(stamped) == 1  # four checkpoints, one interval of 300 s: one network round trip
        report = ws.verify_audit()
        assert report.ok and report.timestamps == 1 and not report.warnings, report
        # a token moved onto another checkpoint does not match that checkpoint's body
        token = read_token(ws.checkpoints, next(iter(stamped)))
        assert token is not None
        other = next(n for n in checkpoint_names(ws.checkpoints) if n not in stamped)
        ws.checkpoints.write_once(other + TOKEN_SUFFIX, token)
        problem = ws.verify_audit().problem
        assert problem is not None and problem.kind == FORGED and "timestamp token" in problem.detail
    finally:
        ws.close()


def test_an_unreachable_authority_leaves_the_write_anchored_and_verify_warns(
    workspace: Workspace, tsa: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, chain = tsa
    ws = _open(workspace, monkeypatch, "http://127.0.0.1:1/tsa", chain)
    try:
        _grow(ws, 2)  # succeeds: the signature anchors it
        assert not token_names(ws.checkpoints)
        report = ws.verify_audit()
        assert report.ok and any("no checkpoint has a timestamp token" in w for w in report.warnings)
    finally:
        ws.close()
