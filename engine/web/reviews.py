"""Compliance pages: the review queue, a proposal with its side-by-side diff and lint, approve or reject."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.compliance import review, users
from engine.errors import Problem, StewardError
from engine.web.app import console, render, user_of
from engine.web.diff import side_by_side


def _page(request: Request, pid: int, status: int = 200, error: str | None = None) -> Response:
    c = console(request)
    with c.engine.begin() as conn:
        row = review.proposal(conn, pid)
        files = review.proposal_files(conn, row)
        base = review.base_manifest(conn, row)
        old = review.get_blobs(conn, set(base.values()))
    _, problems = review.check_files(c.cfg, files)
    changes = []
    for ch in review.diff_manifests(base, row.manifest):
        a = old.get(ch.old or "", b"").decode("utf-8", "replace") if ch.old else ""
        b = files.get(ch.path, b"").decode("utf-8", "replace")
        mine = [p for p in problems if p.path.endswith(ch.path)]
        at: dict[int, list[Problem]] = {}
        for p in mine:
            if p.line:
                at.setdefault(p.line, []).append(p)
        changes.append({"path": ch.path, "state": ch.state, "rows": side_by_side(a, b), "problems": mine, "at": at})
    own = users.canonical(row.author) == user_of(request).name
    return render(request, "proposal.html", status=status, p=row, changes=changes, problems=problems, own=own,
                  error=error)


def routes(app: FastAPI) -> None:
    @app.get("/reviews", response_class=HTMLResponse)
    def queue(request: Request) -> Response:
        with console(request).engine.connect() as conn:
            rows = review.proposals(conn)
            approved = review.current(conn)
        return render(request, "reviews.html", rows=rows, approved=approved)

    @app.get("/reviews/{pid}", response_class=HTMLResponse)
    def proposal(request: Request, pid: int) -> Response:
        try:
            return _page(request, pid)
        except StewardError as e:
            return render(request, "error.html", status=404, message=str(e))

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
