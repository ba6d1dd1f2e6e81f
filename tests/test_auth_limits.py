"""Tokens and the rate limiter: pure code, with the clock injected. No sockets, no sleeping."""

from __future__ import annotations

import base64
import time

import pytest

from wslab.core.auth import TokenError, Tokens
from wslab.core.limits import TokenBucket


class Clock:
    """A clock that moves only when the test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> Tokens:
    return Tokens(secret=b"k" * 32, lifetime=60, clock=clock)


# --- Tokens ---------------------------------------------------------------------------------


def test_a_token_is_valid_for_its_name(tokens: Tokens) -> None:
    token = tokens.issue("alice")
    tokens.verify(token, "alice")  # no exception

    name, expires, signature = token.split(".")
    assert base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)) == b"alice"
    assert int(expires) == int(tokens.clock() + 60)
    assert "=" not in token  # URL-safe base64 without padding: fits anywhere
    assert signature


@pytest.mark.parametrize("name", ["Zoë", "a.b.c", "名前", "x" * 32])
def test_any_username_survives_the_encoding(tokens: Tokens, name: str) -> None:
    token = tokens.issue(name)
    assert token.count(".") == 2  # a dot in the name does not split the token
    tokens.verify(token, name)


def test_a_token_for_another_name_is_refused(tokens: Tokens) -> None:
    with pytest.raises(TokenError, match="issued for another username"):
        tokens.verify(tokens.issue("bob"), "alice")


def test_a_tampered_signature_is_refused(tokens: Tokens) -> None:
    token = tokens.issue("alice")
    last = "A" if token[-1] != "A" else "B"
    with pytest.raises(TokenError, match=r"^invalid token$"):
        tokens.verify(token[:-1] + last, "alice")


def test_a_tampered_name_or_expiry_breaks_the_signature(tokens: Tokens) -> None:
    name, expires, signature = tokens.issue("bob").split(".")
    mallory = base64.urlsafe_b64encode(b"alice").rstrip(b"=").decode()
    with pytest.raises(TokenError, match=r"^invalid token$"):
        tokens.verify(f"{mallory}.{expires}.{signature}", "alice")
    with pytest.raises(TokenError, match=r"^invalid token$"):
        tokens.verify(f"{name}.{int(expires) + 3600}.{signature}", "bob")


def test_a_token_signed_under_another_secret_is_refused(tokens: Tokens, clock: Clock) -> None:
    other = Tokens(secret=b"s" * 32, clock=clock)
    with pytest.raises(TokenError, match=r"^invalid token$"):
        tokens.verify(other.issue("alice"), "alice")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "YWxpY2U.soon.c2ln",  # the expiry is not a number
        "abcde.123.c2ln",  # the name is not base64 (a length no encoding produces)
        "_w.123.c2ln",  # the name decodes, but not to UTF-8
    ],
)
def test_a_malformed_token_is_refused(tokens: Tokens, token: str) -> None:
    with pytest.raises(TokenError, match=r"^malformed token$"):
        tokens.verify(token, "alice")


def test_a_token_expires_after_its_lifetime(tokens: Tokens, clock: Clock) -> None:
    token = tokens.issue("alice")
    clock.advance(60)
    tokens.verify(token, "alice")  # the last valid second
    clock.advance(1)
    with pytest.raises(TokenError, match="expired token"):
        tokens.verify(token, "alice")
    tokens.verify(tokens.issue("alice"), "alice")  # a fresh one works again


@pytest.mark.parametrize("missing", [None, "", 42])
def test_a_missing_token_asks_for_one(tokens: Tokens, missing: object) -> None:
    with pytest.raises(TokenError, match="authentication required: get a token from POST /api/token"):
        tokens.verify(missing, "alice")


def test_each_tokens_instance_has_its_own_random_secret() -> None:
    first, second = Tokens(clock=time.time), Tokens(clock=time.time)
    assert len(first.secret) == 32
    assert first.secret != second.secret
    with pytest.raises(TokenError, match=r"^invalid token$"):
        second.verify(first.issue("alice"), "alice")


# --- TokenBucket ----------------------------------------------------------------------------


def test_a_burst_then_refusal_then_refill(clock: Clock) -> None:
    bucket = TokenBucket(rate=2, burst=3, clock=clock)

    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    assert not bucket.allow()  # refusals take nothing, and give nothing back

    clock.advance(0.25)  # half a token
    assert not bucket.allow()
    clock.advance(0.25)  # a whole one
    assert [bucket.allow(), bucket.allow()] == [True, False]


def test_refill_is_capped_at_the_burst(clock: Clock) -> None:
    bucket = TokenBucket(rate=5, burst=2, clock=clock)
    assert [bucket.allow() for _ in range(3)] == [True, True, False]

    clock.advance(3600)  # an hour of silence buys two messages, not 18 000
    assert [bucket.allow() for _ in range(3)] == [True, True, False]


def test_a_steady_sender_at_the_rate_is_never_refused() -> None:
    clock = Clock(0.0)
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    for _ in range(100):
        assert bucket.allow()
        clock.advance(0.25)  # a quarter: exact in binary floating point, unlike 0.2


@pytest.mark.parametrize(("rate", "burst"), [(0, 10), (-1, 10), (5, 0.5)])
def test_a_bucket_that_could_never_allow_is_an_error(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(rate=rate, burst=burst, clock=time.monotonic)
