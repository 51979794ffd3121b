"""Passwords, API keys, webhook tokens and encryption of secrets at rest."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet
from werkzeug.security import check_password_hash, generate_password_hash

API_KEY_PREFIX = "jt_"


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """API keys are long random strings, so one unsalted SHA-256 suffices to store them."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_token() -> str:
    return secrets.token_hex(16)


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class SecretBox:
    """Fernet encryption for secrets stored in PostgreSQL (broker tokens, TradingView cookies)."""

    def __init__(self, key: str):
        self._fernet = Fernet(key.encode() if isinstance(key, str) else key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        return self._fernet.decrypt(ciphertext.encode()).decode()
