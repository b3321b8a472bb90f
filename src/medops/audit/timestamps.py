"""RFC 3161 timestamps of checkpoints: a third party's signed word on when a checkpoint existed.

Optional (``timestamp_authority``, ``timestamp_authority_cert``). The checkpoint's body is
sent as a SHA-256 imprint to the authority; the token it answers is checked at once (status,
nonce, imprint, signature chain up to the configured certificate) and stored beside the
checkpoint. Verification checks every stored token again. rfc3161-client does the ASN.1
and the chain (it is the library sigstore uses); the HTTP exchange is one POST.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime
from functools import cached_property
from pathlib import Path

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from medops.errors import ConfigError, IntegrityError, StoreError

CONTENT_TYPE = "application/timestamp-query"
MAX_REPLY = 1 << 20  # a token is a few KB; anything this large is not one


class TimestampAuthority:
    def __init__(self, url: str, cert_file: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.cert_file = cert_file
        self.timeout = timeout

    @cached_property
    def _certificates(self) -> tuple[x509.Certificate, list[x509.Certificate], list[x509.Certificate]]:
        """(the authority's certificate, intermediates, roots) from the configured PEM file."""
        path = Path(self.cert_file)
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"can't read timestamp_authority_cert {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(
                f"timestamp_authority_cert {path} holds no PEM certificate",
                hint="give the authority's certificate first, then its chain up to the root, in PEM",
            ) from exc
        roots = [c for c in certs if c.issuer == c.subject] or [certs[-1]]
        middle = [c for c in certs[1:] if c not in roots]
        return certs[0], middle, roots

    def _verifier(self, nonce: int | None = None) -> VerifierBuilder:
        tsa, middle, roots = self._certificates
        builder = VerifierBuilder(nonce=nonce).tsa_certificate(tsa)
        for cert in middle:
            builder = builder.add_intermediate_certificate(cert)
        for cert in roots:
            builder = builder.add_root_certificate(cert)
        return builder

    def stamp(self, data: bytes) -> bytes:
        """Ask for a token over ``data``; return it (DER) once it checks. StoreError when unreachable."""
        request = (
            TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256).cert_request(cert_request=True)
        ).build()
        http = urllib.request.Request(
            self.url, data=request.as_bytes(), headers={"Content-Type": CONTENT_TYPE}, method="POST"
        )
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as reply:  # noqa: S310 (the URL is a setting)
                token: bytes = reply.read(MAX_REPLY + 1)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise StoreError(f"the timestamp authority {self.url} did not answer: {exc}") from exc
        if len(token) > MAX_REPLY:
            raise StoreError(f"the timestamp authority {self.url} answered with more than a token")
        self.check(token, data, nonce=request.nonce)
        return token

    def check(self, token: bytes, data: bytes, *, nonce: int | None = None) -> datetime:
        """The token's time, when it is a granted token over ``data`` signed by the configured authority."""
        try:
            response = decode_timestamp_response(token)
            self._verifier(nonce).build().verify_message(response, data)
        except (VerificationError, ValueError) as exc:
            raise IntegrityError(f"timestamp token does not verify: {exc}") from exc
        return response.tst_info.gen_time
