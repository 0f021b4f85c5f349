"""Malformed HTTP from clients is logged as a warning, not as a server error.

aiohttp's request handler logs every request it cannot parse (a request line
over 8,190 bytes, a bad header, a broken chunked body) with
``logger.exception("Error handling request ...")`` on ``aiohttp.server``: an
ERROR with a traceback, for what is the client's mistake (it gets a 400).
This filter turns exactly those records into one WARNING line naming the
error, and leaves everything else aiohttp logs alone.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadHttpMessage


class BadHttpAsWarning(logging.Filter):
    """Downgrades records whose exception is a malformed request."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            if isinstance(record.args, tuple):
                # In the format arguments, not the format: it may hold a "%".
                record.msg = f"{record.msg}: %s: %.300s"
                record.args = (*record.args, type(exc).__name__, exc.message)
            record.exc_info, record.exc_text = None, None
        return True


def quiet_bad_http_requests() -> None:
    """Idempotent: installed once per process by create_app."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadHttpAsWarning) for f in logger.filters):
        logger.addFilter(BadHttpAsWarning())
