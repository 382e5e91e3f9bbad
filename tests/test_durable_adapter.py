"""durable-rules adapter: same firings as the interpreter and compiled predicates.

The property test builds random typed expression trees over a small schema and
random facts (nulls, missing fields, zeros, negatives, awkward strings) and
requires durable-rules, engine.language.expr.evaluate and compile_predicate to agree.
Each example is a ruleset of several rules, so a durable fault that fires only
the first matching rule would show. Other tests cover the measured faults:
thousands of sessions in one process, the owning thread, exceptions in actions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.language import expr as E
from engine.events.durable import (
    MAX_LIVE_SESSIONS,
    ConditionTooLarge,
    DurableError,
    DurableMatcher,
    WrongThreadError,
    condition,
    fnv1a32,
    get_engine,
)

# durable-rules calls datetime.utcfromtimestamp, deprecated from Python 3.12
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:durable.*")

TYPES = {"n1": "number", "n2": "number", "n3": "number", "s1": "string", "s2": "string",
         "b1": "bool", "b2": "bool"}
NUMS, STRS, BOOLS = ["n1", "n2", "n3"], ["s1", "s2"], ["b1", "b2"]
WORDS = ["", "a", "A", "a b", "ab", "é", "中文", 'q"t', "b\\s", "%", "50%", "$m", "1", "null", "\n"]

int_values = st.integers(-1000, 1000)
num_values = st.one_of(
    int_values,
    st.sampled_from([0, 0.0, -0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.5, -2.5, 1e-05, 1e20, 10**4, -(10**4)]),
    # magnitudes 1e-9..1e6 keep every derived value finite (the adapter refuses inf/nan)
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).filter(lambda x: abs(x) > 1e-9),
)
num_literals = st.one_of(st.integers(-3, 3), st.sampled_from([0.0, 0.1, 0.3, 0.4, -0.5, 1.5]))


def _ref(names: list[str]) -> st.SearchStrategy[E.FieldRef]:
    return st.sampled_from(names).map(E.FieldRef)


num_expr = st.recursive(
    st.one_of(_ref(NUMS), num_literals.map(E.Literal)),
    lambda c: st.one_of(
        st.builds(E.Arith, st.sampled_from("+-*/"), c, c),
        st.builds(E.Neg, c),
    ),
    max_leaves=4,
)
str_expr = st.one_of(_ref(STRS), st.sampled_from(WORDS).map(E.Literal))
bool_expr = st.one_of(_ref(BOOLS), st.booleans().map(E.Literal))
all_refs = _ref(NUMS + STRS + BOOLS)

leaf = st.one_of(
    st.builds(E.Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), num_expr, num_expr),
    st.builds(E.Compare, st.sampled_from(["==", "!="]), str_expr, str_expr),
    st.builds(E.Compare, st.sampled_from(["==", "!="]), bool_expr, bool_expr),
    st.builds(E.InList, num_expr, st.lists(num_literals, max_size=3).map(tuple), st.booleans()),
    st.builds(E.InList, _ref(STRS), st.lists(st.sampled_from(WORDS), max_size=3).map(tuple), st.booleans()),
    st.builds(E.InList, _ref(BOOLS), st.lists(st.booleans(), max_size=2).map(tuple), st.booleans()),
    st.builds(E.IsNull, all_refs, st.booleans()),
    _ref(BOOLS),  # a bare bool field: check() makes it Truthy
    st.booleans().map(E.Literal),
)
cond = st.recursive(
    leaf,
    lambda c: st.one_of(
        st.builds(E.And, st.lists(c, min_size=2, max_size=3).map(tuple)),
        st.builds(E.Or, st.lists(c, min_size=2, max_size=3).map(tuple)),
        st.builds(E.Not, c),
    ),
    max_leaves=6,  # with up to 6 rules: inside durable's per-rule and per-ruleset limits
).map(lambda n: E.check(n, TYPES))

_absent = st.none()
client_facts = st.fixed_dictionaries(
    {},
    optional={
        **{n: st.one_of(_absent, num_values) for n in NUMS},
        **{n: st.one_of(_absent, st.sampled_from(WORDS)) for n in STRS},
        **{n: st.one_of(_absent, st.booleans()) for n in BOOLS},
    },
)
rulesets = st.lists(cond, min_size=3, max_size=6)


def _expected(rules: list[tuple[str, E.Node]], facts: dict[str, Any]) -> set[str]:
    return {rid for rid, node in rules if E.evaluate(node, facts)}


EXAMPLES = int(os.environ.get("STEWARD_DURABLE_EXAMPLES", "150"))  # raise it to hunt harder


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=rulesets, batch=st.lists(client_facts, min_size=1, max_size=6))
def test_durable_fires_exactly_what_the_interpreter_and_compiler_fire(
    nodes: list[E.Node], batch: list[dict[str, Any]]
) -> None:
    rules = [(f"rule{i}", n) for i, n in enumerate(nodes)]
    compiled = [(rid, E.compile_predicate(n, rid)) for rid, n in rules]
    matcher = DurableMatcher(rules)
    got = matcher.match_many(batch)
    for facts, fired in zip(batch, got):
        expected = _expected(rules, facts)
        assert fired == expected, (facts, [E.unparse(n) for n in nodes])
        assert {rid for rid, p in compiled if p(facts)} == expected
    assert get_engine().live_sessions == 0


SAMPLE_RULES = [
    ("big", E.check(E.parse("n1 > 100 and not b1"), TYPES)),
    ("ratio", E.check(E.parse("n1 / n2 >= 0.5 or s1 in ['a', 'b']"), TYPES)),
    ("gap", E.check(E.parse("not (n1 > n2 * 2) and s2 is not null"), TYPES)),
]


@pytest.mark.parametrize(
    ("facts", "fired"),
    [
        ({"n1": 101, "b1": False}, {"big"}),
        ({"n1": 101}, {"big"}),  # `not b1`: a missing flag is not true
        ({"n1": 101, "b1": True}, set()),
        ({"n1": 1, "n2": 0, "s2": "x"}, set()),  # 1 / 0 is null; not (1 > 0) is false
        ({"n1": None, "n2": 4, "s2": ""}, {"gap"}),  # not (null > 8) is true
        ({"n2": 4, "s2": ""}, {"gap"}),  # missing is null too
        ({"n1": 1, "n2": 0, "s1": "a"}, {"ratio"}),
        ({"n1": -3, "n2": -4, "s1": "c"}, {"ratio"}),  # -3 / -4 = 0.75
        ({"n1": 1e-05, "n2": 1e20, "s2": "x"}, {"gap"}),  # floats durable cannot parse as written
    ],
)
def test_nulls_division_by_zero_and_negation(facts: dict[str, Any], fired: set[str]) -> None:
    assert _expected(SAMPLE_RULES, facts) == fired
    assert DurableMatcher(SAMPLE_RULES).match(facts) == fired


def test_translation_guards_nulls_and_pushes_not_down() -> None:
    c, derived = condition(E.check(E.parse("not (n1 > n2 * 2)"), TYPES))
    assert derived == (("e_1", E.Arith("*", E.FieldRef("n2"), E.Literal(2))),)
    assert c == {"$or": [{"$nex": {"f_n1": 1}}, {"$nex": {"e_1": 1}}, {"$lte": {"f_n1": {"$m": "e_1"}}}]}
    c, _ = condition(E.check(E.parse("n1 < n2"), TYPES))
    assert c == {"$and": [{"$ex": {"f_n2": 1}}, {"$lt": {"f_n1": {"$m": "f_n2"}}}]}
    assert condition(E.check(E.parse("n1 in []"), TYPES))[0] is False
    assert condition(E.check(E.parse("not (b1 or true)"), TYPES))[0] is False


def test_thousands_of_clients_in_one_process_lose_nothing() -> None:
    m = DurableMatcher(SAMPLE_RULES)
    batch = [
        {"n1": (i % 250) - 20, "n2": (i % 7) - 3, "s1": ["a", "b", "c", None][i % 4],
         "s2": None if i % 5 == 0 else "x", "b1": [True, False, None][i % 3]}
        for i in range(3000)
    ]
    got = m.match_many(batch)
    assert got == [_expected(SAMPLE_RULES, f) for f in batch]
    assert sum(len(g) for g in got) > 1000
    assert get_engine().live_sessions == 0


def test_same_rules_share_one_ruleset_and_new_rules_get_a_new_name() -> None:
    a, b = DurableMatcher(SAMPLE_RULES), DurableMatcher(list(reversed(SAMPLE_RULES)))
    assert a.ruleset == DurableMatcher(SAMPLE_RULES).ruleset
    assert a.ruleset != b.ruleset
    assert {a.ruleset, b.ruleset} <= get_engine().rulesets


def test_calling_from_another_thread_raises() -> None:
    m = DurableMatcher(SAMPLE_RULES)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            m.match({"n1": 500})
        except BaseException as e:  # noqa: BLE001 - inspected below
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], WrongThreadError)
    assert get_engine().live_sessions == 0
    assert m.match({"n1": 500}) == {"big"}  # the owner still works


def test_an_exception_inside_an_action_surfaces() -> None:
    seen: list[str] = []

    def on_fire(rule_id: str, facts: Any) -> None:
        seen.append(rule_id)
        if facts.get("n1") == 13:
            raise ZeroDivisionError("action failed")

    m = DurableMatcher(SAMPLE_RULES, on_fire=on_fire)
    assert m.match({"n1": 500}) == {"big"}
    with pytest.raises(ZeroDivisionError, match="action failed"):
        m.match({"n1": 13, "n2": 4, "s2": "x"})
    assert get_engine().live_sessions == 0
    assert m.match({"n1": 500}) == {"big"}  # and the engine carries on
    assert seen.count("big") == 2


def test_live_sessions_are_bounded() -> None:
    eng = get_engine()
    name = DurableMatcher(SAMPLE_RULES).ruleset
    sessions = [eng.open(name) for _ in range(MAX_LIVE_SESSIONS)]
    try:
        with pytest.raises(DurableError, match="sessions open"):
            eng.open(name)
        assert len({s.sid for s in sessions}) == MAX_LIVE_SESSIONS
    finally:
        for s in sessions:
            s.close()
    assert eng.live_sessions == 0


def test_a_condition_too_large_for_one_rule_is_split_at_its_or_or_refused() -> None:
    wide = " or ".join(f"n1 + {i} > n2" for i in range(20))  # 20 guarded comparisons
    rules = [("wide", E.check(E.parse(wide), TYPES))]
    fired: list[str] = []
    m = DurableMatcher(rules, on_fire=lambda rid, f: fired.append(rid))
    assert len(m.rule_ids) == 20  # one durable rule per disjunct, one rule id
    for facts in ({"n1": 0, "n2": 5}, {"n1": 0, "n2": 50}, {"n1": 9}, {}):
        fired.clear()
        expected = _expected(rules, facts)
        assert m.match(facts) == expected
        assert fired == sorted(expected)  # on_fire once per rule, however many parts fired
    deep = " and ".join(f"(n1 > {i} or n2 < {i})" for i in range(20))
    with pytest.raises(ConditionTooLarge, match="rule deep"):
        DurableMatcher([("deep", E.check(E.parse(deep), TYPES))])


def test_a_ruleset_too_wide_for_durable_is_refused_not_hung() -> None:
    ok = E.check(E.parse(f"n1 in [{', '.join(map(str, range(500)))}]"), TYPES)
    assert DurableMatcher([("ok", ok)]).match({"n1": 499}) == {"ok"}
    wide = E.check(E.parse(f"n1 in [{', '.join(map(str, range(600)))}]"), TYPES)
    with pytest.raises(DurableError, match="too wide"):
        DurableMatcher([("wide", wide)])


def test_property_names_that_share_durable_hash_are_refused() -> None:
    assert fnv1a32("f_lrejpdjr") == fnv1a32("f_ehedxcsq")
    types = {"lrejpdjr": "number", "ehedxcsq": "number"}
    rules = [(n, E.check(E.parse(f"{n} > 1"), types)) for n in types]
    with pytest.raises(DurableError, match="share a durable-rules hash"):
        DurableMatcher(rules)


def test_values_durable_cannot_hold_exactly_are_refused() -> None:
    m = DurableMatcher(SAMPLE_RULES)
    assert m.match({"n1": 2**53}) == {"big"}
    with pytest.raises(ValueError, match="2\\*\\*53"):
        m.match({"n1": 2**53 + 1})
    with pytest.raises(ValueError, match="non-finite"):
        m.match({"n1": float("inf")})
    with pytest.raises(TypeError):
        m.match({"n1": object()})
    assert get_engine().live_sessions == 0


def test_a_fact_durable_refuses_leaves_the_engine_closed_not_hanging() -> None:
    # In a child process: the refused fact ruins durable's state for good.
    script = textwrap.dedent("""
        import engine.events.durable as A
        from engine.language import expr as E
        A.MAX_ALPHA_LOAD = 10**6  # step outside the envelope on purpose
        node = E.check(E.parse("x in [%s]" % ",".join(map(str, range(512)))), {"x": "number"})
        m = A.DurableMatcher([("wide", node)])
        for _ in range(2):
            try:
                m.match({"x": 3})
            except A.DurableError as e:
                print(type(e).__name__, e)
    """)
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()
    assert len(out) == 2, out
    assert out[0].startswith("DurableError durable-rules refused fact") and "303" in out[0]
    assert out[1].startswith("DurableError durable-rules is unusable until the process restarts")
