"""What a client keeps of what it read (bridge/client/inbox.py), in memory: a result it expects outlasts any number
of other studies' results, every result dropped untaken is counted, and a taken one stays readable for `answers`."""

from __future__ import annotations

from bridge.client.inbox import Inbox
from tests.client.client_support import result


def test_an_expected_result_outlasts_other_studies_and_drops_are_counted() -> None:
    inbox = Inbox(keep=3)
    inbox.expect([("mine", "a")])
    inbox.put([result("mine", "a")])
    inbox.put(result("other", f"o{n}") for n in range(5))
    assert inbox.peek(("mine", "a")) == result("mine", "a")
    assert [inbox.peek(("other", f"o{n}")) is not None for n in range(5)] == [False, False, False, True, True]
    assert inbox.dropped == 3

    taken = inbox.take(("mine", "a"))
    assert taken == result("mine", "a") and inbox.take(("mine", "a")) is None  # each result is taken once
    assert result("mine", "a") in inbox.results_since(("suggestions", 0, 0))  # still readable for `answers`
    inbox.put([result("other", "o5")])
    assert inbox.dropped == 3  # a taken result went first: nothing untaken was lost


def test_a_listener_that_does_not_keep_up_counts_what_it_lost() -> None:
    inbox = Inbox(keep=2)
    with inbox.listen() as listener:
        inbox.put(result("s", f"t{n}") for n in range(3))
        assert [r.suggestion_id for r in listener.drain()] == ["t1", "t2"]  # type: ignore[union-attr]
    assert inbox.dropped == 2  # t0 from the listener, t0 from the inbox itself
