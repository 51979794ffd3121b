"""The authenticator (TOTP, RFC 6238) secret a TradingView account's two-factor sign-in uses:
checked when the operator stores it (UI) and turned into the current 6-digit code (price feed)."""

from __future__ import annotations

import binascii
import re
import time

import pyotp

# What an authenticator app shows under "Can't scan? Enter this key": base32 letters and digits,
# often grouped with spaces, in either case, sometimes with the `=` padding left on.
_SPACES = re.compile(r"[\s-]+")
_BASE32 = re.compile(r"^[A-Z2-7]+=*$")
# 80 bits: the shortest key authenticator apps hand out (16 characters); a shorter one is a
# truncated paste, whose codes would never match.
MIN_LENGTH = 16


class BadSecret(ValueError):
    """The text is not an authenticator key; the message says why without repeating it."""


def normalize_secret(text: str) -> str:
    """The key in the form pyotp reads: spaces and dashes gone, upper case, no padding.

    Raises BadSecret when it is not base32 or no code can be computed from it."""
    secret = _SPACES.sub("", text).upper()
    if not secret:
        raise BadSecret("totp_secret is empty")
    if not _BASE32.match(secret):
        raise BadSecret(
            "totp_secret must be the base32 key of the authenticator app (letters A-Z and "
            "digits 2-7, spaces allowed)"
        )
    secret = secret.rstrip("=")
    if len(secret) < MIN_LENGTH:
        raise BadSecret(
            f"totp_secret is too short: an authenticator key has at least {MIN_LENGTH} characters"
        )
    try:
        current_code(secret)
    except (binascii.Error, ValueError):
        raise BadSecret("totp_secret is not a key a code can be computed from") from None
    return secret


def current_code(secret: str, at: float | None = None) -> str:
    """The 6-digit code an authenticator app shows for `secret` at `at` (now by default)."""
    return pyotp.TOTP(secret).at(int(time.time() if at is None else at))
