"""The UI's error classes and the one place that maps every error to an answer.

An API error body is `{"ok": false, "error": "<plain sentence>"}` (docs/contract.md §2), plus
`"fields": {"<field>": "<sentence>"}` when the error is about named body fields, so a form can
show each sentence beside its input; a browser asking for a page (not /api, not JSON) gets the
same sentence on an HTML page instead.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on; `status` is its HTTP status. `fields` maps each body field
    the error is about to its own sentence (which starts with the field's name, as in `message`)."""

    status = 400

    def __init__(
        self, message: str, fields: dict[str, str] | None = None, *, field: str | None = None
    ):
        super().__init__(message)
        self.message = message
        # `field`: the one field the whole message is about.
        self.fields = {field: message} if field else (fields or {})


class BadRequest(ApiError):
    status = 400


class NotAuthenticated(ApiError):
    status = 401


class Forbidden(ApiError):
    """Logged in, but this user may not do that (an operator's setting, say)."""

    status = 403


class NotFound(ApiError):
    status = 404


class ValidationFailed(ApiError):
    status = 422


class TooManyRequests(ApiError):
    status = 429

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


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


def wants_page() -> bool:
    """A browser navigating (or posting a form) outside the API: answer with a page."""
    if request.path.startswith("/api/") or request.is_json:
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def error_response(
    message: str, status: int, fields: dict[str, str] | None = None
) -> tuple[str | Response, int]:
    if wants_page():
        return render_template("error.html", message=message, status=status), status
    if fields:
        return jsonify(ok=False, error=message, fields=fields), status
    return jsonify(ok=False, error=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> ResponseReturnValue:
        body, status = error_response(exc.message, exc.status, exc.fields)
        if isinstance(exc, TooManyRequests):
            return body, status, {"Retry-After": str(exc.retry_after_s)}
        return body, status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        # 403, not Flask-WTF's 400: the request is well formed, the caller is not trusted.
        if wants_page() and request.endpoint == "auth.login":
            from services.ui.auth import login_form  # auth imports this module

            return login_form("The login form expired; please try again.", "/"), 403
        if wants_page():
            return error_response(
                "This form expired or did not come from this site; go back, "
                "reload the page and try again.",
                403,
            )
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
