"""Issuing API keys: one way for the CLI and the UI to make a key and the row that stores it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from libs.common.security import hash_api_key, new_api_key
from libs.common.storage.models import ApiKey

PREFIX_LENGTH = 10  # enough of the key to tell keys apart in a list, too little to guess the rest


def issue_api_key(session: Session, user_id: int, name: str) -> tuple[ApiKey, str]:
    """Add a new key of `user_id` to `session` (the caller commits); the row and the key itself,
    which is stored only as a hash and so can be shown to the user this once."""
    key = new_api_key()
    row = ApiKey(user_id=user_id, name=name, prefix=key[:PREFIX_LENGTH], key_hash=hash_api_key(key))
    session.add(row)
    session.flush()  # the id and defaults, for an answer written before the commit
    return row, key
