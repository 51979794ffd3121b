"""Copy groups (docs/contract.md §4d): a leader subaccount and its followers, how each copies,
what the copy keeper last found, and "Realign now"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from libs.common.copy_in_step import Pair, align_follower
from libs.common.copy_trading import copy_cycle, unknown_roots
from libs.common.serialize import intent_dict, iso, num
from libs.common.storage.models import CopyFollower, CopyGroup, Subaccount
from services.ui.api.accounts import owned_subaccount
from services.ui.api.execution_schemas import CopyGroupCreate, CopyGroupUpdate, Follower
from services.ui.api.recorders import MAX_ID
from services.ui.api.schemas import FIELD_RULES, field_sentences, json_object, plain_sentence
from services.ui.api.traders import Conflict
from services.ui.api.trading import hand_over
from services.ui.context import db, redis_client, settings, user_id
from services.ui.errors import NotFound, ValidationFailed

bp = Blueprint("copy_groups", __name__, url_prefix="/api")

M = TypeVar("M", CopyGroupCreate, CopyGroupUpdate)
FOLLOWER_FIELDS = frozenset(("multiplier", "enabled", "inverted", "symbol_map", "max_contracts"))


def _parse(model: type[M], body: dict[str, Any]) -> M:
    """Like schemas.parse, but an error inside a follower names it: followers[1].max_contracts."""
    try:
        return model.model_validate(body)
    except PydanticValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            if len(loc) >= 3 and loc[0] == "followers" and isinstance(loc[1], int):
                name = str(loc[2])
                rule = FIELD_RULES.get(name, f"{name}: {error['msg']}")
                raise ValidationFailed(f"followers[{loc[1]}].{rule}.") from None
        raise ValidationFailed(plain_sentence(exc), field_sentences(exc)) from None


def group_dict(group: CopyGroup, followers: list[CopyFollower]) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "leader_subaccount_id": group.leader_subaccount_id,
        "enabled": group.enabled,
        "realign": group.realign,
        "follow_risk_lock": group.follow_risk_lock,
        "followers": [
            {
                "subaccount_id": f.subaccount_id,
                "multiplier": num(f.multiplier),
                "enabled": f.enabled,
                "inverted": f.inverted,
                "symbol_map": f.symbol_map or {},
                "max_contracts": f.max_contracts,
                "out_of_step": f.out_of_step,
                "checked_at": iso(f.checked_at),
            }
            for f in followers
        ],
    }


def _followers(group_id: int) -> list[CopyFollower]:
    return list(
        db().scalars(
            select(CopyFollower)
            .where(CopyFollower.group_id == group_id)
            .order_by(CopyFollower.subaccount_id)
        )
    )


def _owned_group(group_id: int) -> CopyGroup:
    group = db().get(CopyGroup, group_id) if 0 < group_id <= MAX_ID else None
    if group is None or group.user_id != user_id():
        raise NotFound("Copy group not found.")
    return group


def _check_followers(leader_id: int, followers: list[Follower], group_id: int | None) -> None:
    """422 (naming the field) for a follower that leads itself, follows twice, maps to a root we
    do not know, or closes a copy cycle across the user's groups."""
    seen: set[int] = set()
    for i, f in enumerate(followers):
        if f.subaccount_id == leader_id:
            raise ValidationFailed(f"followers[{i}].subaccount_id is the leader: it cannot follow")
        if f.subaccount_id in seen:
            raise ValidationFailed(f"followers[{i}].subaccount_id follows twice in this group.")
        seen.add(f.subaccount_id)
        owned_subaccount(f.subaccount_id)
        unknown = unknown_roots(f.symbol_map or {})
        if unknown:
            raise ValidationFailed(
                f"followers[{i}].symbol_map names a contract we do not know: {', '.join(unknown)}."
            )
    others = (
        db()
        .execute(
            select(CopyGroup.leader_subaccount_id, CopyFollower.subaccount_id, CopyGroup.name)
            .join(CopyFollower, CopyFollower.group_id == CopyGroup.id)
            .where(CopyGroup.user_id == user_id(), CopyGroup.id != (group_id or 0))
        )
        .all()
    )
    for i, f in enumerate(followers):
        elsewhere = [name for _, sub_id, name in others if sub_id == f.subaccount_id]
        if elsewhere:
            raise ValidationFailed(
                f"followers[{i}].subaccount_id already follows in the copy group "
                f"{elsewhere[0]!r}: a subaccount follows one leader."
            )
    links = [(leader, sub_id) for leader, sub_id, _ in others]
    cycle = copy_cycle([*links, *((leader_id, f.subaccount_id) for f in followers)], leader_id)
    if cycle:
        names = {
            s.id: s.name for s in db().scalars(select(Subaccount).where(Subaccount.id.in_(cycle)))
        }
        chain = " → ".join(names.get(i, str(i)) for i in cycle)
        raise ValidationFailed(f"followers would make a copy cycle: {chain}.")


def _new_follower(group_id: int, f: Follower) -> CopyFollower:
    return CopyFollower(
        group_id=group_id,
        subaccount_id=f.subaccount_id,
        multiplier=f.multiplier,
        enabled=f.enabled,
        inverted=f.inverted,
        symbol_map=f.symbol_map or None,
        max_contracts=f.max_contracts,
    )


@bp.post("/copy-groups")
def create_copy_group() -> ResponseReturnValue:
    body = _parse(CopyGroupCreate, json_object())
    leader = owned_subaccount(body.leader_subaccount_id)
    _check_followers(leader.id, body.followers, None)
    session = db()
    group = CopyGroup(
        user_id=user_id(),
        name=body.name,
        leader_subaccount_id=leader.id,
        enabled=body.enabled,
        realign=body.realign,
        follow_risk_lock=body.follow_risk_lock,
    )
    session.add(group)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("This subaccount already leads a copy group.") from None
    session.add_all(_new_follower(group.id, f) for f in body.followers)
    session.commit()
    return jsonify(ok=True, **group_dict(group, _followers(group.id))), 201


@bp.get("/copy-groups")
def list_copy_groups() -> ResponseReturnValue:
    groups = db().scalars(
        select(CopyGroup).where(CopyGroup.user_id == user_id()).order_by(CopyGroup.id)
    )
    return jsonify(ok=True, copy_groups=[group_dict(g, _followers(g.id)) for g in groups])


@bp.get("/copy-groups/<int:group_id>")
def get_copy_group(group_id: int) -> ResponseReturnValue:
    group = _owned_group(group_id)
    return jsonify(ok=True, **group_dict(group, _followers(group.id)))


@bp.put("/copy-groups/<int:group_id>")
def update_copy_group(group_id: int) -> ResponseReturnValue:
    group = _owned_group(group_id)
    body = _parse(CopyGroupUpdate, json_object())
    sent = body.model_fields_set
    for name in ("name", "enabled", "realign", "follow_risk_lock"):
        if name in sent and getattr(body, name) is None:
            raise ValidationFailed(FIELD_RULES[name] + ".")
    if "followers" in sent:
        if body.followers is None:
            raise ValidationFailed(FIELD_RULES["followers"] + ".")
        _check_followers(group.leader_subaccount_id, body.followers, group.id)
        _replace_followers(group, body.followers)
    for name in ("name", "enabled", "realign", "follow_risk_lock"):
        if name in sent:
            setattr(group, name, getattr(body, name))
    db().commit()
    return jsonify(ok=True, **group_dict(group, _followers(group.id)))


def _replace_followers(group: CopyGroup, followers: list[Follower]) -> None:
    session = db()
    current = {f.subaccount_id: f for f in _followers(group.id)}
    for f in followers:
        row = current.pop(f.subaccount_id, None)
        if row is None:
            session.add(_new_follower(group.id, f))
            continue
        for name in FOLLOWER_FIELDS & f.model_fields_set:
            value = getattr(f, name)
            setattr(row, name, (value or None) if name == "symbol_map" else value)
        row.out_of_step = None  # judged again under the new rule
    for gone in current.values():
        session.delete(gone)


@bp.delete("/copy-groups/<int:group_id>")
def delete_copy_group(group_id: int) -> ResponseReturnValue:
    group = _owned_group(group_id)
    db().delete(group)
    db().commit()
    return jsonify(ok=True, id=group_id)


@bp.post("/copy-groups/<int:group_id>/realign")
def realign_copy_group(group_id: int) -> ResponseReturnValue:
    """Bring every enabled follower in step now: the orders are written (each follower's row held
    while deciding, as the copy keeper does) and handed to the executor."""
    group = _owned_group(group_id)
    session = db()
    leader = session.get_one(Subaccount, group.leader_subaccount_id)
    now = datetime.now(UTC)
    written = []
    for follower in _followers(group.id):
        sub = session.get_one(Subaccount, follower.subaccount_id)
        if not follower.enabled or not sub.active:
            continue
        pair = Pair(group, follower, leader, sub)
        written += align_follower(session, redis_client(), settings(), pair, now)
    hand_over(written)
    return jsonify(ok=True, orders=[intent_dict(r) for r in written]), 202
