"""Property: malformed messages interleaved with good ones on the suggestions topic. Each malformed one gets
exactly one dead letter carrying its bytes, each good suggestion exactly one result, and the bridge keeps serving.
A malformed message that is still readable (an unknown template, an inline operation, bad params) also answers each
of its suggestions once (CONTRACT.md section 3): a failed result of its reason, and its valid ones run.

One `bridge serve` for the whole property (a service per example would be too slow); each example uses study
names of its own, so what it expects is told apart by the records' keys.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.faults.harness import Cluster, Executions, read_to_end, stop_all
from tests.faults.history import (
    Counts,
    History,
    attempt_problems,
    recorded_problems,
    reexecution_problems,
    result_problems,
)
from tests.kafka_broker import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

MAX_SUGGESTIONS = 8  # the service's cap for this test: "too many" is more than this
STUDIES_PER_EXAMPLE = 3

# ---- what to send: recipes, drawn by hypothesis, rendered to bytes with the example's study names ----------


@dataclass(frozen=True)
class Recipe:
    kind: str  # "good" or the kind of malformation
    study: int  # which of the example's studies (the record's key)
    arg: Any = None


WRONG_TYPES: list[tuple[str, Any]] = [
    ("study", 42),
    ("study", None),
    ("study", "bad study!"),
    ("study", ""),
    ("template", 7),
    ("template", ["job"]),
    ("suggestions", {}),
    ("suggestions", "x"),
    ("suggestions", []),
    ("suggestions", [1]),
    ("suggestions", [{"id": "no-params"}]),
    ("iteration", -1),
    ("iteration", "x"),
    ("iteration", 1.5),
    ("params", []),
    ("params", "x"),
    ("metadata", "x"),
    ("metadata", [1]),
    ("suggestions[0].params", 5),
    ("suggestions[0].params", [1]),
    ("suggestions[0].id", "bad id!"),
    ("suggestions[0].id", 3),
    ("suggestions[0].id", ""),
    ("$", [1, 2]),
    ("$", "text"),
    ("$", 3),
    ("$", None),
]
UNKNOWN_SCHEMAS: list[Any] = [
    "bridge.nope/v9",
    "bridge.suggestion/v2",
    "bridge.result/v1",
    "bridge.control/v1",
    5,
    None,
]
BAD_PARAMS: list[tuple[str, Any]] = [
    ("sleep", "abc"),
    ("sleep", [1]),
    ("fail_before", 5.5),
    ("fail_before", "x"),
    ("exitcode", {"a": 1}),
    ("name", "<missing>"),
    ("ignore_sigterm", "maybe"),
]
NON_UTF8 = [b"\xff", b"\xfe", b"\xc3\x28", b"\x80", b"\xed\xa0\x80"]

studies = st.integers(0, STUDIES_PER_EXAMPLE - 1)
good = st.builds(Recipe, st.just("good"), studies, st.tuples(st.integers(1, 4), st.booleans()))
bad = st.one_of(
    st.builds(Recipe, st.just("random_bytes"), studies, st.binary(max_size=300)),
    st.builds(Recipe, st.just("truncated"), studies, st.floats(0, 1, exclude_max=True)),
    st.builds(Recipe, st.just("wrong_type"), studies, st.sampled_from(WRONG_TYPES)),
    st.builds(Recipe, st.just("unknown_schema"), studies, st.sampled_from(UNKNOWN_SCHEMAS)),
    st.builds(Recipe, st.just("unknown_template"), studies, st.sampled_from(["no-such-template", "Job", "jobs"])),
    st.builds(Recipe, st.just("bad_params"), studies, st.tuples(st.sampled_from(BAD_PARAMS), st.integers(0, 3))),
    st.builds(Recipe, st.just("too_many"), studies, st.integers(1, 8)),
    st.builds(Recipe, st.just("non_utf8"), studies, st.tuples(st.floats(0, 1), st.sampled_from(NON_UTF8))),
    st.builds(Recipe, st.just("inline_operation"), studies),
)


@st.composite
def batches(draw: st.DrawFn) -> list[Recipe]:
    """10-20 messages: good and malformed ones, interleaved."""
    goods = draw(st.lists(good, min_size=3, max_size=8))
    bads = draw(st.lists(bad, min_size=10 - len(goods), max_size=20 - len(goods)))
    return list(draw(st.permutations(goods + bads)))


def _body(study: str, seq: int, n: int, *, ids: bool = True, top_params: bool = False) -> dict[str, Any]:
    names = [f"{study}-m{seq}-{j}" for j in range(n)]
    return {
        "schema": "bridge.suggestion/v1",
        "study": study,
        "template": "job",
        "iteration": seq,
        **({"params": {"sleep": 0.0}} if top_params else {}),
        "suggestions": [{**({"id": name} if ids else {}), "params": {"name": name}} for name in names],
        "metadata": {"workload": "fuzz"},
    }


def render(recipe: Recipe, study: str, seq: int) -> tuple[bytes, list[str]]:
    """The record's value, and the job names of the suggestions that must get a result (none for a bad one)."""
    kind, arg = recipe.kind, recipe.arg
    if kind == "good":
        n, ids = arg
        body = _body(study, seq, n, ids=ids, top_params=seq % 2 == 0)
        return json.dumps(body).encode(), [s["params"]["name"] for s in body["suggestions"]]
    raw = json.dumps(_body(study, seq, 2)).encode()
    if kind == "random_bytes":
        return arg, []
    if kind == "truncated":
        return raw[: int(arg * len(raw))], []
    if kind == "non_utf8":
        at = int(arg[0] * len(raw))
        return raw[:at] + arg[1] + raw[at:], []
    return json.dumps(_malformed(recipe, study, seq)).encode(), []


READABLE = {"unknown_template": "unknown_template", "inline_operation": "inline_operation_refused"}


def answers_of(recipe: Recipe, study: str, seq: int) -> dict[str, str]:
    """The answers a readable bad message gets besides its dead letter (CONTRACT.md section 3), by suggestion id:
    each refused suggestion a failed result of this error type, a bad_params message's valid ones `succeeded`."""
    if recipe.kind == "bad_params":
        (_, index) = recipe.arg
        return {f"{study}-m{seq}-{j}": "invalid_params" if j == index else "succeeded" for j in range(4)}
    if recipe.kind in READABLE:
        return {f"{study}-m{seq}-{j}": READABLE[recipe.kind] for j in range(2)}
    return {}


def _key(result: dict[str, Any]) -> str:
    """The suggestion a result answers: its job name, or its id (a refused one may have been sent without name)."""
    return str((result.get("params") or {}).get("name") or result.get("suggestion_id"))


def _answer_problems(results: list[dict[str, Any]], wanted: dict[tuple[str, str], str]) -> list[str]:
    """Exactly one answer per suggestion of a readable bad message, each the expected one."""
    got = Counter((m["study"], _key(m)) for m in results)
    wrong = []
    for m in results:
        want = wanted[(m["study"], _key(m))]
        outcome = (m["status"], (m["error"] or {}).get("type"))
        if outcome != (("succeeded", None) if want == "succeeded" else ("failed", want)):
            wrong.append((m["study"], _key(m), *outcome))
    problems = []
    if set(got) != set(wanted):
        problems.append(f"refused suggestions unanswered: {sorted(set(wanted) - set(got))[:5]}")
    if any(n > 1 for n in got.values()):
        problems.append(f"refused suggestions answered twice: {[k for k, n in got.items() if n > 1][:5]}")
    if wrong:
        problems.append(f"refused suggestions answered wrongly: {wrong[:5]}")
    return problems


def _malformed(recipe: Recipe, study: str, seq: int) -> Any:
    """A JSON document that is not a valid suggestion message for the registered templates."""
    kind, arg = recipe.kind, recipe.arg
    body = _body(study, seq, 2)
    if kind == "wrong_type":
        path, value = arg
        if path == "$":
            return value
        target, _, key = path.rpartition(".")  # "study" or "suggestions[0].<key>"
        node = body["suggestions"][0] if target else body
        node[key] = value
    elif kind == "unknown_schema":
        body["schema"] = arg
    elif kind == "unknown_template":
        body["template"] = arg
    elif kind == "bad_params":
        (param, value), index = arg
        body = _body(study, seq, 4)
        params = body["suggestions"][index]["params"]
        if value == "<missing>":
            del params[param]
        else:
            params[param] = value
    elif kind == "too_many":
        body = _body(study, seq, MAX_SUGGESTIONS + arg)
    elif kind == "inline_operation":
        body["operation"] = {"kind": "operation", "component": {"kind": "component", "run": {"kind": "job"}}}
    else:  # pragma: no cover - every kind is handled
        raise AssertionError(kind)
    return body


# ---- reading what came back ----------------------------------------------------------------------------


def _letters(records: list[ConsumerRecord[Any, Any]]) -> Counter[tuple[bytes, bytes]]:
    out: Counter[tuple[bytes, bytes]] = Counter()
    for r in records:
        m = json.loads(r.value)
        if m.get("schema") == "bridge.deadletter/v1":
            out[(base64.b64decode(m["key"] or ""), base64.b64decode(m["value"] or ""))] += 1
    return out


def _results(records: list[ConsumerRecord[Any, Any]]) -> list[dict[str, Any]]:
    out = [json.loads(r.value) for r in records]
    return [m for m in out if m.get("schema") == "bridge.result/v1"]


async def _send(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _read_until(bootstrap: str, topic: str, done: Callable[[list[Any]], bool]) -> list[Any]:
    try:
        return await read_topic(bootstrap, topic, until=done, timeout_s=30)
    except TimeoutError:
        return await read_topic(bootstrap, topic, until=lambda rs: True, timeout_s=5)


def test_malformed_messages_get_one_dead_letter_each_and_good_ones_are_answered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    cluster = Cluster(kafka_bootstrap, tmp_path, max_parallel=4, concurrency=4, max_suggestions=MAX_SUGGESTIONS)
    topics = cluster.settings.topics
    replica = cluster.replica("fuzz")
    tag = f"z{uuid.uuid4().hex[:6]}"
    sent_bad: Counter[tuple[bytes, bytes]] = Counter()
    sent_good: set[tuple[str, str]] = set()  # (study, job name) of every good suggestion
    sent_answers: dict[tuple[str, str], str] = {}  # (study, suggestion id) of readable bad ones: their answer
    kinds: Counter[str] = Counter()
    examples = 0

    @settings(
        max_examples=20,
        deadline=None,
        database=None,
        print_blob=True,
        phases=(Phase.explicit, Phase.generate),  # no shrinking: each example is a round trip through Kafka
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=batches())
    def one_batch(batch: list[Recipe]) -> None:
        nonlocal examples
        examples += 1
        names = [f"{tag}-e{examples}-s{i}" for i in range(STUDIES_PER_EXAMPLE)]
        keys = {n.encode() for n in names}
        records: list[tuple[bytes, bytes]] = []
        want_letters: Counter[tuple[bytes, bytes]] = Counter()
        want_results: set[tuple[str, str]] = set()
        want_answers: dict[tuple[str, str], str] = {}
        for seq, recipe in enumerate(batch):
            study = names[recipe.study]
            value, good_names = render(recipe, study, seq)
            records.append((study.encode(), value))
            kinds[recipe.kind] += 1
            if recipe.kind == "good":
                want_results |= {(study, n) for n in good_names}
            else:
                want_letters[(study.encode(), value)] += 1
                want_answers.update({(study, sid): a for sid, a in answers_of(recipe, study, seq).items()})
        sent_bad.update(want_letters)
        sent_good.update(want_results)
        sent_answers.update(want_answers)

        def mine(letters: Counter[tuple[bytes, bytes]]) -> Counter[tuple[bytes, bytes]]:
            return Counter({k: n for k, n in letters.items() if k[0] in keys})

        def answered(results: list[dict[str, Any]]) -> set[tuple[str, str]]:
            return {(m["study"], _key(m)) for m in results if m.get("study") in names}

        async def round_trip() -> tuple[Counter[tuple[bytes, bytes]], list[dict[str, Any]]]:
            await _send(kafka_bootstrap, topics.suggestions, records)
            dlq = await _read_until(kafka_bootstrap, topics.dead_letters, lambda rs: mine(_letters(rs)) >= want_letters)
            every = want_results | set(want_answers)
            res = await _read_until(kafka_bootstrap, topics.results, lambda rs: answered(_results(rs)) >= every)
            return mine(_letters(dlq)), [m for m in _results(res) if m.get("study") in names]

        letters, all_results = asyncio.run(round_trip())
        missing_letters = want_letters - letters
        extra_letters = letters - want_letters
        results = [m for m in all_results if (m["study"], _key(m)) not in want_answers]
        answer_problems = _answer_problems(
            [m for m in all_results if (m["study"], _key(m)) in want_answers], want_answers
        )
        assert not answer_problems, answer_problems
        got = Counter((m["study"], m["params"]["name"]) for m in results)
        assert not missing_letters, f"bad messages without a dead letter: {list(missing_letters)[:3]}"
        assert not extra_letters, f"dead letters beyond one per bad message: {list(extra_letters)[:3]}"
        assert set(got) == want_results, f"good suggestions unanswered: {sorted(want_results - set(got))[:5]}"
        assert all(n == 1 for n in got.values()), f"duplicated results: {[k for k, n in got.items() if n > 1]}"
        assert all(m["status"] == "succeeded" for m in results), [m for m in results if m["status"] != "succeeded"]

    try:
        replica.start()
        asyncio.run(replica.wait_ready())
        one_batch()
        assert replica.alive(), f"the bridge died:\n{replica.log_tail()}"
        problems = asyncio.run(stop_all(cluster.replicas))
    finally:
        cluster.kill_all()

    # Everything settled and the bridge stopped: read it all once more, to the end, and count exactly.
    async def read_all() -> tuple[list[Any], list[Any], list[Any], list[str]]:
        letters, p1 = await read_to_end(kafka_bootstrap, topics.dead_letters)
        results, p2 = await read_to_end(kafka_bootstrap, topics.results)
        ledger, p3 = await read_to_end(kafka_bootstrap, topics.ledger)
        return letters, results, ledger, [p for p in (p1, p2, p3) if p]

    letter_records, result_records, ledger_records, read_problems = asyncio.run(read_all())
    problems += read_problems
    letters = _letters(letter_records)
    c = Counts(dead_letters=sum(letters.values()))
    every = _results(result_records)
    problems += _answer_problems([m for m in every if (m["study"], _key(m)) in sent_answers], sent_answers)
    results = [m for m in every if (m["study"], _key(m)) not in sent_answers]
    for m in results:
        m["suggestion_id"] = m["params"]["name"]  # one key per suggestion, whether its id was given or derived
    problems += result_problems(results, sent_good, c, all_succeeded=True)
    # The history of the runs themselves (tests/faults/history.py): no attempt executed twice or unrecorded.
    # Runs of good suggestions only: a bad message's valid suggestions run too, under names this test does not track.
    good_names = {sid for _, sid in sent_good}
    ran = [e for e in Executions(cluster.record).all() if e.name in good_names]
    execs = History.of(results=[], ledger=[], executions=ran, wanted=set()).by_name()
    ledger = History.of(results=[], ledger=ledger_records, executions=[], wanted=set()).ledger
    problems += reexecution_problems(execs, good_names, [], c)
    problems += attempt_problems(results, execs, [], c)
    problems += recorded_problems(results, ledger, execs)
    if letters != sent_bad:
        problems.append(
            f"dead letters {sum(letters.values())} for {sum(sent_bad.values())} bad messages: "
            f"missing {list((sent_bad - letters).items())[:3]}, extra {list((letters - sent_bad).items())[:3]}"
        )
    print(
        f"faults[fuzz]: examples={examples} messages={sum(kinds.values())} bad={sum(sent_bad.values())} "
        f"dead_letters={c.dead_letters} good_suggestions={len(sent_good)} results={c.results} "
        f"duplicates={c.duplicates} missing={c.missing} kinds={dict(sorted(kinds.items()))}"
    )
    for p in problems:
        print(f"  problem: {p}")
    assert not problems, "\n".join(problems)
