"""A classroom's join code, checked so that guessing it takes longer than the class. No I/O.

The code is on the projector; anyone who can see it may join. Anyone who cannot must guess,
and three things make guessing hopeless together:

* a limit on wrong codes per client address (:class:`~wslab.core.limits.AttemptLimit`:
  a few a minute, so about 300 an hour);
* enough codes for that limit: six digits are a million codes, so 300 guesses an hour find
  it with a chance of 0.03 % per hour, and trying them all takes 137 days (four digits:
  3 % per hour, all of them in 33 hours);
* a comparison in constant time (:func:`hmac.compare_digest`): ``==`` stops at the first
  character that differs, and how long it took says how many were right.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from .limits import AttemptLimit

__all__ = ["CodeCheck", "CodeVerdict", "JoinCodeGuard", "new_join_code"]


def new_join_code(digits: int = 6) -> str:
    """A random code of ``digits`` decimal digits (leading zeros kept): easy to type on a phone."""
    if digits < 1:
        raise ValueError("a join code needs at least one digit")
    return f"{secrets.randbelow(10**digits):0{digits}d}"


class CodeVerdict(StrEnum):
    """What a guard says of the code someone gave."""

    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"
    #: Too many wrong codes from this address lately: refused without looking.
    TOO_MANY = "too many"


@dataclass(frozen=True)
class CodeCheck:
    verdict: CodeVerdict
    #: Seconds until this address may try again (``TOO_MANY`` only).
    retry_after: float = 0.0


@dataclass(kw_only=True)
class JoinCodeGuard:
    """Checks codes against ``code`` (None: no code needed), wrong ones counted per address."""

    code: str | None
    limit: AttemptLimit

    def check(self, given: object, who: str) -> CodeCheck:
        """The verdict on ``given`` (the code as sent) from ``who`` (the client's address)."""
        if self.code is None:
            return CodeCheck(CodeVerdict.OK)
        wait = self.limit.retry_after(who)
        if wait > 0:
            return CodeCheck(CodeVerdict.TOO_MANY, wait)
        if not isinstance(given, str) or not given.strip():
            return CodeCheck(CodeVerdict.MISSING)
        if hmac.compare_digest(given.strip().encode(), self.code.encode()):
            return CodeCheck(CodeVerdict.OK)
        self.limit.failed(who)
        return CodeCheck(CodeVerdict.WRONG)
