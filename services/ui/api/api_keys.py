"""API keys of the signed-in user: made here (the key is answered once, stored as a hash),
listed without the key, and revoked (the key stops working on its next request)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from libs.common.api_keys import issue_api_key
from libs.common.serialize import iso
from libs.common.storage.models import ApiKey, utcnow
from services.ui.api.recorders import MAX_ID
from services.ui.api.schemas import Name, json_object, parse
from services.ui.context import db, user_id
from services.ui.errors import NotFound

bp = Blueprint("api_keys", __name__, url_prefix="/api/api-keys")


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = "API key"


def api_key_dict(k: ApiKey) -> dict:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "created_at": iso(k.created_at),
        "last_used_at": iso(k.last_used_at),
        "revoked_at": iso(k.revoked_at),
    }


def owned_api_key(key_id: int) -> ApiKey:
    key = db().get(ApiKey, key_id) if 0 < key_id <= MAX_ID else None
    if key is None or key.user_id != user_id():
        raise NotFound("API key not found.")
    return key


@bp.get("")
def list_api_keys() -> ResponseReturnValue:
    keys = db().scalars(
        select(ApiKey).where(ApiKey.user_id == user_id()).order_by(ApiKey.id.desc())
    )
    return jsonify(ok=True, api_keys=[api_key_dict(k) for k in keys])


@bp.post("")
def create_api_key() -> ResponseReturnValue:
    body = parse(ApiKeyCreate, json_object())
    session = db()
    row, key = issue_api_key(session, user_id(), body.name)
    session.commit()
    return jsonify(ok=True, **api_key_dict(row), key=key), 201


@bp.delete("/<int:key_id>")
def revoke_api_key(key_id: int) -> ResponseReturnValue:
    key = owned_api_key(key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db().commit()
    return jsonify(ok=True, **api_key_dict(key))
