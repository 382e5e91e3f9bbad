"""AML gate (policy stage, order 110): no outflow or retention outreach while an AML review is open.

COMPLIANCE.md section 7: outreach after a large outflow is suppressed while an anti-money-
laundering review of the client is open, and no message ever mentions it. A rule tagged
`outflow` or `retention` is such outreach, whether a snapshot rule or an event rule (both go
through the same policy stages). The gate fails closed: when the `aml_review_open` fact is
unknown (None), the firing is suppressed too. The reason code is internal (audit and
supervisors), never shown to the client.
"""

from __future__ import annotations

from engine.pipeline.policy import Decision, StageContext, register_stage

NAME = "aml"
ORDER = 110
OPEN = "AML_REVIEW_OPEN"
UNKNOWN = "AML_STATUS_UNKNOWN"
TAGS = frozenset({"outflow", "retention"})


class AmlStage:
    name = NAME
    needs_db = False
    """Only the client's facts: dry runs (`steward evaluate`) apply it too."""

    def prepare(self, ctx: StageContext) -> None:
        return None

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None:
        for d in decisions:
            if not d.live or not TAGS & set(getattr(d.match.rule.spec, "tags", ()) or ()):
                continue
            status = d.match.facts.get("aml_review_open")
            if status is None:
                d.block(NAME, "suppressed", UNKNOWN, "AML review status unknown: outflow outreach waits (fail closed)")
            elif status:
                d.block(NAME, "suppressed", OPEN, "an AML review is open: no outflow or retention outreach")
            else:
                d.passed(NAME, "no AML review open")


def register() -> None:
    """Called once by engine.composition.install()."""
    register_stage(AmlStage(), ORDER)
