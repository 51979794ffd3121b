"""The UI's error classes and the one place that maps every error to a JSON answer.

Every error body is `{"ok": false, "error": "<plain sentence>"}` (DESIGN §2).
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on; `status` is its HTTP status."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class NotAuthenticated(ApiError):
    status = 401


class NotFound(ApiError):
    status = 404


class ValidationFailed(ApiError):
    status = 422


# Werkzeug's own messages are long and technical; these are what a user reads instead.
HTTP_MESSAGES = {
    400: "The request could not be read.",
    401: "Log in or send an API key as 'Authorization: Bearer <key>'.",
    403: "You are not allowed to do that.",
    404: "Not found.",
    405: "This method is not allowed on this URL.",
    413: "The request body is too large.",
    415: "The request body must be JSON.",
}


def error_response(message: str, status: int) -> ResponseReturnValue:
    return jsonify(ok=False, error=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> ResponseReturnValue:
        return error_response(exc.message, exc.status)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        # 403, not Flask-WTF's 400: the request is well formed, the caller is not trusted.
        return error_response(
            f"{exc.description.rstrip('.')}; send the token from GET /api/csrf-token "
            "in the X-CSRFToken header.",
            403,
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        return error_response(HTTP_MESSAGES.get(status, exc.name + "."), status)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error in the ui")
        return error_response("Something went wrong on our side; the error was logged.", 500)
