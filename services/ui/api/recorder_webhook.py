"""The webhook as TradingView meets it: the setup (URL, alert templates) with a warning when
TradingView cannot call that URL, the webhooks the gateway refused for the recorder (kept by
services/gateway/refused.py), and a test alert sent through the recorder's own URL."""

from __future__ import annotations

import ipaddress
import json
import logging
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from libs.common import streams
from libs.common.futures.instruments import TickerError, parse_ticker
from libs.common.storage.models import Recorder, Signal
from services.ui import alert_templates
from services.ui.api.recorders import owned_recorder
from services.ui.context import db, redis_client, settings
from services.ui.errors import ApiError

bp = Blueprint("recorder_webhook", __name__, url_prefix="/api/recorders")


@bp.get("/<int:recorder_id>/webhook")
def webhook_setup(recorder_id: int) -> ResponseReturnValue:
    recorder = owned_recorder(recorder_id)
    return jsonify(
        ok=True,
        recorder_id=recorder.id,
        webhook_url=_webhook_url(recorder),
        url_warning=url_warning(settings().public_url),
        templates={
            "indicator": alert_templates.indicator_template(recorder.name),
            "strategy": alert_templates.strategy_template(recorder.name),
            "levels": alert_templates.levels_template(recorder.name),
            "update": alert_templates.update_template(recorder.name),
        },
        how_to=alert_templates.HOW_TO,
    )


# ---- the webhook as TradingView meets it: reachability, refusals, a test alert ----

KEPT = "the last 100, for 7 days"  # what the gateway keeps (services/gateway/refused.py)
TEST_TIMEOUT_S = 5.0
TEST_TICKER = "MNQ1!"
WEBHOOK_PORTS = (80, 443)  # the only ports TradingView calls (shared/reference A.1)
# Names that only a local network resolves (RFC 6761, 6762, 8375 and common home-router ones).
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".test", ".invalid")


# urllib3 logs each request line at DEBUG, and a test alert's path is the webhook token.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)


class GatewayUnreachable(ApiError):
    status = 502


def _webhook_url(recorder: Recorder) -> str:
    return f"{settings().public_url}/webhook/{recorder.webhook_token}"


def _host_problem(host: str) -> str | None:
    """Why TradingView cannot call `host`, or None."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "points at localhost"
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        if "." not in name:
            return f"uses the bare host name {name}, which only your own network can resolve"
        if name.endswith(LOCAL_SUFFIXES):
            return f"uses the host name {name}, which only your own network can resolve"
        return None
    if ip.is_loopback or ip.is_unspecified:
        return f"points at this machine ({ip})"
    if ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast:
        return f"points at {ip}, an address of a private network"
    if ip.version == 6:
        return "is an IPv6 address, and TradingView calls IPv4 addresses only"
    return None


def url_warning(public_url: str) -> str | None:
    """One sentence on why TradingView cannot call webhook URLs built on `public_url` (or why
    it should not), or None when it is https on a public host on port 443."""
    parts = urlsplit(public_url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if parts.scheme not in ("http", "https") or not host:
        return (
            f"PUBLIC_URL ({public_url}) is not an http or https address, so the webhook URL "
            "cannot work; set it to the address the internet reaches (docs/operations.md)."
        )
    problems = [p for p in [_host_problem(host)] if p]
    if port is not None and port not in WEBHOOK_PORTS:
        problems.append(f"uses port {port}, and TradingView calls only ports 80 and 443")
    if problems:
        return (
            f"TradingView cannot reach this webhook URL: it {' and '.join(problems)}; set "
            "PUBLIC_URL to the address the internet reaches (docs/operations.md)."
        )
    if parts.scheme == "http":
        return (
            "This webhook URL is plain http: TradingView calls it, but the token in it travels "
            "unencrypted and anyone on the way can read it and trade on this recorder; serve "
            "the gateway over https and set PUBLIC_URL to that address (docs/operations.md)."
        )
    return None


def _refused_key(recorder_id: int) -> str:
    return settings().stream(f"{streams.WEBHOOK_REFUSED}{recorder_id}")


@bp.get("/<int:recorder_id>/refused")
def refused_webhooks(recorder_id: int) -> ResponseReturnValue:
    """The webhooks the gateway refused for this recorder, newest first."""
    recorder = owned_recorder(recorder_id)
    kept: list[str] = redis_client().lrange(_refused_key(recorder.id), 0, -1)  # type: ignore[assignment]
    refused = []
    for text in kept:
        try:
            refused.append(json.loads(text))
        except ValueError:
            continue  # written by hand: skip it rather than fail the page
    return jsonify(ok=True, refused=refused, kept=KEPT)


@bp.delete("/<int:recorder_id>/refused")
def clear_refused_webhooks(recorder_id: int) -> ResponseReturnValue:
    recorder = owned_recorder(recorder_id)
    redis_client().delete(_refused_key(recorder.id))
    return jsonify(ok=True, refused=[], kept=KEPT)


def _test_body(recorder: Recorder) -> dict[str, Any]:
    """A buy of the recorder's last ticker at the last price the feed saw, marked as a test."""
    ticker = db().scalar(
        select(Signal.ticker)
        .where(Signal.recorder_id == recorder.id, Signal.ticker.is_not(None))
        .order_by(Signal.received_at.desc())
        .limit(1)
    )
    body: dict[str, Any] = {
        "action": "buy",
        "ticker": ticker or TEST_TICKER,
        "test": True,
        "comment": "Test alert from Just Trades",
    }
    try:
        symbol = parse_ticker(body["ticker"]).root
        last = redis_client().hget(settings().stream(streams.LAST_PRICE), symbol)
        if last is not None and Decimal(str(last)) > 0:
            body["price"] = str(last)
    except (TickerError, InvalidOperation):
        pass
    return body


def _unreachable_reason(exc: requests.RequestException) -> str:
    """Why the request failed, in words; never the exception's text, which holds the URL."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "its TLS certificate was not accepted"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "the connection was not accepted within 5 seconds"
    if isinstance(exc, requests.exceptions.Timeout):
        return "the gateway did not answer within 5 seconds"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "the host name is unknown or nothing accepts connections there"
    return "the request failed"


@bp.post("/<int:recorder_id>/test-alert")
def test_alert(recorder_id: int) -> ResponseReturnValue:
    """Send a real webhook to the recorder's URL as shown to the user; the engine records it
    and trades nothing."""
    recorder = owned_recorder(recorder_id)
    url, token = _webhook_url(recorder), recorder.webhook_token
    body = _test_body(recorder)
    db().rollback()  # no transaction held open across the HTTP call
    try:
        response = requests.post(url, json=body, timeout=TEST_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as exc:
        raise GatewayUnreachable(
            f"The webhook URL {url.replace(token, '…')} could not be reached: "
            f"{_unreachable_reason(exc)}. TradingView cannot reach it either; check that the "
            "gateway runs and that PUBLIC_URL is its address."
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = {"ok": False, "error": response.text[:300].replace(token, "…")}
    if not isinstance(answer, dict):
        answer = {"ok": False, "error": str(answer)[:300].replace(token, "…")}
    signal_id = answer.get("signal_id") if response.status_code in (200, 202) else None
    return jsonify(
        ok=True,
        status=response.status_code,
        answer=answer,
        signal_id=signal_id,
        url_warning=url_warning(settings().public_url),
    )
