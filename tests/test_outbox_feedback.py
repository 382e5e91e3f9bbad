"""Outcomes feed back: a recorded callback sets callback_done; overdue tasks escalate once;
the effectiveness report counts fired, sent, held, dropped and outcomes per rule."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from engine.facts import base as facts
from engine import clock
from engine.cli.app import app
from engine.config.base import Config
from engine.dispatch.tables import TaskEscalation
from engine.errors import StewardError
from engine.language.loading import load_ruleset
from engine.models import Advisor, Contact, Trade
from engine.dispatch.outbox import OUTBOX, dispatch_once
from engine.pipeline.run import run
from engine.pipeline.recording import FIRING
from engine.supervision.effectiveness import effectiveness
from engine.servicing.task_outcomes import escalate_overdue, record_outcome
from tests import book
from tests.dispatch_helpers import Gateway, Mailbox, with_dispatch
from tests.identity_helpers import cli_token

DAY = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)  # 17:00 Shanghai
ESC = TaskEscalation.__table__  # type: ignore[attr-defined]


def _ran(eng: Engine, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> Engine:
    c = clock.current()  # tests/conftest.py installs a FixedClock for every test
    assert isinstance(c, clock.FixedClock)
    c.set(DAY)
    book.build(eng)
    run(eng, cfg, load_ruleset(cfg), book.AS_OF)
    return eng


@pytest.fixture(autouse=True)
def only_contact_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the contact-policy stages: other firms' and helpers' stages
    (segment playbooks, ...) are left out so each verdict here is this module's."""
    from engine.pipeline import policy

    mine = {"consent", "do_not_call", "contact_window", "frequency_cap", "arbitration"}
    monkeypatch.setattr(policy, "_STAGES", [(o, s) for o, s in policy._STAGES if s.name in mine])

@pytest.fixture
def ran(db: Engine, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> Engine:
    return _ran(db, cfg, monkeypatch)


def _task(eng: Engine) -> int:
    with eng.connect() as c:
        return int(c.execute(select(FIRING.c.id).where(FIRING.c.rule_id == "new_account_callback")).scalar_one())


def test_a_recorded_callback_sets_callback_done(ran: Engine, cfg: Config) -> None:
    tid = _task(ran)
    with ran.begin() as c:
        r = record_outcome(c, tid, "reached", "advisor.li", book.AS_OF + timedelta(days=1), "happy with the app")
    assert (r.contact_kind, r.task_status) == ("callback", "done")
    with ran.connect() as c:
        f = facts.facts_for(c, cfg, book.AS_OF + timedelta(days=1), "C001")
        contact = c.execute(select(Contact.__table__).where(Contact.__table__.c.client_id == "C001")).one()  # type: ignore[attr-defined]
    assert f is not None and f["callback_done"] is True and contact.by_user == "advisor.li"
    with ran.begin() as c, pytest.raises(StewardError, match="is done, not open"):
        record_outcome(c, tid, "reached", "advisor.li", book.AS_OF)


def test_an_unanswered_call_keeps_the_task_open(ran: Engine, cfg: Config) -> None:
    tid = _task(ran)
    with ran.begin() as c:
        r = record_outcome(c, tid, "no_answer", "advisor.li", book.AS_OF)
    assert (r.contact_kind, r.task_status) == ("call_attempt", "open")
    with ran.connect() as c:
        assert facts.facts_for(c, cfg, book.AS_OF, "C001")["callback_done"] is False  # type: ignore[index]


def test_outcome_errors_say_what_to_do(ran: Engine) -> None:
    with ran.begin() as c:
        with pytest.raises(StewardError, match="unknown outcome 'picked_up'; use one of reached, positive, declined"):
            record_outcome(c, _task(ran), "picked_up", None, book.AS_OF)
        with pytest.raises(StewardError, match="no task with id 999999"):
            record_outcome(c, 999999, "reached", None, book.AS_OF)
        msg = c.execute(select(FIRING.c.id).where(FIRING.c.action_type == "message")).scalars().first()
        with pytest.raises(StewardError, match="is a sms message, not a call task"):
            record_outcome(c, msg, "reached", None, book.AS_OF)


def test_outcome_command(sqlite_engine: Engine, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = _ran(sqlite_engine, cfg, monkeypatch)  # the CLI opens its own engine: SQLite only, none left open
    url = ran.url.render_as_string(hide_password=False)
    r = CliRunner().invoke(app, ["--database", url, "outcome", str(_task(ran)), "--outcome", "reached"])
    assert r.exit_code == 2 and "steward login" in r.output
    monkeypatch.setenv("STEWARD_TOKEN", cli_token(ran, "U0", ["advisor"], advisor_id="A99"))
    r = CliRunner().invoke(app, ["--database", url, "outcome", str(_task(ran)), "--outcome", "reached"])
    assert r.exit_code == 2 and "not yours (A99)" in " ".join(r.output.split())  # advisors close only their own tasks
    with ran.connect() as c:
        owner = c.execute(select(FIRING.c.advisor_id).where(FIRING.c.id == _task(ran))).scalar_one()
    monkeypatch.setenv("STEWARD_TOKEN", cli_token(ran, "U1", ["advisor"], advisor_id=owner))
    r = CliRunner().invoke(app, ["--database", url, "outcome", str(_task(ran)), "--outcome", "reached", "--on", "2026-11-21"])
    assert r.exit_code == 0 and "recorded as callback; task is done" in r.output
    with ran.connect() as c:  # the contact is recorded as the signed-in user, by canonical name
        assert c.execute(select(Contact.__table__.c.by_user).where(Contact.__table__.c.kind == "callback")).scalars().all()[-1] == "u1"
    r = CliRunner().invoke(app, ["--database", url, "outcome", str(_task(ran)), "--outcome", "reached"])
    assert r.exit_code == 2 and "already recorded" in r.output


def test_overdue_tasks_escalate_once_with_a_notice_to_the_supervisor(ran: Engine, cfg: Config) -> None:
    with ran.begin() as c:
        c.execute(Advisor.__table__.insert(), [{"id": "S01", "name": "王经理", "email": "boss@example.com",  # type: ignore[attr-defined]
                                                "supervisor_id": None, "daily_capacity": 0}])
        c.execute(update(Advisor.__table__).where(Advisor.__table__.c.id == "A01").values(supervisor_id="S01"))  # type: ignore[attr-defined]
    due = book.AS_OF + timedelta(days=3)
    assert escalate_overdue(ran, cfg, due) == 0  # due today is not overdue
    assert escalate_overdue(ran, cfg, due + timedelta(days=1)) == 1
    assert escalate_overdue(ran, cfg, due + timedelta(days=2)) == 0  # once
    with ran.connect() as c:
        esc = c.execute(select(ESC)).one()
        notice = c.execute(select(OUTBOX).where(OUTBOX.c.id == esc.notice_outbox_id)).one()
    assert esc.supervisor_id == "S01" and notice.kind == "escalation" and notice.recipient == "boss@example.com"
    assert "Overdue call task" in notice.body and notice.state == "queued"
    if ran.dialect.name == "sqlite":  # one SMTP round trip is enough
        with Mailbox() as box:
            night = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)  # supervisors' notices ignore client windows
            assert dispatch_once(ran, with_dispatch(cfg, email={"port": box.port}), now=night).sent == 1
        assert box.messages[0]["To"] == "boss@example.com"
        with ran.connect() as c:
            assert c.execute(select(FIRING.c.status).where(FIRING.c.id == esc.firing_id)).scalar_one() == "open"


def test_effectiveness_counts_per_rule(ran: Engine, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    with ran.begin() as c:  # C003 has a phone; C002 opts out after the run
        c.execute(update(book.Client.__table__).where(book.Client.__table__.c.id == "C003").values(phone="13800000003"))
        c.execute(Trade.__table__.insert(), [{"id": "T9", "client_id": "C003", "trade_date": date(2026, 11, 25), "symbol": "x",  # type: ignore[attr-defined]
                                              "side": "buy", "quantity": 1, "price": 1.0, "amount": 1.0}])
    with Gateway() as gw:
        dispatch_once(ran, with_dispatch(cfg, gateway={"url": gw.url}), now=DAY)
    with ran.begin() as c:
        record_outcome(c, _task(ran), "reached", "advisor.li", book.AS_OF)
    with ran.connect() as c:
        rep = {r.rule_id: r for r in effectiveness(c, book.AS_OF, book.AS_OF)}
    conc, task, act = rep["concentrated_position"], rep["new_account_callback"], rep["dormant_activation"]
    assert (conc.fired, conc.sent, conc.dropped) == (2, 1, 1)  # C002 has no phone: dead letter
    assert conc.outcomes == 1 and conc.outcome_rate == 1.0  # C003 traded after the reminder
    assert (task.fired, task.sent, task.outcomes) == (1, 1, 1)
    assert act.fired == 1 and act.sent == 0
    if ran.dialect.name != "sqlite":
        return  # the command opens its own engine; run it on SQLite only
    url = ran.url.render_as_string(hide_password=False)
    r = CliRunner().invoke(app, ["--database", url, "report", "effectiveness", "--from", "2026-11-20", "--to", "2026-11-20"])
    assert r.exit_code == 0 and "concentrat" in r.output and "100%" in r.output
