"""Compliance pages: the review queue; a proposal with its side-by-side diff, lint findings at their line,
rule-test results and approve/reject; the impact preview (started with htmx, progress polled); approved versions.

Proposed content is never loaded here when it holds Python: lint and rule tests run in the check child
(engine.compliance.proposal_check, no database credentials), as `steward review show --tests` does. The
impact preview loads a proposal of YAML rules and sandboxed templates only, as the CLI does.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from engine.compliance import impact, review, users
from engine.compliance.proposal_check import Check
from engine.config.base import Config
from engine.errors import Problem, StewardError
from engine.web.app import console, render, user_of
from engine.web.diff import side_by_side

IMPACT_DAYS = 7
"""The impact preview's default range: the week up to today."""
PREWARM = 5
"""How many open proposals the queue page checks in the background (newest first)."""
KEEP_JOBS = 20
"""Finished impact previews kept for their pages to poll; older ones are forgotten."""


def _changes(conn: Any, row: Any, files: dict[str, bytes], problems: list[Problem]) -> list[dict[str, Any]]:
    base = review.base_manifest(conn, row)
    old = review.get_blobs(conn, set(base.values()))
    out = []
    for ch in review.diff_manifests(base, row.manifest):
        a = old.get(ch.old or "", b"").decode("utf-8", "replace") if ch.old else ""
        b = files.get(ch.path, b"").decode("utf-8", "replace")
        mine = [p for p in problems if p.path == ch.path or p.path.endswith("/" + ch.path)]
        at: dict[int, list[Problem]] = {}
        for p in mine:
            if p.line:
                at.setdefault(p.line, []).append(p)
        out.append({"path": ch.path, "state": ch.state, "rows": side_by_side(a, b),
                    "problems": [p for p in mine if not p.line], "at": at})
    return out


def _check(c: Any, files: dict[str, bytes], manifest: dict[str, str], tests: bool) -> Check:
    """Lint (and rule tests) of a proposal. Proposed Python never runs here: a proposal that holds Python rule
    files, and every rule-test run, goes to the check child; YAML and sandboxed templates are linted in
    process, as `review submit` does, so the page shows at once."""
    if tests or review.python_files(manifest):
        return _checked(c.cfg, files, tests)
    return Check(review.check_files(c.cfg, files)[1])


_LOCKS: dict[tuple[str, bool], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _checked(cfg: Config, files: dict[str, bytes], tests: bool) -> Check:
    """The check child's answer, one child per content at a time: a page that asks while the queue's prewarm
    runs waits for it, then reads the remembered result."""
    key = (review.content_hash(review.manifest_of(files)), tests)
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        return review.check_proposal(cfg, files, tests=tests)  # a child process; remembered per content


def _page(request: Request, pid: int, status: int = 200, error: str | None = None) -> Response:
    c = console(request)
    with c.engine.begin() as conn:
        row = review.proposal(conn, pid)
        files = review.proposal_files(conn, row)
    check = _check(c, files, dict(row.manifest), tests=False)
    with c.engine.connect() as conn:
        changes = _changes(conn, row, files, check.problems)
    own = users.canonical(row.author) == user_of(request).name
    today = c.clock().astimezone(c.cfg.tz).date()
    return render(request, "proposal.html", status=status, p=row, changes=changes, problems=check.problems, own=own,
                  error=error, code=review.python_files(row.manifest),
                  impact_from=today - timedelta(days=IMPACT_DAYS - 1), impact_to=today)


def _tests_fragment(request: Request, pid: int) -> Response:
    """The rule-test results and the decision form, whose Approve button they enable or disable."""
    c = console(request)
    with c.engine.connect() as conn:
        row = review.proposal(conn, pid)
        files = review.proposal_files(conn, row)
    check = _check(c, files, dict(row.manifest), tests=True)
    own = users.canonical(row.author) == user_of(request).name
    return render(request, "proposal_tests.html", p=row, check=check, blocked=_approval_blocked(check), own=own)


def _prewarm(engine: Engine, cfg: Config, pids: list[int]) -> None:
    """Run the check child for open proposals in the background, so their pages answer at once."""
    def work() -> None:
        for pid in pids:
            with engine.connect() as conn:
                row = review.proposal(conn, pid)
                files = review.proposal_files(conn, row)
            _checked(cfg, files, True)

    threading.Thread(target=work, name="proposal-checks", daemon=True).start()


def _approval_blocked(check: Check) -> str | None:
    """Why the approve button is disabled (the server refuses the same POST in review.approve)."""
    if check.errors:
        return f"{len(check.errors)} lint error(s): the author fixes them and resubmits"
    if not check.tests_ran:
        return "the rule tests did not run"
    if check.failed:
        return f"{len(check.failed)} of {len(check.tests)} rule test(s) fail: the author fixes the rules or the tests"
    return None


# ------------------------------------------------------------------ impact preview jobs


@dataclass
class ImpactJob:
    """One impact preview running in a thread; the page polls its progress fragment."""

    id: str
    pid: int
    start: date
    end: date
    done: int = 0
    total: int = 0
    result: impact.Impact | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


def _run_job(engine: Engine, cfg: Config, job: ImpactJob) -> None:
    try:
        with engine.connect() as conn:
            row = review.proposal(conn, job.pid)
        proposed = impact.proposal_ruleset(engine, cfg, row)
        job.result = impact.compare(engine, cfg, impact.approved_or_none(engine, cfg), proposed, job.start, job.end,
                                    progress=job.progress)
    except StewardError as e:
        job.error = str(e)
    except Exception as e:  # noqa: BLE001 - a failed preview is shown to the reviewer, never crashes the console
        job.error = f"the impact preview failed: {type(e).__name__}: {e}"
    finally:
        job.finished.set()


def _jobs(request: Request) -> dict[str, ImpactJob]:
    jobs: dict[str, ImpactJob] = request.app.state.impact_jobs
    return jobs


def _parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise StewardError(f"{name}: expected a date as YYYY-MM-DD, got {value!r}") from None


def start_impact(request: Request, pid: int, start: str, end: str) -> ImpactJob:
    c = console(request)
    with c.engine.connect() as conn:
        row = review.proposal(conn, pid)
    if code := review.python_files(row.manifest):
        raise StewardError(f"impact preview skipped: the proposal holds Python rule file(s) {', '.join(code)}")
    a, b = _parse_day(start, "from"), _parse_day(end, "to")
    impact.days_between(a, b)  # the range check, before a thread starts
    job = ImpactJob(secrets.token_urlsafe(8), pid, a, b)
    jobs = _jobs(request)
    done = [k for k, j in jobs.items() if j.finished.is_set()]
    for k in done[:max(0, len(done) - KEEP_JOBS + 1)]:  # dicts keep insertion order: oldest first
        del jobs[k]
    jobs[job.id] = job
    threading.Thread(target=_run_job, args=(c.engine, c.cfg, job), name=f"impact-{pid}", daemon=True).start()
    return job


# ------------------------------------------------------------------ routes


def routes(app: FastAPI) -> None:
    app.state.impact_jobs = {}

    @app.get("/reviews", response_class=HTMLResponse)
    def queue(request: Request) -> Response:
        c = console(request)
        with c.engine.connect() as conn:
            rows = review.proposals(conn)
            approved = review.current(conn)
        _prewarm(c.engine, c.cfg, [r.id for r in rows if r.status == "submitted"][:PREWARM])
        return render(request, "reviews.html", rows=rows, approved=approved)

    @app.get("/reviews/{pid}", response_class=HTMLResponse)
    def proposal(request: Request, pid: int) -> Response:
        try:
            return _page(request, pid)
        except StewardError as e:
            return render(request, "error.html", status=404, message=str(e))

    @app.get("/reviews/{pid}/tests", response_class=HTMLResponse)
    def proposal_tests(request: Request, pid: int) -> Response:
        return _tests_fragment(request, pid)

    @app.post("/reviews/{pid}/decide", response_class=HTMLResponse)
    async def decide(request: Request, pid: int) -> Response:
        c = console(request)
        form = await request.form()
        decision, comment = str(form.get("decision", "")), str(form.get("comment", ""))
        me = user_of(request).name
        try:
            if decision == "approve":
                review.approve(c.engine, c.cfg, me, pid, comment)
            elif decision == "reject":
                review.reject(c.engine, me, pid, comment)
            else:
                raise StewardError("decision: choose approve or reject")
        except users.PermissionDenied as e:
            return _page(request, pid, status=403, error=str(e))
        except StewardError as e:
            return _page(request, pid, status=400, error=str(e))
        return RedirectResponse(f"/reviews/{pid}", status_code=303)

    @app.post("/reviews/{pid}/impact", response_class=HTMLResponse)
    async def impact_start(request: Request, pid: int) -> Response:
        form = await request.form()
        try:
            job = start_impact(request, pid, str(form.get("from", "")), str(form.get("to", "")))
        except StewardError as e:
            return render(request, "impact.html", status=400, job=None, message=str(e))
        return render(request, "impact.html", job=job)

    @app.get("/reviews/{pid}/impact/{job}", response_class=HTMLResponse)
    def impact_progress(request: Request, pid: int, job: str) -> Response:
        found = _jobs(request).get(job)
        if found is None or found.pid != pid:
            return render(request, "impact.html", status=404, job=None,
                          message=f"no impact preview {job} of proposal {pid} (the console restarted?): start it again")
        return render(request, "impact.html", job=found)

    @app.get("/versions", response_class=HTMLResponse)
    def versions(request: Request) -> Response:
        with console(request).engine.connect() as conn:
            rows = review.approved_versions(conn)
        return render(request, "versions.html", versions=rows)

    @app.get("/versions/{vid}", response_class=HTMLResponse)
    def version(request: Request, vid: int) -> Response:
        a = _version(request, vid)
        path = request.query_params.get("path")
        if path is None:
            return render(request, "version.html", v=a, path=None, text=None)
        if path not in a.manifest:
            return render(request, "error.html", status=404, message=f"version {vid} has no file {path!r}")
        with console(request).engine.connect() as conn:
            data = review.get_blobs(conn, {a.manifest[path]}).get(a.manifest[path], b"")
        return render(request, "version.html", v=a, path=path, text=data.decode("utf-8", "replace"))


def _version(request: Request, vid: int) -> review.Approved:
    with console(request).engine.connect() as conn:
        found = next((a for a in review.approved_versions(conn) if a.version == vid), None)
    if found is None:
        raise StewardError(f"no approved version {vid}; the versions page lists them")
    return found
