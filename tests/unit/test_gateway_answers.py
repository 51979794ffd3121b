"""The webhook route writes its JSON answers itself, in front of Flask: a sender must get the
same bytes as from Flask's `jsonify`."""

from __future__ import annotations

from flask import Flask, jsonify

from services.gateway.webhook_route import accepted_body, answer_body


def flask_bytes(**payload) -> bytes:
    with Flask(__name__).app_context():
        return jsonify(**payload).get_data()


def test_every_answer_is_what_flask_jsonify_writes():
    for payload in (
        {"ok": True, "signal_id": "5f0c-1"},
        {"ok": True, "signal_id": "5f0c-1", "duplicate": True},
        {"ok": False, "error": 'The field ticker is "MNQ?" — not a contract.'},
    ):
        assert answer_body(payload) == flask_bytes(**payload)


def test_the_accepted_answer_written_out_is_the_same_bytes():
    for signal_id in ("5f0c2d4e-8d1f-4f57-a1b4-0c9b8c1d2e3f", 'odd"id\\'):
        assert accepted_body(signal_id) == flask_bytes(ok=True, signal_id=signal_id)
