"""Log lines a machine can read: one JSON object per line, or ``key=value`` pairs.

A server outside a notebook writes its story to a log collector (journald, Docker, a
cloud's log service) that indexes fields, not sentences. ``python -m wslab serve ...
--log-format json`` writes::

    {"time": "2025-01-01T12:00:00.123Z", "level": "info", "logger": "wslab.cli",
     "message": "127.0.0.1:50412 connected", "event": "connect", "peer": "127.0.0.1:50412"}

Fields come from ``extra={"fields": {...}}`` on the logging call; every line has time,
level, logger and message.
"""

from __future__ import annotations

import json
import logging
import time
from enum import StrEnum
from typing import Any, TextIO

from ..core.connection_log import LogEvent

__all__ = ["JsonFormatter", "KeyValueFormatter", "LogFormat", "configure_logging", "event_fields"]


class LogFormat(StrEnum):
    """How ``python -m wslab`` writes its log lines (``--log-format``)."""

    TEXT = "text"  #: for a person at a terminal: ``12:00:00 127.0.0.1:50412 connected``
    JSON = "json"  #: one JSON object per line
    KEY_VALUE = "kv"  #: ``time=... level=info event=connect peer=...`` (logfmt)


def _base(record: logging.LogRecord) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    fields = {
        "time": f"{stamp}.{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    fields.update(getattr(record, "fields", None) or {})
    if record.exc_info and record.exc_info[1] is not None:
        fields["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: no line breaks inside, whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_base(record), ensure_ascii=False, default=str)


class KeyValueFormatter(logging.Formatter):
    """``key=value`` pairs (logfmt); values with spaces, quotes or ``=`` are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt(value)}" for key, value in _base(record).items())


def _logfmt(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n\\'):
        return text
    return json.dumps(text, ensure_ascii=False)


def event_fields(event: LogEvent) -> dict[str, Any]:
    """The fields of one connection event (:class:`wslab.LogEvent`) for a log line."""
    fields: dict[str, Any] = {"event": event.direction.value, "peer": event.peer}
    if event.code is not None:
        fields["code"] = int(event.code)
    if event.reason:
        fields["reason"] = event.reason
    return fields


def configure_logging(log_format: LogFormat | str, *, verbose: bool = False, stream: TextIO) -> None:
    """Send the root logger's records to ``stream`` in ``log_format``."""
    handler = logging.StreamHandler(stream)
    match LogFormat(log_format):
        case LogFormat.JSON:
            handler.setFormatter(JsonFormatter())
        case LogFormat.KEY_VALUE:
            handler.setFormatter(KeyValueFormatter())
        case LogFormat.TEXT:
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    # websockets' own lines for every connection ("connection open", "connection closed")
    # repeat the servers' (peer, close code), and cost a log record each when thousands
    # connect at once: only its warnings, unless every line is asked for.
    logging.getLogger("wslab.websockets").setLevel(logging.NOTSET if verbose else logging.WARNING)
