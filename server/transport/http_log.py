"""What the server's logs may say about HTTP: no credentials, and client errors as warnings.

* ``PathOnlyAccessLogger``: the access log without query strings, and
  without probes (/healthz, /readyz, /metrics) or Engine.IO polls.
* ``RedactSecrets``: a filter on the output handlers that replaces session
  ids, bearer tokens, API keys' secrets and query strings in any record.
* ``BadHttpAsWarning``, below.

Malformed HTTP from clients is logged as a warning, not as a server error.

aiohttp's request handler logs every request it cannot parse (a request line
over 8,190 bytes, a bad header, a broken chunked body) with
``logger.exception("Error handling request ...")`` on ``aiohttp.server``: an
ERROR with a traceback, for what is the client's mistake (it gets a 400).
This filter turns exactly those records into one WARNING line naming the
error, and leaves everything else aiohttp logs alone.
"""

from __future__ import annotations

import hashlib
import logging
import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import Response, StreamResponse

log = logging.getLogger(__name__)


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


def peer_left(request: BaseRequest) -> Response:
    """The answer (never sent) to a request whose client went away during a
    handshake or poll (a phone losing signal): logged, not a server error,
    which aiohttp would log with a traceback."""
    log.info("%s %s: the client went away", request.method, request.path)
    return Response(status=499)


def quiet_bad_http_requests() -> None:
    """Idempotent: installed once per process by create_app."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadHttpAsWarning) for f in logger.filters):
        logger.addFilter(BadHttpAsWarning())


#: Where a LogRecord carries its event name and fields (server/logs.py).
EVENT_ATTR, FIELDS_ATTR = "liaison_event", "liaison_fields"

#: Paths not worth an access line when they succeed: probes every few
#: seconds, and the Engine.IO long-polling transport (a request per message
#: and per heartbeat; a WebSocket still gets its one line when it ends).
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _quiet(request: BaseRequest, response: StreamResponse) -> bool:
    if response.status >= 400:
        return False
    if request.path in QUIET_PATHS:
        return True
    return request.path.startswith("/socket.io/") and request.query.get("transport") == "polling"


class PathOnlyAccessLogger(AbstractAccessLogger):
    """One access line per request: peer, method, path, status, size, seconds.

    Never the query string (the Engine.IO polling transport carries its session
    id there: a sid copied from an access log once ran a command as its
    owner), nor the Referer (it carries the referring page's query).
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if _quiet(request, response):
            return
        fields = {
            "peer": request.remote,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "seconds": round(time, 4),
        }
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            request.remote,
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
            extra={EVENT_ATTR: "http.request", FIELDS_ATTR: fields},
        )


#: An Engine.IO / Socket.IO session id: 20 characters of URL-safe base64.
_SID = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{20}(?![A-Za-z0-9_-])")
#: A bearer token (server/auth.py) and a query string with parameters.
_TOKEN = re.compile(r"\bv1\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
#: A bot's API key (server/services/api_keys.py): its id stays, to correlate.
_API_KEY = re.compile(r"\blk_([0-9a-f]{1,32})_[A-Za-z0-9_-]{8,}")
_QUERY = re.compile(r"\?[^\s\"'<>]*=[^\s\"'<>]*")


def sid_tag(sid: str) -> str:
    """How a session id appears in the logs: a stable short tag, so lines about
    one session still correlate, from which the id cannot be recovered."""
    return "sid#" + hashlib.sha256(sid.encode()).hexdigest()[:8]


def _sid_tag(match: re.Match[str]) -> str:
    value = match.group(0)
    if not (re.search(r"\d", value) and re.search(r"[a-z]", value) and re.search(r"[A-Z]", value)):
        return value  # a word or name, not a random id
    return sid_tag(value)


def redact(text: str) -> str:
    """``text`` without session ids, tokens or query strings."""
    text = _API_KEY.sub(r"lk_\1_<secret>", _TOKEN.sub("v1.<token>", text))
    return _SID.sub(_sid_tag, _QUERY.sub("?<query>", text))


class RedactSecrets(logging.Filter):
    """On the output handlers: no record, ours or a library's, carries a
    credential (engineio logs ``Invalid session <sid>`` at ERROR, our gateway
    names sessions by sid, aiohttp quotes bad request lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


#: Loggers that attach output handlers of their own (python-engineio and
#: python-socketio add a bare StreamHandler): filtered on the logger itself,
#: so the record is clean before any handler, theirs or the root's, sees it.
_SELF_HANDLING = ("engineio.server", "socketio.server")


def redact_log_output() -> None:
    """Idempotent: the root logger's handlers and the self-handling loggers get the filter."""
    targets: list[logging.Filterer] = [*logging.getLogger().handlers]
    targets += [logging.getLogger(name) for name in _SELF_HANDLING]
    for target in targets:
        if not any(isinstance(f, RedactSecrets) for f in target.filters):
            target.addFilter(RedactSecrets())
