"""Keeps webhook tokens out of every log line: the token is all a sender needs to trade."""

from __future__ import annotations

import logging
import re

REDACTED_PATH = "/webhook/<redacted>"
_WEBHOOK_PATH = re.compile(r"/webhook/[^\s?#\"']*")


def redact_path(text: str) -> str:
    """`POST /webhook/9b1f…c7 HTTP/1.1` → `POST /webhook/<redacted> HTTP/1.1`."""
    return _WEBHOOK_PATH.sub(REDACTED_PATH, text)


class RedactTokens(logging.Filter):
    """Rewrites any record (message and traceback) that mentions a webhook path."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_path(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_path(record.exc_text)
        return True
