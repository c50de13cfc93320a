"""Webhook secrets sealed at rest: AES-256-GCM (cryptography) under the app's key.

The key is `CITYBRAIN_WARNING_WEBHOOK_SECRET_KEY` (32 bytes, URL-safe base64) when set, else one derived
from the platform's `CITYBRAIN_SECRET_KEY` with HKDF-SHA256 (RFC 5869), so it is stable across restarts
and processes without another setting. A sealed value is `v1:` and the URL-safe base64 of the 96-bit
nonce followed by the ciphertext and its tag (NIST SP 800-38D: a fresh random 96-bit nonce per value).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1:"
NONCE_BYTES = 12  # NIST SP 800-38D §8.2: 96-bit nonces
KEY_BYTES = 32  # AES-256
# Binds a sealed value to its use: a value sealed for something else does not open here.
PURPOSE = b"citybrain.warning.webhook-secret"


class SealError(ValueError):
    """A sealed value that cannot be opened (another key, or altered)."""


def decode_key(text: str) -> bytes:
    """A configured key: 32 bytes in URL-safe base64 (padding optional); ValueError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret key is not URL-safe base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"the webhook secret key must be {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def derive_key(platform_secret: str, configured: str = "") -> bytes:
    """The sealing key: the configured one, else HKDF-SHA256 of the platform secret."""
    if configured:
        return decode_key(configured)
    kdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=PURPOSE + b".v1")
    return kdf.derive(platform_secret.encode())


def seal(key: bytes, secret: str) -> str:
    """Encrypt a secret for storage."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, secret.encode(), PURPOSE)
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def unseal(key: bytes, sealed: str) -> str:
    """The secret a stored value holds; SealError when it cannot be opened with the key."""
    if not sealed.startswith(PREFIX):
        raise SealError("not a sealed value")
    body = sealed[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if len(raw) <= NONCE_BYTES:
            raise SealError("a sealed value too short")
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], PURPOSE).decode()
    except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
        raise SealError("the sealed value does not open with this key") from None
