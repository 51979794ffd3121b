"""The OpenAPI paths of notification destinations (§4e)."""

from __future__ import annotations

from typing import Any

from services.ui.api.notifications import DestinationCreate, DestinationUpdate
from services.ui.api.openapi_parts import BOOL, INT, STR, TIME, nullable, obj, operation, path_param

EVENT_LIST = {"type": "array", "items": STR}
DESTINATION = obj(
    id=INT,
    kind=STR,
    target={**STR, "description": "masked: a destination's credentials are never answered"},
    events=EVENT_LIST,
    enabled=BOOL,
    created_at=TIME,
    last_delivery={
        "type": ["object", "null"],
        "properties": {"at": TIME, "event": STR, "ok": BOOL, "error": nullable(STR)},
    },
    deliveries_ok=INT,
    deliveries_failed=INT,
)


def notification_schemas(template: str) -> dict[str, Any]:
    return {
        "DestinationCreate": DestinationCreate.model_json_schema(ref_template=template),
        "DestinationUpdate": DestinationUpdate.model_json_schema(ref_template=template),
    }


def notification_paths() -> dict[str, Any]:
    one = {"allOf": [DESTINATION, obj(ok=BOOL)]}
    return {
        "/api/notifications": {
            "get": operation(
                "Your notification destinations, each with its last delivery",
                obj(
                    ok=BOOL, destinations={"type": "array", "items": DESTINATION}, events=EVENT_LIST
                ),
            ),
            "post": operation(
                "Add a destination (webhook: an https URL; discord: its webhook URL; telegram: "
                "{bot_token, chat_id}; email: {to}); a webhook's signing `secret` is in this "
                "answer only. 422 for a target on a private address not in NOTIFY_ALLOWED_HOSTS",
                {"allOf": [DESTINATION, obj(ok=BOOL, secret=STR)]},
                status="201",
                body="DestinationCreate",
                errors=("400", "401", "403", "422"),
            ),
        },
        "/api/notifications/{destination_id}": {
            "parameters": [path_param("destination_id", INT)],
            "put": operation(
                "Enable or disable the destination, or change its events",
                one,
                body="DestinationUpdate",
                errors=("400", "401", "403", "404", "422"),
            ),
            "delete": operation(
                "Remove the destination", obj(ok=BOOL, id=INT), errors=("401", "403", "404")
            ),
        },
        "/api/notifications/{destination_id}/test": {
            "parameters": [path_param("destination_id", INT)],
            "post": operation(
                "Send a test message now; `delivered` and `error` say how it went",
                {"allOf": [DESTINATION, obj(ok=BOOL, delivered=BOOL, error=nullable(STR))]},
                errors=("401", "403", "404"),
            ),
        },
    }
