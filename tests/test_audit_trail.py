"""Issue 12, a complete audit trail (items 5 and 8), on SQLite and PostgreSQL.

Every table write path in engine/ is listed here with the audit event it writes in the same
transaction (or why it needs none); a new write path fails the inventory until it is listed.
docs/audit.md lists every event name with the code path that writes it; a test keeps it true.
"""

from __future__ import annotations

import ast
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

import engine.cli.app  # noqa: F401
# The CLI loads its commands lazily: import every module that registers audit event names.
import engine.compliance.auth  # noqa: F401
import engine.compliance.calendar_review  # noqa: F401
import engine.compliance.drafts  # noqa: F401
import engine.compliance.review  # noqa: F401
import engine.compliance.users  # noqa: F401
from engine.audit import log as auditlog
from engine.config.base import Config
from engine.dispatch import dnc
from engine.dispatch.outbox import dispatch_once, retry_dead
from engine.dispatch.webhook import record_opt_out
from engine.errors import StewardError
from engine.language.loading import load_ruleset
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from engine.servicing.task_outcomes import record_outcome
from tests import book
from tests.dispatch_helpers import Gateway, add_client, add_message, with_dispatch
from tests.identity_helpers import cli_token
from tests.test_cli import steward

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)

WRITE_PATHS: dict[str, str] = {
    # path:function -> the event(s) it writes in the same transaction, or "exempt: why"
    "engine/audit/log.py:append": "exempt: the audit log itself",
    "engine/audit/log.py:put_blobs": "exempt: content-addressed sources named by the events that use them",
    "engine/audit/facts_store.py:put": "exempt: content-addressed facts snapshots named by the firings and rule.fired events that use them",
    "engine/audit/retention.py:place_hold": "hold.placed",
    "engine/audit/retention.py:release_hold": "hold.released",
    "engine/cli/risk_cmd.py:_save": "exempt: a scored questionnaire is client data imported like holdings (its facts are in rule.fired)",
    "engine/compliance/impact.py:simulate": "exempt: a scratch database of the impact preview",
    "engine/compliance/review.py:approve": "proposal.approved",
    "engine/compliance/review.py:put_blobs": "exempt: submitted bytes, named by proposal.submitted and proposal.approved",
    "engine/compliance/review.py:reject": "proposal.rejected",
    "engine/compliance/review.py:submit": "proposal.submitted",
    "engine/compliance/users.py:add": "user.added",
    "engine/compliance/users.py:grant": "role.granted (via _role_events)",
    "engine/compliance/users.py:revoke": "role.revoked (via _role_events)",
    "engine/compliance/users.py:set_active": "user.activated, user.deactivated",
    "engine/demo/book.py:_insert": "exempt: the synthetic demo book",
    "engine/demo/book.py:_products": "exempt: the synthetic demo book",
    "engine/demo/playbook.py:assessment_row": "exempt: the synthetic demo book",
    "engine/dispatch/dnc.py:add": "dnc.added",
    "engine/dispatch/dnc.py:remove": "dnc.removed",
    "engine/dispatch/outbox.py:_append": "exempt: the helper every outbox change goes through; its callers write the event",
    "engine/dispatch/outbox.py:_set_firing": "exempt: follows the outbox change whose caller writes the event",
    "engine/dispatch/outbox.py:claim": "exempt: a lease, not a change to what a client gets (send.attempted follows)",
    "engine/dispatch/outbox.py:enqueue": "rule.fired with the rendered words (record hook audit.firing_events.record_firings, same transaction)",
    "engine/dispatch/outbox.py:_fail": "send.attempted",
    "engine/dispatch/outbox.py:_gate": "outbox.changed",
    "engine/dispatch/outbox.py:_process": "send.attempted, send.receipt, outbox.changed",
    "engine/dispatch/outbox.py:retry_dead": "outbox.changed",
    "engine/dispatch/outbox.py:mark_sent_by_hand": "outbox.changed, send.receipt",
    "engine/dispatch/outbox.py:drop_marketing": "outbox.changed",
    "engine/dispatch/webhook.py:record_opt_out": "consent.changed",
    "engine/events/durable.py:assert_fact": "exempt: not a table (durable-rules facts)",
    "engine/events/processor.py:_fire_deadline_in": "rule.fired (pipeline recording with the audit record hook)",
    "engine/events/processor.py:flush": "exempt: a batch's buffered fact rows, sequence marks and deadlines, engine state; what fires is rule.fired",
    "engine/events/processor.py:_record": "rule.fired (pipeline recording with the audit record hook)",
    "engine/events/processor.py:_step": "exempt: sequence marks and deadlines, engine state; what fires is rule.fired",
    "engine/events/ruletest.py:_client": "exempt: a scratch database of the event rule tests",
    "engine/events/ruletest.py:_template_db": "exempt: a scratch database of the event rule tests",
    "engine/compliance/auth.py:_open": "token.issued, user.signed_in",
    "engine/compliance/auth.py:check_password": "user.sign_in_failed, user.locked_out",
    "engine/compliance/auth.py:resolve": "exempt: a token's last_seen_at, no change to a permission",
    "engine/compliance/auth.py:revoke_tokens": "token.revoked",
    "engine/compliance/auth.py:set_password": "user.password_set",
    "engine/compliance/auth.py:sign_out": "token.revoked, user.signed_out",
    "engine/events/store.py:_task_outcome": "task.outcome (via record_outcome when a task is named)",
    "engine/events/store.py:mark": "exempt: processing status of an intake event (its firings are rule.fired)",
    "engine/events/store.py:retry_failed": "exempt: puts failed intake events back to stored, nothing reaches a client",
    "engine/events/store.py:store": "exempt: intake of upstream facts (trades, cash), like the nightly import",
    "engine/events/store.py:_store_statement": "exempt: the INSERT that `store` runs, built once per dialect (intake)",
    "engine/events/store.py:apply_facts": "exempt: intake of upstream facts (trades, cash), like the nightly import",
    "engine/events/store.py:insert_fact_rows": "exempt: intake of upstream facts (trades, cash), like the nightly import",
    "engine/audit/log.py:insert_ignoring_duplicates": "exempt: content-addressed blob store under the audit log (put_blobs)",
    "engine/facts/calendar_file.py:apply": "calendar.approved (written by its caller, engine/compliance/calendar_review.py)",
    "engine/servicing/task_outcomes.py:_record": "task.outcome (written by its caller, record_outcome, same transaction)",
    "engine/facts/importer.py:_upsert": "exempt: the nightly client-data import",
    "engine/facts/products.py:upsert": "exempt: product master data import",
    "engine/facts/trading_calendar.py:set_day": "calendar.set or calendar.unset (written by its callers, engine/cli/scheduler_cmd.py:set_, engine/web/scheduling.py)",
    "engine/facts/trading_calendar.py:sync": "exempt: the exchange's own calendar; admin overrides are kept",
    "engine/pipeline/recording.py:finish_run": "exempt: run bookkeeping; every firing of the run is rule.fired",
    "engine/pipeline/recording.py:heartbeat": "exempt: run bookkeeping (a sign of life)",
    "engine/pipeline/recording.py:fail_dead_runs": "exempt: run bookkeeping; shown by `steward run`, no client or permission changes",
    "engine/pipeline/recording.py:insert_firings": "rule.fired (record hook audit.firing_events.record_firings, same transaction)",
    "engine/pipeline/recording.py:start_run": "exempt: run bookkeeping; every firing of the run is rule.fired",
    "engine/servicing/calllist.py:_store": "exempt: an advisor's daily list, derived from firings",
    "engine/servicing/task_outcomes.py:escalate_overdue": "exempt: an escalation notice to a supervisor, sent through the outbox (send.attempted)",
    "engine/servicing/task_outcomes.py:record_outcome": "task.outcome",
    "engine/supervision/sampling.py:decide": "review.decided",
    "engine/supervision/sampling.py:sample": "review.assigned",
}
WRITE_PATHS.update({  # issue 11, console drafts (i11a)
    "engine/compliance/drafts.py:save": "draft.saved",
    "engine/compliance/drafts.py:submit": "draft.submitted",
    "engine/compliance/drafts.py:mark": "draft.submitted",
})
WRITE_CALLS = {"insert", "delete", "update", "on_conflict_do_update", "on_conflict_do_nothing"}


def _is_write(node: ast.Call) -> bool:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id in ("insert", "update", "delete")
    if not isinstance(f, ast.Attribute) or f.attr not in WRITE_CALLS:
        return False
    if f.attr.startswith("on_conflict"):
        return True
    v = f.value  # TABLE.insert(), Model.__table__.insert(), tables[name].insert(), t.delete()
    if isinstance(v, ast.Name):
        return v.id.isupper() or v.id.lstrip("_").isupper() or v.id == "t"
    return isinstance(v, (ast.Attribute, ast.Subscript)) and (not isinstance(v, ast.Attribute) or v.attr == "__table__")


def _functions() -> dict[str, ast.FunctionDef]:
    out = {}
    for f in sorted((ROOT / "engine").rglob("*.py")):
        for fn in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(fn, ast.FunctionDef):
                out[f"{f.relative_to(ROOT).as_posix()}:{fn.name}"] = fn
    return out


def _module_literals() -> set[str]:
    out: set[str] = set()
    for f in sorted((ROOT / "engine").rglob("*.py")):
        out |= _literals(ast.parse(f.read_text(encoding="utf-8")))
    return out


def _literals(fn: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_every_table_write_path_is_listed_with_its_event() -> None:
    fns = _functions()
    found = {k for k, fn in fns.items() if any(isinstance(n, ast.Call) and _is_write(n) for n in ast.walk(fn))}
    assert sorted(found - set(WRITE_PATHS)) == [], "new table write paths: list each with the audit event it writes"
    assert sorted(k for k in WRITE_PATHS if k not in fns) == [], "listed write paths that no longer exist"
    for path, what in WRITE_PATHS.items():
        if what.startswith("exempt:"):
            continue
        names = re.findall(r"[a-z_]+\.[a-z_]+", what.split("(")[0])
        assert names and all(n in auditlog.EVENT_NAMES for n in names), (path, names)
        if "(" not in what:  # written right there: the function names the event
            assert set(names) <= _literals(fns[path]), f"{path} does not write {names}"


DOC_ROW = re.compile(r"^\| `([a-z_]+\.[a-z_]+)` \| `([^`]+)` \|", re.M)


def test_docs_audit_lists_every_event_with_the_code_path_that_writes_it() -> None:
    text = (ROOT / "docs/audit.md").read_text(encoding="utf-8")
    section = text.split("## Every event and where it is written", 1)[1].split("\n## ", 1)[0]
    rows = DOC_ROW.findall(section)
    fns = _functions()
    in_engine = set().union(*(_literals(fn) for fn in fns.values())) | set(_module_literals())
    registered = sorted(n for n in auditlog.EVENT_NAMES if n in in_engine)  # not a test's own extension names
    assert sorted({n for n, _ in rows}) == registered, "docs/audit.md: event names differ"
    for name, where in rows:
        for path in where.split(", "):
            assert path in fns, f"docs/audit.md: {name}: no function {path}"
            assert name in _literals(fns[path]), f"docs/audit.md: {path} does not name {name!r}"


# ------------------------------------------------------------------ behaviour


def events(eng: Engine, *names: str) -> list[dict]:  # type: ignore[type-arg]
    with eng.connect() as c:
        q = select(auditlog.EVENT).where(auditlog.EVENT.c.name.in_(names)).order_by(auditlog.EVENT.c.seq)
        return [auditlog.body_of(r) for r in c.execute(q)]


def test_sends_and_receipts_and_retries_are_events(db: Engine, cfg: Config) -> None:
    add_client(db, "C1")
    row_id = add_message(db, "C1", next_attempt_at=NOW - timedelta(minutes=1))
    with Gateway() as gw:
        gw.fail_next = 1
        c = with_dispatch(cfg, gateway={"url": gw.url}, retry={"backoff_seconds": 1, "max_attempts": 1})
        dispatch_once(db, c, now=NOW)
        with db.begin() as conn:
            with pytest.raises(StewardError, match="name the acting user"):
                retry_dead(conn, row_id, NOW)
            assert retry_dead(conn, row_id, NOW, actor="ops.li")
        dispatch_once(db, c, now=NOW + timedelta(seconds=5))
    got = [(e["name"], e["status"], e["actor"]) for e in events(db, "send.attempted", "send.receipt", "outbox.changed")]
    assert got == [("send.attempted", "dead", "dispatch"), ("outbox.changed", "requeued", "ops.li"),
                   ("send.attempted", "sent", "dispatch"), ("send.receipt", "sent", "dispatch")]
    receipt = events(db, "send.receipt")[0]
    assert receipt["data"]["receipt"] == "gw-1" and receipt["data"]["outbox_id"] == row_id and receipt["client_id"] == "C1"
    with db.connect() as conn:
        assert auditlog.verify(conn).ok


def test_task_outcomes_carry_the_acting_user(db: Engine, cfg: Config) -> None:
    book.build(db)
    run(db, cfg, load_ruleset(cfg), book.AS_OF)
    with db.connect() as c:
        tid = int(c.execute(select(FIRING.c.id).where(FIRING.c.rule_id == "new_account_callback")).scalars().first())
    with db.begin() as c, pytest.raises(StewardError, match="--by: name who made the call"):
        record_outcome(c, tid, "reached", None, book.AS_OF)
    with db.begin() as c:
        record_outcome(c, tid, "reached", "advisor.li", book.AS_OF + timedelta(days=1))
    [e] = events(db, "task.outcome")
    assert (e["actor"], e["firing_id"], e["status"], e["data"]["by_user"]) == ("advisor.li", tid, "done", "advisor.li")


def test_consent_dnc_and_calendar_changes_are_events(db: Engine, tmp_path: Path) -> None:
    add_client(db, "C1", phone="13800000009")
    mid = add_message(db, "C1", rule_class="marketing", next_attempt_at=NOW)
    with db.begin() as c:
        assert record_opt_out(c, "13800000009", "sms", "TD", NOW) == ["C1"]
        dnc.add(c, "13800000009", "client", "asked", "ops.li", NOW)
        assert dnc.remove(c, "13800000009", "ops.li", NOW)
        with pytest.raises(StewardError, match="name the acting user"):
            dnc.add(c, "13800000001", "client", None, None, NOW)
    names = [(e["name"], e["actor"]) for e in events(db, "consent.changed", "outbox.changed", "dnc.added", "dnc.removed")]
    assert names == [("consent.changed", "webhook"), ("outbox.changed", "dispatch"),
                     ("dnc.added", "ops.li"), ("dnc.removed", "ops.li")]
    assert events(db, "outbox.changed")[0]["data"]["outbox_id"] == mid
    assert "13800000009" not in str(events(db, "dnc.added"))  # masked in the log
    url = db.url.render_as_string(hide_password=False)
    token = cli_token(db, "ops.li", ["operator"])
    res = steward("--database", url, "calendar", "set", "2026-10-09", "--closed", env={"STEWARD_TOKEN": token})
    assert res.returncode == 0, res.stdout + res.stderr
    [e] = events(db, "calendar.set")
    assert e["actor"] == "ops.li" and e["data"]["days"] == {date(2026, 10, 9).isoformat(): False}
