"""Security headers on every answer of the UI, set in one place.

The pages load only their own scripts (ES modules from /static), styles and the Socket.IO
connection to the same origin, so the policy allows nothing else: no inline script,
no plugins, no framing (clickjacking), no <base> rewriting, forms only to ourselves.
"""

from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # lightweight-charts sets style attributes on the elements it builds; styles cannot run
        # code, so allowing inline ones costs little while scripts stay strictly our own files.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",  # the JSON API and Socket.IO's websocket, same origin
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HSTS = "max-age=31536000; includeSubDomains"


def install_security_headers(app: Flask, https: bool) -> None:
    """`https`: the UI is served over TLS (its public URL says so), so browsers may be told to
    never use plain http for it again (HSTS) and cookies go only over TLS."""
    app.config.update(SESSION_COOKIE_SECURE=https, REMEMBER_COOKIE_SECURE=https)

    @app.after_request
    def add_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if https:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith(("/api/", "/oauth/")):
            # Answers carry API keys, webhook tokens and account data: no cache may keep them.
            headers.setdefault("Cache-Control", "no-store")
        return response
