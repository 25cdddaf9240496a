"""The grammar of hostile records for tests/faults/test_fuzz_hostile.py, and the judge of what came back.

`Grammar(seed, ...)` draws a deterministic stream of records from `random.Random(seed)`: hostile ones from every
class of issue 7 (bytes, JSON shapes, numbers, unicode, depth, size, width, ids, control, ledger) with valid
suggestions interleaved. Each record knows what it must end in (`Expect`): a dead letter of one of some types,
one final result per suggestion, either of the two, or nothing. Every suggestion of every message carries a
`tag` param whose prefix (`v12.0`, `h40.0`, `f3.0`) names its message and index, so each result is attributed
to the record that caused it whatever id the bridge gave it. Dead letters are attributed by the original's
topic, partition and offset (forged ledger records also by their key, the run id).

`judge(items, letters, results)` holds the outcomes to the expectations: while the test waits it says what is
still outstanding; at the end it lists every problem and the counts per class.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import string
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridge.service.intake import run_id_of
from tests.faults.harness import study_names

TOKEN = "fuzz-control-token"  # control.token of the service under test
MAX_MESSAGE_BYTES = 960 * 1024  # below the broker's 1 MiB, so a record past it can still be produced
LIMITS = {"max_depth": 32, "max_string_length": 65536, "max_width": 10_000, "max_excerpt_bytes": 65536}
MAX_LETTER_BYTES = LIMITS["max_excerpt_bytes"] * 4 // 3 + 32 * 1024  # a bounded dead letter: excerpt + envelope
NAP_S = 2.0  # how long the runs that control messages try to stop from another study take

TopicRole = Literal["suggestions", "control", "ledger"]
Kind = Literal["valid", "dead", "once", "maybe", "resend"]


def templates() -> dict[str, dict[str, Any]]:
    """The templates of the service under test: `noop` (the command `true`, instant) and `nap` (`sleep`)."""
    inputs = [
        {"name": "tag", "type": "str"},
        {"name": "x", "type": "float", "value": 0.0, "isOptional": True},
        {"name": "n", "type": "int", "value": 0, "isOptional": True},
        {"name": "blob", "type": "dict", "value": {}, "isOptional": True},
        {"name": "items", "type": "list", "value": [], "isOptional": True},
    ]
    # The tag goes into argv: a NUL byte there is what made process creation fail (issue 7, item 3).
    noop = {"kind": "job", "container": {"image": "busybox", "command": ["true"], "args": ["{{ tag }}", "{{ n }}"]}}
    nap_inputs = [{"name": "tag", "type": "str"}, {"name": "secs", "type": "float"}]
    nap = {"kind": "job", "container": {"image": "busybox", "command": ["sleep", "{{ secs }}"]}}
    return {
        "noop": {
            "component": {"kind": "component", "name": "noop", "inputs": inputs, "run": noop},
            "matrix": {"kind": "mapping", "concurrency": 8},
        },
        "nap": {
            "component": {"kind": "component", "name": "nap", "inputs": nap_inputs, "run": nap},
            "matrix": {"kind": "mapping", "concurrency": 4},
            "cache": {"disable": True},
        },
    }


@dataclass(frozen=True)
class Expect:
    """What a record must end in.

    - `valid`: no dead letter; exactly one final (not replayed) result per suggestion, succeeded.
    - `dead`: exactly one dead letter, of a type in `types` (empty: any); results for its suggestions, if any,
      only failed ones with an error type in `types`, at most one each.
    - `once`: either `dead` (any type) or `valid` without the status requirement: answered exactly once.
    - `maybe`: at most one dead letter (of a type in `types`, if any), no result (behaviour the contract leaves open).
    - `resend`: no dead letter; its suggestions' results are the original's (a copy must say `replayed: true`).
    """

    kind: Kind
    types: frozenset[str] = frozenset()


def dead(*types: str) -> Expect:
    return Expect("dead", frozenset(types))


VALID = Expect("valid")
ONCE = Expect("once")
MAYBE = Expect("maybe")


@dataclass
class Item:
    """One record of the stream, with where it landed once produced."""

    n: int
    cls: str  # the grammar class: valid, bytes, json_shape, numbers, unicode, depth, size, width, ids, control, ledger
    variant: str
    role: TopicRole
    key: bytes | None
    value: bytes | None
    expect: Expect
    tags: tuple[str, ...] = ()  # the tag tokens of its suggestions ("v12.0", ...)
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None  # the partition to produce to (ledger records); None: by key
    placed: tuple[int, int] | None = None  # (partition, offset) once produced
    note: str = ""  # shown beside the item in problems (e.g. which suggestion a conflict conflicts with)

    @property
    def hostile(self) -> bool:
        return self.cls != "valid"


# ---- building blocks -------------------------------------------------------------------------------------

VALID_DECOR = [
    "",
    "é",
    "日本語",
    "😀",
    "\u2028\u2029",
    "\u202ertl",
    "a\u0301",
    "\ufeffbom",
    "\U0010fffd",
    "zwj\u200d",
    "tab\tnl\n",
    'quote"back\\slash',
    "<script>",
    "' OR 1=1 --",
    "$(touch x); rm -rf ~",
    "{{ 7*7 }}",
    "%s%n",
]
EDGE_FLOATS = [0.0, -0.0, 1e308, -1e308, 5e-324, 2.5, 1e-300]
EDGE_INTS = [0, -1, 7, 2**63 - 1, -(2**63)]
LONE_SURROGATES = ["\ud800", "\udfff", "x\ud800y", "\ud800\ud800", "\udc00\ud800", "\udbff"]
BYTES_VARIANTS = (
    *("random", "empty", "null_value", "truncated", "trailing", "bom", "utf16", "bad_utf8", "control_char"),
    *("noise", "headers", "binary_key"),
)
NUMBER_VARIANTS = (
    *("inf_param", "inf_metadata", "inf_op_params", "inf_iteration", "nan_literal", "inf_string"),
    *("big_int", "huge_literal", "big_int_string"),
)
UNICODE_VARIANTS = (
    *("surrogate_param", "surrogate_key", "surrogate_metadata", "surrogate_study", "nul_param", "nul_key"),
    *("nul_metadata", "nul_id", "raw_surrogate_bytes"),
)
SIZE_VARIANTS = (
    *("long_string", "long_key", "big_garbage", "big_unknown_template", "big_bad_params", "big_valid"),
    "too_large",
)
BAD_UTF8 = [b"\xed\xa0\x80", b"\xc0\x80", b"\xff", b"\x80", b"\xf5\x80\x80\x80", b"\xe2\x82"]


def _dumps(body: Any, *, ascii_only: bool = True) -> bytes:
    # ensure_ascii writes lone surrogates and NUL as \u escapes: the hostile text arrives as JSON escapes.
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _deep(depth: int, kind: Literal["dict", "list"]) -> str:
    # Written as text: json.dumps of a structure this deep would overflow the test's own recursion.
    if kind == "dict":
        return '{"d":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


DEEP = "__deep__"


def _with_deep(body: dict[str, Any], deep_text: str) -> bytes:
    return _dumps(body).replace(json.dumps(DEEP).encode(), deep_text.encode())


class Grammar:
    """A deterministic stream of hostile and valid records (see the module docstring)."""

    def __init__(self, seed: int, *, marker: Path) -> None:
        self.rng = random.Random(seed)
        prefix = f"h{self.rng.getrandbits(24):06x}"
        self.studies = study_names(prefix, per_partition=2)
        self.marker = marker
        self.items: list[Item] = []
        # Explicit-id valid noop suggestions (key, study, id, params): a conflict goes with the same key, so it
        # lands on the original's partition, after it.
        self._originals: list[tuple[bytes | None, str, str, dict[str, Any], str]] = []
        self._resendable: list[Item] = []
        self._naps: list[tuple[str, str]] = []  # (study, suggestion id) of nap runs, for control stops
        self._hostile: list[tuple[float, Callable[[int], Item]]] = [
            (14, self._bytes),
            (16, self._json_shape),
            (12, self._numbers),
            (14, self._unicode),
            (8, self._depth),
            (1.5, self._width),
            (0.25, self._size),
            (10, self._ids),
            (12, self._control),
        ]

    # ---- the stream --------------------------------------------------------------------------------------

    def stream(self, hostile: int, *, valid_share: float = 0.09, wide: int = 3, naps: int = 5) -> list[Item]:
        """`hostile` hostile records (suggestions and control topics) with valid ones interleaved."""
        total_guess = int(hostile / (1 - valid_share))
        specials = {
            **{int(total_guess * (k + 1) / (wide + 1)): "wide" for k in range(wide)},
            **{int(total_guess * (k + 0.5) / naps): "nap" for k in range(naps)},
        }
        stops: list[tuple[int, tuple[str, str]]] = []  # (due position, nap run) for a stop from another study
        weights = [w for w, _ in self._hostile]
        makers = [m for _, m in self._hostile]
        count = 0
        while count < hostile:
            n = len(self.items)
            special = specials.pop(n, None)
            if special == "wide":
                self.items.append(self._valid(n, suggestions=self.rng.randint(100, 200)))
            elif special == "nap":
                self.items.append(self._nap(n))
                stops.append((n + self.rng.randint(3, 30), self._naps[-1]))
            elif stops and stops[0][0] <= n:
                self.items.append(self._foreign_stop(n, stops.pop(0)[1]))
                count += 1
            elif self.rng.random() < valid_share:
                self.items.append(self._valid(n))
            else:
                maker = self.rng.choices(makers, weights)[0]
                self.items.append(maker(n))
                count += 1
        return list(self.items)  # a copy: records made later (the forged ledger ones) are sent on their own

    def forged_ledger(self, partitions: int, per_partition: int = 5) -> list[Item]:
        """Records written straight to the ledger topic by someone who is not the bridge (issue 7, item 1)."""
        out = []
        for p in range(partitions):
            for k in range(per_partition):
                n = len(self.items)
                variant = ["inline_received", "inline_dispatched", "unknown_template", "invalid_params", "garbage"][
                    k % 5
                ]
                item = self._forged(n, variant, p)
                self.items.append(item)
                out.append(item)
        return out

    # ---- valid -------------------------------------------------------------------------------------------

    def _tag(self, token: str) -> str:
        return f"{token}:{self.rng.choice(VALID_DECOR)}"

    def _valid(self, n: int, suggestions: int | None = None) -> Item:
        rng = self.rng
        study = rng.choice(self.studies)
        count = suggestions or rng.choice([1, 1, 1, 2, 2, 3, 4])
        op_params: dict[str, Any] = {"n": rng.choice(EDGE_INTS)} if rng.random() < 0.2 else {}
        entries = [self._valid_suggestion(n, i, with_n=not op_params) for i in range(count)]
        body: dict[str, Any] = {"schema": "bridge.suggestion/v1", "study": study, "template": "noop"}
        if rng.random() < 0.5:
            body["iteration"] = n
        if op_params:
            body["params"] = op_params
        body["suggestions"] = entries
        if rng.random() < 0.3:
            body["metadata"] = {"optimizer": rng.choice(VALID_DECOR), "deep": self._nested(rng.randint(1, 8))}
        if rng.random() < 0.1:
            body.pop("schema")  # a suggestion without `schema` is read as bridge.suggestion/v1
        key = study.encode()
        variant = "suggestions" if count > 1 else "one"
        if rng.random() < 0.03:
            key, variant = b"\xff\x00" + rng.randbytes(8), "binary_key"  # the key is not the body's concern
        item = Item(n, "valid", variant, "suggestions", key, _dumps(body, ascii_only=rng.random() < 0.5), VALID)
        item.tags = tuple(f"v{n}.{i}" for i in range(count))
        if not op_params:  # a conflict changes the suggestion's own params; op-level ones would blur which
            note = f"original #{n} of {count} suggestions"
            self._originals += [(key, study, e["id"], e["params"], note) for e in entries if "id" in e]
        if count <= 4:
            self._resendable.append(item)
        return item

    def _valid_suggestion(self, n: int, i: int, *, with_n: bool) -> dict[str, Any]:
        rng = self.rng
        params: dict[str, Any] = {"tag": self._tag(f"v{n}.{i}")}
        if rng.random() < 0.4:
            params["x"] = rng.choice(EDGE_FLOATS)
        if rng.random() < 0.3 and with_n:
            params["n"] = rng.choice(EDGE_INTS)
        if rng.random() < 0.1:
            params["blob"] = self._nested(rng.randint(2, 12))
        if rng.random() < 0.05:
            params["items"] = list(range(rng.randint(100, 5000)))  # wide, under the limit
        entry: dict[str, Any] = {"params": params}
        if rng.random() < 0.7:
            entry["id"] = f"v{n}-{i}"
        return entry

    def _nested(self, depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"leaf": self.rng.choice(EDGE_FLOATS)}
        for _ in range(depth - 1):
            node = {"k": node}
        return node

    def _nap(self, n: int) -> Item:
        study = self.rng.choice(self.studies)
        sid = f"v{n}-0"
        body = {
            "study": study,
            "template": "nap",
            "suggestions": [{"id": sid, "params": {"tag": f"v{n}.0:nap", "secs": NAP_S}}],
        }
        self._naps.append((study, sid))
        item = Item(n, "valid", "nap", "suggestions", study.encode(), _dumps(body), VALID, tags=(f"v{n}.0",))
        return item

    # ---- hostile: helpers --------------------------------------------------------------------------------

    def _study(self) -> str:
        return self.rng.choice(self.studies)

    def _base(self, n: int, study: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A valid one-suggestion message: the hostile variants change one thing in it."""
        return {
            "schema": "bridge.suggestion/v1",
            "study": study or self._study(),
            "template": "noop",
            "suggestions": [{"id": f"h{n}-0", "params": params or {"tag": f"h{n}.0:hostile"}}],
        }

    def _item(self, n: int, cls: str, variant: str, value: bytes | None, expect: Expect, **kw: Any) -> Item:
        """A hostile record keyed by a study (unless `key` is given), its one suggestion tagged `h<n>.0`."""
        key = kw.pop("key") if "key" in kw else self._study().encode()
        tags = kw.pop("tags", (f"h{n}.0",))
        return Item(n, cls, variant, kw.pop("role", "suggestions"), key, value, expect, tags=tags, **kw)

    # ---- hostile: bytes ----------------------------------------------------------------------------------

    def _bytes(self, n: int) -> Item:
        rng = self.rng
        raw = _dumps(self._base(n))
        variant = rng.choice(BYTES_VARIANTS)
        extra: dict[str, Any] = {}
        value: bytes | None
        if variant == "random":
            value = b"\xff" + rng.randbytes(rng.randint(0, 300))
        elif variant == "empty":
            value = b""
        elif variant == "null_value":
            value = None  # a tombstone on the suggestions topic
        elif variant == "truncated":
            value = raw[: rng.randint(1, len(raw) - 1)]
        elif variant == "trailing":
            value = raw + rng.choice([b" x", b"}", b"{}", b"\x00"])
        elif variant == "bom":
            value = b"\xef\xbb\xbf" + raw
        elif variant == "utf16":
            value = raw.decode().encode("utf-16")
        elif variant == "bad_utf8":
            at = raw.index(b"hostile")
            value = raw[:at] + rng.choice(BAD_UTF8) + raw[at:]
        elif variant == "control_char":
            at = raw.index(b"hostile")
            value = raw[:at] + bytes([rng.choice([0, 1, 0x1F, 0x0A])]) + raw[at:]  # unescaped inside a string
        elif variant == "noise":
            value = ("{x" + "".join(rng.choices(string.printable, k=rng.randint(0, 200)))).encode()
        elif variant == "headers":
            value = raw[:-1]
            extra["headers"] = (("trace-id", rng.randbytes(16)), ("x-bin", b"\x00\xff"), ("empty", b""))
        else:  # binary_key: a hostile key on an unreadable value
            value = b"\xfe" + rng.randbytes(20)
            extra["key"] = rng.randbytes(rng.randint(1, 64))
        expect = dead() if variant == "null_value" else dead("invalid_json")
        return self._item(n, "bytes", variant, value, expect, **extra)

    # ---- hostile: JSON shapes ----------------------------------------------------------------------------

    WRONG_FIELDS: Sequence[tuple[str, Any]] = (
        ("study", 42),
        ("study", None),
        ("study", ""),
        ("study", "bad study!"),
        ("study", "x" * 200),
        ("template", 7),
        ("template", ["noop"]),
        ("suggestions", {}),
        ("suggestions", "x"),
        ("suggestions", []),
        ("suggestions", [1]),
        ("suggestions", [{"id": "no-params"}]),
        ("suggestions", [{"params": {"tag": "t"}, "extra": 1}]),
        ("iteration", -1),
        ("iteration", "x"),
        ("iteration", 1.5),
        ("params", []),
        ("params", "x"),
        ("metadata", "x"),
        ("metadata", [1]),
        ("operation", "sh -c id"),
        ("bogus", 1),
    )
    BAD_PARAMS: Sequence[tuple[str, Any]] = (
        ("n", "abc"),
        ("n", 1.5),
        ("x", [1]),
        ("x", "nan"),
        ("x", {"a": 1}),
        ("blob", "s"),
        ("items", {"a": 1}),
        ("tag", "<missing>"),
    )

    def _json_shape(self, n: int) -> Item:
        rng = self.rng
        variant = rng.choice(["top_level", "wrong_field", "missing", "schema", "template", "inline", "params"])
        body: Any = self._base(n)
        expect = dead("invalid_message")
        if variant == "top_level":
            body = rng.choice([[1, 2], "text", 3, None, True, [body]])
        elif variant == "wrong_field":
            name, value = rng.choice(self.WRONG_FIELDS)
            body[name] = value
        elif variant == "missing":
            body.pop(rng.choice(["study", "template", "suggestions"]))
        elif variant == "schema":
            body["schema"] = rng.choice(["bridge.nope/v9", "bridge.suggestion/v2", "bridge.result/v1", 5, None])
            expect = dead("unknown_schema")
        elif variant == "template":
            body["template"] = rng.choice(["no-such-template", "Noop", "noop2"])
            expect = dead("unknown_template")
        elif variant == "inline":
            body["operation"] = self._inline_operation()
            expect = dead("inline_operation_refused")
        else:
            name, value = rng.choice(self.BAD_PARAMS)
            params = body["suggestions"][0]["params"]
            if value == "<missing>":
                params.pop(name)
            else:
                params[name] = value
            variant = f"params_{name}"
            expect = dead("invalid_params")
        return self._item(n, "json_shape", variant, _dumps(body), expect)

    def _inline_operation(self) -> dict[str, Any]:
        """A full operation whose only run would create the marker file: it must never run."""
        return {
            "kind": "operation",
            "name": "forged",
            "component": {
                "kind": "component",
                "name": "forged",
                "run": {
                    "kind": "job",
                    "container": {"image": "busybox", "command": ["sh", "-c", f"touch {self.marker}"]},
                },
            },
        }

    # ---- hostile: numbers --------------------------------------------------------------------------------

    def _numbers(self, n: int) -> Item:
        rng = self.rng
        variant = rng.choice(NUMBER_VARIANTS)
        body = self._base(n)
        params = body["suggestions"][0]["params"]
        literal = rng.choice(["1e999", "-1e999", "1E400", "1.8e308", "-2e308"])
        expect = dead("non_finite_number")
        if variant == "inf_param":
            params["x"] = DEEP
        elif variant == "inf_metadata":
            body["metadata"] = {"a": {"b": [1, DEEP]}}
        elif variant == "inf_op_params":
            body["params"] = {"x": DEEP}
        elif variant == "inf_iteration":
            body["iteration"] = DEEP
        elif variant == "nan_literal":
            params["x"] = DEEP
            literal = rng.choice(["NaN", "Infinity", "-Infinity"])
            expect = dead("non_finite_number", "invalid_json")  # not JSON at all, and not finite either
        elif variant == "inf_string":
            params["x"] = rng.choice(["1e999", "inf", "-Infinity", "nan", "1e400"])  # a float only once parsed
            expect = dead("invalid_params", "non_finite_number")
        elif variant == "big_int":
            literal = str(rng.choice([2**64, -(2**63) - 1, 10**30, 2**63]))
            params["n"] = DEEP
            expect = dead("number_out_of_range", "invalid_params")
        elif variant == "huge_literal":
            literal = "9" * rng.randint(4400, 6000)  # past Python's int-from-string digit limit
            params["n"] = DEEP
            expect = dead("number_out_of_range", "invalid_json")
        else:  # big_int_string: a string that only becomes a 70-bit int once typed
            params["n"] = str(10 ** rng.randint(20, 40))
            expect = ONCE
        return self._item(n, "numbers", variant, _with_deep(body, literal), expect)

    # ---- hostile: unicode --------------------------------------------------------------------------------

    def _unicode(self, n: int) -> Item:
        rng = self.rng
        variant = rng.choice(UNICODE_VARIANTS)
        body = self._base(n)
        params = body["suggestions"][0]["params"]
        bad = rng.choice(LONE_SURROGATES) if "surrogate" in variant else rng.choice(["\x00", "a\x00b", "\x00" * 3])
        expect = dead("invalid_string")
        if variant in ("surrogate_param", "nul_param"):
            params["tag"] = params["tag"] + bad
        elif variant in ("surrogate_key", "nul_key"):
            params[bad] = 1
        elif variant in ("surrogate_metadata", "nul_metadata"):
            body["metadata"] = rng.choice([{"note": bad}, {bad: "v"}, {"list": ["ok", bad]}])
        elif variant == "surrogate_study":
            body["study"] = "s" + bad
            expect = dead("invalid_string", "invalid_message")
        elif variant == "nul_id":
            body["suggestions"][0]["id"] = "id" + bad
            expect = dead("invalid_string", "invalid_message")
        else:  # a surrogate written as (invalid) UTF-8 bytes rather than as an escape
            raw = _dumps(body)
            at = raw.index(b"hostile")
            return self._item(n, "unicode", variant, raw[:at] + b"\xed\xa0\x80" + raw[at:], dead("invalid_json"))
        return self._item(n, "unicode", variant, _dumps(body), expect)

    # ---- hostile: depth ----------------------------------------------------------------------------------

    def _depth(self, n: int) -> Item:
        rng = self.rng
        variant = rng.choice(["dict_param", "list_metadata", "just_past", "very_deep", "control_deep"])
        body = self._base(n)
        if variant == "dict_param":
            body["suggestions"][0]["params"]["blob"] = DEEP
            deep = _deep(rng.randint(500, 950), "dict")
        elif variant == "list_metadata":
            body["metadata"] = {"m": DEEP}
            deep = _deep(rng.randint(40, 300), rng.choice(["dict", "list"]))
        elif variant == "just_past":
            body["suggestions"][0]["params"]["blob"] = DEEP
            deep = _deep(rng.randint(33, 40), "dict")
        elif variant == "very_deep":
            body["suggestions"][0]["params"]["items"] = DEEP
            deep = _deep(rng.randint(20_000, 30_000), "list")  # deeper than the JSON decoder itself goes
        else:
            control = self._control_body(self._study())
            control["note"] = DEEP
            value = _with_deep(control, _deep(rng.randint(100, 900), "dict"))
            return self._item(n, "depth", variant, value, dead("too_deep"), role="control", tags=())
        return self._item(n, "depth", variant, _with_deep(body, deep), dead("too_deep"))

    # ---- hostile: width ----------------------------------------------------------------------------------

    def _width(self, n: int) -> Item:
        rng = self.rng
        variant = rng.choice(["list_param", "metadata_keys", "params_keys", "suggestions"])
        body = self._base(n)
        width = LIMITS["max_width"] + rng.randint(1, 500)
        expect = dead("too_wide")
        if variant == "list_param":
            body["suggestions"][0]["params"]["items"] = list(range(width))
        elif variant == "metadata_keys":
            body["metadata"] = {f"k{i}": i for i in range(width)}
        elif variant == "params_keys":
            body["suggestions"][0]["params"].update({f"p{i}": 0 for i in range(width)})
        else:  # past max_suggestions (1024), under the width limit
            count = rng.randint(1025, 1400)
            body["suggestions"] = [{"params": {"tag": f"h{n}.{i}:wide"}} for i in range(count)]
            expect = dead("invalid_message", "too_wide")
            return self._item(n, "width", variant, _dumps(body), expect, tags=tuple(f"h{n}.{i}" for i in range(count)))
        return self._item(n, "width", variant, _dumps(body), expect)

    # ---- hostile: size -----------------------------------------------------------------------------------

    def _size(self, n: int) -> Item:
        rng = self.rng
        variant = rng.choice(SIZE_VARIANTS)
        body = self._base(n)
        params = body["suggestions"][0]["params"]
        chunks = [rng.choice(string.ascii_letters) * 50_000 for _ in range(rng.randint(12, 17))]  # 600-850 KB
        expect: Expect
        if variant == "long_string":
            params["tag"] += "x" * (LIMITS["max_string_length"] + rng.randint(1, 20_000))
            expect = dead("string_too_long")
        elif variant == "long_key":
            body["metadata"] = {"k" * (LIMITS["max_string_length"] + rng.randint(1, 20_000)): 1}
            expect = dead("string_too_long")
        elif variant == "big_garbage":
            return self._item(n, "size", variant, b"\x00" + rng.randbytes(len(chunks) * 50_000), dead("invalid_json"))
        elif variant == "big_unknown_template":
            body["template"] = "no-such-template"
            body["metadata"] = {f"m{i}": c for i, c in enumerate(chunks)}
            expect = dead("unknown_template")
        elif variant == "big_bad_params":
            params.update(items=chunks, n="abc")
            expect = dead("invalid_params")
        elif variant == "big_valid":
            params["items"] = chunks  # valid, but its ledger record (params and given) would be twice this
            expect = ONCE
        else:
            # Past max_message_bytes, still under the broker's 1 MiB so that it reaches the bridge.
            target = MAX_MESSAGE_BYTES + rng.randint(10_000, 50_000)
            body["metadata"] = {f"m{i}": "y" * 40_000 for i in range(target // 40_010)}
            body["metadata"]["rest"] = "z" * (target - len(_dumps(body)) - 12)
            expect = dead("message_too_large")
        return self._item(n, "size", variant, _dumps(body), expect)

    # ---- hostile: ids ------------------------------------------------------------------------------------

    def _ids(self, n: int) -> Item:
        rng = self.rng
        variant = rng.choice(["duplicate", "bad_id", "conflict", "conflict", "resend", "resend"])
        body = self._base(n)
        if variant == "duplicate":
            body["suggestions"].append({"id": f"h{n}-0", "params": {"tag": f"h{n}.1:dup"}})
            return self._item(n, "ids", variant, _dumps(body), dead("invalid_message"), tags=(f"h{n}.0", f"h{n}.1"))
        if variant == "bad_id":
            body["suggestions"][0]["id"] = rng.choice(["bad id!", "", "-x", "x" * 200, 3, ["a"], "../../etc"])
            return self._item(n, "ids", variant, _dumps(body), dead("invalid_message"))
        if variant == "conflict" and self._originals:
            key, study, sid, params, note = rng.choice(self._originals)
            changed = {**params, "tag": f"h{n}.0:conflict"}
            body = self._base(n, study, changed)
            body["suggestions"][0]["id"] = sid
            expect = dead("conflicting_suggestion")
            return self._item(n, "ids", variant, _dumps(body), expect, key=key, note=f"{sid}, {note}")
        if variant == "resend" and self._resendable:
            original = rng.choice(self._resendable)
            item = Item(n, "ids", variant, "suggestions", original.key, original.value, Expect("resend"))
            item.note = f"of #{original.n}"
            return item
        return self._item(
            n,
            "ids",
            "duplicate_in_batch",
            _dumps({**body, "suggestions": body["suggestions"] * 2}),
            dead("invalid_message"),
        )

    # ---- hostile: control --------------------------------------------------------------------------------

    def _control_body(self, study: str, **fields: Any) -> dict[str, Any]:
        body = {"schema": "bridge.control/v1", "action": "stop_run", "study": study, "suggestion_id": "no-such"}
        body.update(token=TOKEN, **fields)
        return body

    def _control(self, n: int) -> Item:
        rng = self.rng
        variant = rng.choice(
            ["no_token", "wrong_token", "garbage", "bad_action", "two_targets", "surrogate", "nan", "schema"]
        )
        study = self._study()
        body = self._control_body(study)
        expect = dead("invalid_message")
        if variant == "no_token":
            body.pop("token")
            expect = dead("control_unauthorized")
        elif variant == "wrong_token":
            body["token"] = rng.choice(["", "guess", TOKEN.upper(), TOKEN + " ", TOKEN[:-1]])
            expect = dead("control_unauthorized")
        elif variant == "garbage":
            value = b"\xff" + rng.randbytes(rng.randint(0, 100))
            return self._item(n, "control", variant, value, dead("invalid_json"), role="control", tags=())
        elif variant == "bad_action":
            body["action"] = rng.choice(["explode", "run", "", None])
        elif variant == "two_targets":
            body["run_id"] = "r-1"
        elif variant == "surrogate":
            body["reason"] = "why" + rng.choice(LONE_SURROGATES)
            expect = dead("invalid_string")
        elif variant == "nan":
            body["reason"] = DEEP
            return self._item(
                n, "control", variant, _with_deep(body, "1e999"), dead("non_finite_number"), role="control", tags=()
            )
        else:
            body["schema"] = rng.choice(["bridge.suggestion/v1", "bridge.control/v2", None])
            expect = dead("unknown_schema")
        return self._item(n, "control", variant, _dumps(body), expect, role="control", tags=())

    def _foreign_stop(self, n: int, nap: tuple[str, str]) -> Item:
        """A stop from another study, with the right token, for a nap run in flight: it must not stop it."""
        study, sid = nap
        other = self.rng.choice([s for s in self.studies if s != study])
        run_id = run_id_of(study, "nap", sid)
        body = self._control_body(other)
        body.pop("suggestion_id")
        if self.rng.random() < 0.5:
            body["run_id"] = run_id  # run ids are deterministic: anyone can compute this one
            variant = "foreign_stop_run"
        else:
            # The service names an operation by the hash of its sorted run ids; a lone nap run is one.
            body.update(action="stop_operation", operation_id=hashlib.sha256(run_id.encode()).hexdigest()[:32])
            variant = "foreign_stop_operation"
        return self._item(n, "control", variant, _dumps(body), MAYBE, role="control", tags=(), key=other.encode())

    # ---- hostile: ledger ---------------------------------------------------------------------------------

    def _forged(self, n: int, variant: str, partition: int) -> Item:
        study = self._study()
        sid = f"forged-{n}"
        template = {"unknown_template": "ghost"}.get(variant, "noop")
        run_id = run_id_of(study, template, sid)
        params: dict[str, Any] = {"tag": f"f{n}.0:forged"}
        if variant == "invalid_params":
            params["n"] = "abc"
        record = {
            "schema": "bridge.ledger/v1",
            "run_id": run_id,
            "state": "dispatched" if variant == "inline_dispatched" else "received",
            "study": study,
            "template": template,
            "suggestion_id": sid,
            "attempt": 1 if variant == "inline_dispatched" else 0,
            "params": params,
            "given": params,
            "metadata": {},
            "operation": self._inline_operation() if variant.startswith("inline") else None,
        }
        value = b"\xff garbage" + self.rng.randbytes(30) if variant == "garbage" else _dumps(record)
        expect = MAYBE if variant == "garbage" else dead("invalid_ledger_record")
        return Item(
            n, "ledger", variant, "ledger", run_id.encode(), value, expect, tags=(f"f{n}.0",), partition=partition
        )


# ---- the judge -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    """What the test needs of one dead letter."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    type: str
    size: int  # bytes of the dead-letter record itself
    header_keys: tuple[str, ...] | None  # None: the dead letter has no `headers` field


@dataclass(frozen=True)
class Result:
    """What the test needs of one final result."""

    token: str | None  # the tag's prefix ("v12.0"), None when the result carries no tag
    study: str
    suggestion_id: str
    status: str
    replayed: bool
    error_type: str | None


def parse_letter(raw: bytes) -> Letter | None:
    m = json.loads(raw)
    if m.get("schema") != "bridge.deadletter/v1":
        return None
    key = base64.b64decode(m["key"]) if m.get("key") is not None else None
    headers = m.get("headers")
    keys = tuple(h.get("key") for h in headers) if isinstance(headers, list) else None
    error = m.get("error") or {}
    return Letter(m["topic"], m["partition"], m["offset"], key, str(error.get("type")), len(raw), keys)


def parse_result(raw: bytes) -> Result | None:
    m = json.loads(raw)
    if m.get("schema") != "bridge.result/v1":
        return None
    tag = (m.get("params") or {}).get("tag")
    token = tag.split(":", 1)[0] if isinstance(tag, str) and ":" in tag else None
    sid = m.get("suggestion_id")
    if token is None and isinstance(sid, str) and (by_id := re.fullmatch(r"([hv]\d+)-(\d+)", sid)):
        # A refused suggestion's answer echoes its params as sent (or none, when too large), perhaps without a
        # readable tag: its id `h<n>-<i>` names the same suggestion as the tag `h<n>.<i>`.
        token = f"{by_id[1]}.{by_id[2]}"
    error = m.get("error") or {}
    return Result(
        token,
        str(m.get("study")),
        str(m.get("suggestion_id")),
        str(m.get("status")),
        bool(m.get("replayed")),
        error.get("type"),
    )


@dataclass
class Verdict:
    """The judge's answer: what is still awaited, what is wrong, and the counts."""

    outstanding: Counter[str] = field(default_factory=Counter)  # by class
    awaited: dict[str, list[str]] = field(default_factory=dict)  # which records, a few per class
    problems: dict[str, list[str]] = field(default_factory=dict)  # by kind of problem, examples
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # by class

    def problem(self, kind: str, example: str) -> None:
        self.problems.setdefault(kind, []).append(example)

    def problem_lines(self, examples: int = 3) -> list[str]:
        return [f"{kind}: {len(ex)}x, e.g. " + " | ".join(ex[:examples]) for kind, ex in sorted(self.problems.items())]


def run_owners(items: Iterable[Item]) -> dict[bytes, Item]:
    """The run id (a ledger key) of every suggestion with an explicit id, and the record it came from: the
    ledger records the bridge wrote itself can be dead-lettered at reconciliation, and this names their cause."""
    out: dict[bytes, Item] = {}
    for item in items:
        if item.role != "suggestions" or not item.value:
            continue
        try:
            body = json.loads(item.value)
            for s in body["suggestions"]:
                out[run_id_of(body["study"], body["template"], s["id"]).encode()] = item
        except (ValueError, KeyError, TypeError, RecursionError):
            continue  # not a message with explicit ids: no run id to know it by
    return out


def judge(
    items: Sequence[Item],
    topics: dict[TopicRole, str],
    letters: Iterable[Letter],
    results: Iterable[Result],
    owners: Mapping[bytes, Item] | None = None,
) -> Verdict:
    """Hold every outcome seen to the items' expectations (see `Expect`); `owners` (`run_owners`) attributes
    dead letters of ledger records by their run id."""
    v = Verdict()
    roles = {name: role for role, name in topics.items()}
    by_place = {(it.role, *it.placed): it for it in items if it.placed is not None}
    by_ledger_key: dict[bytes | None, Item] = {**(owners or {})}
    by_ledger_key.update((it.key, it) for it in items if it.role == "ledger")
    by_token = {t: it for it in items for t in it.tags}
    got_letters: dict[int, list[Letter]] = defaultdict(list)
    finals: dict[str, list[Result]] = defaultdict(list)
    replays: Counter[int] = Counter()
    for letter in letters:
        role = roles.get(letter.topic)
        item = by_place.get((role, letter.partition, letter.offset)) if role else None
        if item is None and role == "ledger":
            item = by_ledger_key.get(letter.key)
        if item is None:
            where = f"{letter.topic}:{letter.partition}@{letter.offset} key {letter.key!r:.80}"
            v.problem("dead letter of no record sent", f"{where} {letter.type}")
            continue
        got_letters[item.n].append(letter)
        if letter.size > MAX_LETTER_BYTES:
            v.problem("dead letter larger than its bound", f"{item.variant}: {letter.size} bytes")
    for result in results:
        item = by_token.get(result.token or "")
        if item is None:
            v.problem("result of no suggestion sent", f"{result.study}/{result.suggestion_id} {result.status}")
        elif result.replayed:
            replays[item.n] += 1
        else:
            finals[result.token or ""].append(result)
    for item in items:
        _judge_item(v, item, got_letters[item.n], {t: finals[t] for t in item.tags}, replays[item.n])
    return v


def _judge_item(v: Verdict, item: Item, letters: list[Letter], finals: dict[str, list[Result]], replays: int) -> None:
    c = v.counts.setdefault(item.cls, Counter())
    c["records"] += 1
    c["dead_letters"] += len(letters)
    c["results"] += sum(len(r) for r in finals.values())
    c["replayed"] += replays
    for letter in letters:
        c[f"dl:{letter.type}"] += 1
    what = f"#{item.n} {item.cls}/{item.variant}" + (f" ({item.note})" if item.note else "")
    kind = item.expect.kind
    before = v.outstanding[item.cls]
    answered = bool(finals) and all(finals.values())
    if kind == "valid":
        c["suggestions"] += len(item.tags)
        v.outstanding[item.cls] += sum(1 for r in finals.values() if not r)
        _valid(v, what, letters, finals)
    elif kind == "dead" or (kind == "once" and letters):
        v.outstanding[item.cls] += not letters
        _one_letter(v, item, what, letters)
        _only_failed(v, item, what, finals)
    elif kind == "once":
        v.outstanding[item.cls] += not answered
        _exactly_once(v, what, finals)
    elif kind == "maybe":
        if len(letters) > 1:
            v.problem("more than one dead letter for one record", f"{what}: {[x.type for x in letters]}")
        if any(finals.values()):
            v.problem("result for a record that must run nothing", what)
    elif letters:  # resend
        v.problem("dead letter for a message sent again", f"{what}: {[x.type for x in letters]}")
    examples = v.awaited.setdefault(item.cls, [])
    if v.outstanding[item.cls] > before and len(examples) < 4:
        examples.append(what)
    if item.headers and letters and letters[0].header_keys != tuple(k for k, _ in item.headers):
        v.problem("dead letter without the record's headers", f"{what}: {letters[0].header_keys}")


def _valid(v: Verdict, what: str, letters: list[Letter], finals: dict[str, list[Result]]) -> None:
    _exactly_once(v, what, finals)
    if letters:
        v.problem("dead letter for a valid message", f"{what}: {[x.type for x in letters]}")
    bad = [(t, r.status, r.error_type) for t, rs in finals.items() for r in rs if r.status != "succeeded"]
    if bad:
        v.problem("valid suggestion not succeeded", f"{what}: {bad[:2]}")


def _one_letter(v: Verdict, item: Item, what: str, letters: list[Letter]) -> None:
    if len(letters) > 1:
        v.problem("more than one dead letter for one record", f"{what}: {[x.type for x in letters]}")
    types = item.expect.types
    wrong = [x.type for x in letters if types and x.type not in types]
    if wrong:
        v.problem(f"wrong dead-letter type for {item.cls}/{item.variant}", f"{what}: {wrong[0]} not in {sorted(types)}")


def _only_failed(v: Verdict, item: Item, what: str, finals: dict[str, list[Result]]) -> None:
    types = item.expect.types
    for token, rs in finals.items():
        if len(rs) > 1:
            v.problem("more than one final result for one suggestion", f"{what} {token}: {len(rs)}")
        for r in rs:
            if r.status != "failed" or (types and r.error_type not in types):
                v.problem("hostile suggestion ran", f"{what} {token}: {r.status} {r.error_type}")


def _exactly_once(v: Verdict, what: str, finals: dict[str, list[Result]]) -> None:
    extra = {t: len(rs) for t, rs in finals.items() if len(rs) > 1}
    if extra:
        v.problem("more than one final result for one suggestion", f"{what}: {extra}")
