"""The reference the gateway's rows are read against: a bare Flask view that parses the JSON body
and XADDs it to a stream, nothing else (no token, no rate count, no marker), on the same Redis
and served as the gateway is (gunicorn's asyncio workers handing whole requests to WsgiOnAsgi's
threads). `python -m tools.bench.reference`, settings from the environment as a service's."""

from __future__ import annotations

import json

import redis
from flask import Flask, Response, jsonify, request

from libs.common import streams
from libs.common.config import Settings
from libs.common.service_process import GunicornServer, WsgiOnAsgi, service_main
from services.gateway.app import MAX_BODY_BYTES, connect_redis
from services.gateway.server import gunicorn_options

STREAM = "reference"  # under the bench's stream prefix


def create_reference_app(client: redis.Redis, stream: str) -> Flask:
    app = Flask(__name__)

    @app.post("/webhook/<token>")
    def webhook(token: str) -> tuple[Response, int]:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return jsonify(error="the body is not a JSON object"), 400
        streams.add(client, stream, {"body": json.dumps(body, separators=(",", ":"))})
        return jsonify(accepted=True), 202

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify(ok=True), 200

    return app


def worker_app(settings: Settings, threads: int = 8) -> WsgiOnAsgi:
    """Built in each worker after fork, with the gateway's Redis client settings."""
    client = connect_redis(settings.redis_url or "")
    app = create_reference_app(client, settings.stream(STREAM))
    return WsgiOnAsgi(app, threads, MAX_BODY_BYTES + 1)


def serve(settings: Settings, workers: int = 2, threads: int = 8) -> None:
    """On `settings.gateway_port`, with the gateway's gunicorn options (workers, threads, worker
    class, keep-alive); only its metrics and worker-death hook are left out."""
    options = gunicorn_options(settings, workers, threads)
    options.pop("child_exit")
    options["proc_name"] = "justtrades-bench-reference"
    GunicornServer(lambda: worker_app(settings, threads), options).run()


if __name__ == "__main__":
    service_main(serve)
