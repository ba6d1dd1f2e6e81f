"""Tokens, the rate limiter, wrong join codes per address and audience mode's limits: pure code,
with the clock injected. No sockets, no sleeping."""

from __future__ import annotations

import base64
import hmac
import time

import pytest

from wslab.core import join_code
from wslab.core.audience import AUDIENCE
from wslab.core.auth import TokenError, Tokens
from wslab.core.join_code import CodeVerdict, JoinCodeGuard, new_join_code
from wslab.core.limits import AttemptLimit, TokenBucket


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


def test_wait_says_when_the_next_token_comes_and_takes_nothing(clock: Clock) -> None:
    bucket = TokenBucket(rate=0.5, burst=1, clock=clock)
    assert bucket.wait() == 0 and bucket.wait() == 0  # a token is there; asking takes none
    assert bucket.allow()
    assert bucket.wait() == 2.0  # one token every two seconds
    clock.advance(1.5)
    assert bucket.wait() == 0.5
    clock.advance(0.5)
    assert bucket.wait() == 0 and bucket.allow()


# --- AttemptLimit: wrong guesses per address --------------------------------------------------


def test_a_few_failures_then_one_every_twelve_seconds(clock: Clock) -> None:
    limit = AttemptLimit(per_minute=5, burst=5, clock=clock)
    for _ in range(5):
        assert limit.retry_after("10.0.0.7") == 0
        limit.failed("10.0.0.7")
    assert limit.retry_after("10.0.0.7") == pytest.approx(12.0)  # 60 s / 5
    assert limit.retry_after("10.0.0.8") == 0  # another address is not slowed down
    clock.advance(12)
    assert limit.retry_after("10.0.0.7") == 0
    limit.failed("10.0.0.7")
    assert limit.retry_after("10.0.0.7") == pytest.approx(12.0)
    assert limit.per_hour == 305  # the burst, then 300 an hour


def test_the_guesses_an_hour_allows_are_its_per_hour(clock: Clock) -> None:
    """A guesser who tries the moment it may: per_hour guesses in an hour, no more."""
    limit = AttemptLimit(per_minute=5, burst=5, clock=clock)
    start, guesses = clock.now, 0
    while clock.now - start <= 3600:
        wait = limit.retry_after("guesser")
        if wait:
            clock.advance(wait)
            continue
        limit.failed("guesser")
        guesses += 1
    assert guesses == pytest.approx(limit.per_hour, abs=1)


def test_memory_is_bounded_refilled_keys_go_first(clock: Clock) -> None:
    limit = AttemptLimit(per_minute=60, burst=2, clock=clock, max_keys=3)
    limit.failed("old")
    clock.advance(10)  # "old" has refilled: forgettable
    for key in ("a", "b"):
        limit.failed(key)
        limit.failed(key)
    limit.failed("c")  # over max_keys: "old" goes, the busy ones stay
    assert len(limit) == 3
    assert limit.retry_after("a") > 0 and limit.retry_after("b") > 0 and limit.retry_after("old") == 0


# --- the join code ------------------------------------------------------------------------------


def guard(clock: Clock, code: str | None = "123456") -> JoinCodeGuard:
    return JoinCodeGuard(code=code, limit=AttemptLimit(per_minute=5, burst=5, clock=clock))


def test_the_verdicts_on_a_code(clock: Clock) -> None:
    door = guard(clock)
    assert door.check("123456", "a").verdict is CodeVerdict.OK
    assert door.check(" 123456 ", "a").verdict is CodeVerdict.OK  # typed with a space
    assert door.check(None, "a").verdict is CodeVerdict.MISSING
    assert door.check("", "a").verdict is CodeVerdict.MISSING
    assert door.check("654321", "a").verdict is CodeVerdict.WRONG
    assert door.check(123456, "a").verdict is CodeVerdict.MISSING  # not text: not a code
    assert guard(clock, None).check(None, "a").verdict is CodeVerdict.OK  # an open room


def test_too_many_wrong_codes_refuse_even_the_right_one_until_retry_after(clock: Clock) -> None:
    door = guard(clock)
    for _ in range(5):
        assert door.check("000000", "10.0.0.9").verdict is CodeVerdict.WRONG
    locked = door.check("123456", "10.0.0.9")
    assert locked.verdict is CodeVerdict.TOO_MANY and locked.retry_after == pytest.approx(12.0)
    assert door.check("123456", "10.0.0.10").verdict is CodeVerdict.OK  # someone else, elsewhere
    assert door.check(None, "10.0.0.9").verdict is CodeVerdict.TOO_MANY
    clock.advance(12)
    assert door.check("123456", "10.0.0.9").verdict is CodeVerdict.OK
    assert door.check("123456", "10.0.0.9").verdict is CodeVerdict.OK  # right ones cost nothing


def test_the_code_is_compared_in_constant_time(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """``==`` stops at the first difference, and its time tells a guesser how much was right."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(join_code.hmac, "compare_digest", spy)
    door = guard(clock)
    assert door.check("123450", "a").verdict is CodeVerdict.WRONG
    assert door.check("123456", "a").verdict is CodeVerdict.OK
    assert compared == [(b"123450", b"123456"), (b"123456", b"123456")]


def test_a_new_code_has_its_digits_leading_zeros_included() -> None:
    codes = {new_join_code() for _ in range(200)}
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    assert len(codes) > 190  # random: a million of them
    assert len(new_join_code(AUDIENCE.code_digits)) == 6
    with pytest.raises(ValueError):
        new_join_code(0)


def test_audience_limits_are_one_definition() -> None:
    assert (AUDIENCE.max_users, AUDIENCE.rate, AUDIENCE.max_message) == (200, (5.0, 10.0), 4096)
    assert (AUDIENCE.heartbeat.interval, AUDIENCE.heartbeat.timeout) == (15.0, 45.0)
    per_hour = AttemptLimit(
        per_minute=AUDIENCE.wrong_codes[0], burst=AUDIENCE.wrong_codes[1], clock=time.time
    )
    # The arithmetic the lesson shows: guesses an hour against the code space.
    assert per_hour.per_hour / 10**AUDIENCE.code_digits < 0.001
