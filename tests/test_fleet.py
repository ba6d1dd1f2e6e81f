"""Lesson 07's I/O-free core: the fleet's state and history, ETags, the simulation, SSE framing."""

from __future__ import annotations

import pytest

from wslab.core.fleet import Change, Fleet, FleetSimulation, Status, etag_matches, parse_seq
from wslab.core.sse import SseParser, comment, format_event


def numbered(fleet: Fleet, service: str, seq: int, status: Status = Status.DEPLOYING) -> Change:
    change = Change(service, seq + 1, status, seq, 1000.0 + seq)
    assert fleet.apply(change)
    return change


def test_a_change_moves_the_state_and_its_etag_and_an_old_one_is_ignored() -> None:
    fleet = Fleet(["api", "auth"])
    before = fleet.etag
    numbered(fleet, "api", 1)

    assert fleet.seq == 1 and fleet.services["api"].status is Status.DEPLOYING
    assert fleet.etag != before
    assert not fleet.apply(Change("auth", 9, Status.FAILED, 1))  # not newer: a duplicate
    assert fleet.services["auth"].status is Status.HEALTHY


def test_two_servers_with_the_same_state_give_the_same_etag() -> None:
    one, two = Fleet(["api"]), Fleet(["api"])
    for fleet in (one, two):
        numbered(fleet, "api", 1)

    assert one.etag == two.etag and one.etag.startswith('"')


def test_changes_after_replays_what_is_kept_and_says_when_it_is_not() -> None:
    fleet = Fleet(["api"], history=3)
    for seq in range(1, 6):
        numbered(fleet, "api", seq)

    assert [c.seq for c in fleet.changes_after(3) or []] == [4, 5]
    assert fleet.changes_after(5) == []
    assert fleet.changes_after(1) is None  # 2 is gone: the client needs a snapshot
    assert fleet.changes_after(9) is None  # a number from before a reset


def test_a_snapshot_loads_into_a_client_copy() -> None:
    fleet = Fleet(["api", "auth"])
    numbered(fleet, "auth", 4)
    copy = Fleet(())
    copy.load(fleet.snapshot())

    assert copy.seq == 4 and copy.services == fleet.services


@pytest.mark.parametrize(
    ("header", "etag", "match"),
    [
        (None, '"a"', False),
        ('"a"', '"a"', True),
        ('W/"a"', '"a"', True),
        ('"a"', 'W/"a"', True),
        ('"b", "a"', '"a"', True),
        ('"ab"', '"a"', False),
        ("*", '"a"', True),
    ],
)
def test_if_none_match_compares_weakly(header: str | None, etag: str, match: bool) -> None:
    assert etag_matches(header, etag) is match


def test_parse_seq_takes_only_numbers() -> None:
    assert [parse_seq(v) for v in ("12", " 3 ", "-1", "x", None, "9" * 30)] == [12, 3, None, None, None, None]


def test_the_simulation_is_seeded_and_follows_the_deploy_story() -> None:
    first = [FleetSimulation(seed=3).next_change() for _ in range(1)]
    one, two = FleetSimulation(seed=3), FleetSimulation(seed=3)
    story = [one.next_change() for _ in range(200)]

    assert story == [two.next_change() for _ in range(200)] and story[:1] == first
    rollbacks = [c for c in story if c.status is Status.ROLLED_BACK]
    assert rollbacks and {c.status for c in story} == set(Status)
    moments = one.schedule(3, 10.0)
    assert moments == sorted(moments) and all(0 < t < 10 for t in moments)


def test_change_from_dict_refuses_what_it_cannot_show() -> None:
    with pytest.raises(ValueError):
        Change.from_dict({"service": "", "version": 1, "status": "healthy"})
    with pytest.raises(ValueError):
        Change.from_dict({"service": "api", "version": 1, "status": "on fire"})


def test_sse_framing_round_trips_through_the_parser() -> None:
    text = "retry: 1000\n\n" + comment("keep-alive") + format_event("a\nb", id=7, event="change")
    parser = SseParser()
    events = parser.feed(text[:10]) + parser.feed(text[10:])

    assert [(e.event, e.data, e.id) for e in events] == [("change", "a\nb", "7")]
    assert parser.retry == 1000 and parser.last_event_id == "7"
    with pytest.raises(ValueError):
        format_event("x", id="1\n2")
