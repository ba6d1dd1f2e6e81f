"""WebSocket close codes, named: the only close-code enums wslab's code uses.

:class:`CloseCode` has websockets' names and values (:class:`websockets.frames.CloseCode`),
but the I/O-free core cannot import websockets, and one name should mean one class across
the package: so the shells use this one too. Both are :class:`~enum.IntEnum`, and websockets
takes any int, so nothing is lost. (``test_layers`` checks that no module takes websockets'.)
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["AppCloseCode", "CloseCode"]


class CloseCode(IntEnum):
    """The close codes of RFC 6455 section 7.4.1 (the same names as :mod:`websockets.frames`)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


class AppCloseCode(IntEnum):
    """Close codes this application defines (RFC 6455 leaves 4000-4999 to applications)."""

    #: The client fell too far behind; it should reconnect and resume from its last seq.
    TOO_SLOW = 4001
    #: A newer connection of the same user (a reconnect) replaced this one.
    REPLACED = 4002
    #: The instructor removed this user from the room: do not reconnect (4003, as HTTP 403).
    KICKED = 4003
