"""Compliance lint: prohibited claims with negation windows, required elements, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language import lint
from engine.config.base import Config
from engine.language.loading import check_ruleset
from tests.compliance_helpers import OPT_OUT, ROOT, SIG, pack_config, rule_yaml, write_pack


@pytest.fixture(scope="module")
def lists() -> lint.Lists:
    found, problems = lint.load_lists(ROOT / "compliance")
    assert found is not None, problems
    return found


def claims(text: str, lists: lint.Lists) -> list[str]:
    return [p for _, p, _, _ in lint.prohibited_claims(text, lists)]


@pytest.mark.parametrize("text, expected", [
    ("本产品保本，欢迎咨询", ["保本"]),
    ("本产品不保本，投资需谨慎", []),
    ("本产品并不保证收益", []),
    ("收益不保证，亦非保本", []),
    ("不保本，保收益", ["保收益"]),             # the window stops at punctuation
    ("本产品不仅保本还稳赚", ["保本", "稳赚"]),   # 不仅 is not a negation
    ("稳赚不赔的好机会", ["稳赚不赔"]),           # the longest phrase, reported once
    ("零风险", ["零风险"]),
    ("並非零風險", []),
    ("我们是业内第一", ["第一"]),
    ("这是您第一次开户", []),                     # an excepted wording
    ("A guaranteed return of 5%", ["guaranteed return"]),
    ("Guaranteed returns every year", ["guaranteed return"]),
    ("Returns are not guaranteed.", []),
    ("This is not a guaranteed return.", []),
    ("There is no risk at all", ["no risk"]),
    ("It is not risk-free.", []),
    ("A risk-free plan", ["risk-free"]),
    ("Rentabilidad garantizada del 5%", ["rentabilidad garantizada"]),
    ("Rendimiento no garantizado.", []),
    ("Una inversión sin riesgo", ["sin riesgo"]),
])
def test_prohibited_claims_and_negated_disclosures(text: str, expected: list[str], lists: lint.Lists) -> None:
    assert claims(text, lists) == expected


def test_warnings_and_errors_come_from_the_list(lists: lint.Lists) -> None:
    found = {p: sev for _, p, _, sev in lint.prohibited_claims("保本，高收益", lists)}
    assert found == {"保本": "error", "高收益": "warning"}


def test_jinja_tags_are_not_read_as_text(lists: lint.Lists) -> None:
    assert claims("{{ client.name }}您好 {% if client.risk_free %}x{% endif %}", lists) == []


def pack(tmp_path: Path, cfg: Config, rules: dict[str, str], templates: dict[str, str]) -> list[str]:
    write_pack(tmp_path, rules, templates)
    _, problems = check_ruleset(pack_config(cfg, tmp_path))
    return [f"{p.severity} {p}".replace(f"{tmp_path}/", "") for p in problems]


def only_zh(rule: str, body: str) -> dict[str, str]:
    return {f"{rule}/zh-CN.j2": body}


def test_finding_names_file_line_phrase_reason_severity(tmp_path: Path, cfg: Config) -> None:
    out = pack(tmp_path, cfg, {"r1.yaml": rule_yaml("r1")},
               only_zh("r1", f"{SIG}{{{{ client.name }}}}您好，\n本产品保本保息。{OPT_OUT}"))
    assert sorted(out) == [
        "error templates/r1/zh-CN.j2:2: lint.prohibited: '保息': promise of principal or returns (证券法 art. 135, 广告法 art. 25)",
        "error templates/r1/zh-CN.j2:2: lint.prohibited: '保本': promise of principal or returns (证券法 art. 135, 广告法 art. 25)",
    ]


def test_errors_block_loading_and_warnings_do_not(tmp_path: Path, cfg: Config) -> None:
    write_pack(tmp_path, {"r1.yaml": rule_yaml("r1")}, only_zh("r1", f"{SIG}低门槛。{OPT_OUT}"))
    ruleset, problems = check_ruleset(pack_config(cfg, tmp_path))
    assert ruleset is not None and [p.severity for p in problems] == ["warning"]
    (tmp_path / "templates/r1/zh-CN.j2").write_text(f"{SIG}稳赚。{OPT_OUT}", encoding="utf-8")
    ruleset, problems = check_ruleset(pack_config(cfg, tmp_path))
    assert ruleset is None and [p.severity for p in problems] == ["error"]


def test_marketing_sms_needs_signature_and_opt_out(tmp_path: Path, cfg: Config) -> None:
    out = pack(tmp_path, cfg, {"r1.yaml": rule_yaml("r1")},
               {"r1/zh-CN.j2": "您好，欢迎使用新版软件。", "r1/en.j2": "Hello, try our new app.",
                "r1/es.j2": "Hola. Responda BAJA para no recibir más.", "r1/zh-TW.j2": "【示例證券】您好。拒收請回覆R"})
    joined = "\n".join(out)
    assert "templates/r1/zh-CN.j2:1: lint.required: 'signature': missing in a marketing sms message" in joined
    assert "templates/r1/zh-CN.j2:1: lint.required: 'opt_out'" in joined
    assert "templates/r1/en.j2:1: lint.required: 'opt_out'" in joined
    assert "r1/en.j2:1: lint.required: 'signature'" not in joined  # signature: Chinese SMS only
    assert "r1/es.j2" not in joined and "r1/zh-TW.j2" not in joined
    assert all(o.startswith("error") for o in out)


def test_marketing_email_without_opt_out_is_a_warning(tmp_path: Path, cfg: Config) -> None:
    out = pack(tmp_path, cfg, {"r1.yaml": rule_yaml("r1", channel="email")}, only_zh("r1", "您好，欢迎使用新版软件。"))
    assert len(out) == 1 and out[0].startswith("warning") and "'opt_out'" in out[0]


def test_service_sms_needs_no_signature(tmp_path: Path, cfg: Config) -> None:
    assert pack(tmp_path, cfg, {"r1.yaml": rule_yaml("r1", cls="service")}, only_zh("r1", "您好，您的合同将于下月到期。")) == []


def test_product_promotion_needs_a_risk_warning(tmp_path: Path, cfg: Config) -> None:
    rule = rule_yaml("r1", extra="product: 稳健理财一号\nproduct_risk: R2\n")
    out = pack(tmp_path, cfg, {"r1.yaml": rule}, only_zh("r1", f"{SIG}稳健理财一号现已发售。{OPT_OUT}"))
    assert len(out) == 1 and "lint.required: 'risk_warning'" in out[0] and "product promotion" in out[0]
    (tmp_path / "templates/r1/zh-CN.j2").write_text(f"{SIG}稳健理财一号现已发售。投资有风险，不保本。{OPT_OUT}", encoding="utf-8")
    assert check_ruleset(pack_config(cfg, tmp_path))[1] == []


def test_service_message_carries_no_promotion_or_push_to_trade(tmp_path: Path, cfg: Config) -> None:
    out = pack(tmp_path, cfg, {"r1.yaml": rule_yaml("r1", cls="service")},
               {"r1/zh-CN.j2": "您好，\n建议您加仓。", "r1/en.j2": "Hello. Special offer: buy now!"})
    assert any("r1/zh-CN.j2:2: lint.service_wording: '加仓'" in o for o in out)
    assert any("r1/en.j2:1: lint.service_wording: 'buy now'" in o for o in out)
    assert any("r1/en.j2:1: lint.service_wording: 'special offer'" in o for o in out)


def test_birthday_greeting_is_marketing(tmp_path: Path, cfg: Config) -> None:
    out = pack(tmp_path, cfg, {"r1.yaml": rule_yaml("r1", cls="service", title="Birthday greeting")},
               only_zh("r1", "{{ client.name }}您好，祝您生日快乐！"))
    assert any("rules/r1.yaml:5: lint.marketing_topic: 'birthday'" in o for o in out)
    assert any("r1/zh-CN.j2:1: lint.marketing_topic: '生日'" in o for o in out)


def test_product_offer_declares_risk_and_is_never_service(tmp_path: Path, cfg: Config) -> None:
    out = pack(tmp_path, cfg, {"a1.yaml": rule_yaml("a1", extra="product: 基金A\n"),
                               "b1.yaml": rule_yaml("b1", cls="service", extra="product_risk: R3\n")},
               {"a1/zh-CN.j2": f"{SIG}投资有风险。{OPT_OUT}", "b1/zh-CN.j2": "您好。投资有风险。"})
    assert any("rules/a1.yaml:12: lint.product: '基金A': a rule that offers a product declares its risk level" in o for o in out)
    assert any("rules/b1.yaml:12: lint.product: 'R3': a service message carries no product offer" in o for o in out)


def test_account_numbers_only_masked(tmp_path: Path, cfg: Config) -> None:
    out = pack(tmp_path, cfg, {"r1.yaml": rule_yaml("r1", cls="service")},
               only_zh("r1", "账户{{ client.client_id | mask }}\n账户{{ client.client_id }}\n{{ client }}"))
    assert [o.split(": ", 1)[0] for o in out] == ["error templates/r1/zh-CN.j2:2", "error templates/r1/zh-CN.j2:3"]
    assert "'client.client_id': account, ID and contact numbers appear only masked" in out[0]


def test_unknown_variable_fails(tmp_path: Path, cfg: Config) -> None:
    out = pack(tmp_path, cfg, {"r1.yaml": rule_yaml("r1", cls="service")}, only_zh("r1", "您好\n{{ client.id_card }}"))
    assert len(out) == 1 and "templates/r1/zh-CN.j2:2: template: unknown variable 'client.id_card'" in out[0]


def test_lists_are_data(tmp_path: Path, cfg: Config) -> None:
    rules, templates = {"r1.yaml": rule_yaml("r1", cls="service")}, only_zh("r1", "您好，这是一款神奇产品。")
    assert pack(tmp_path, cfg, rules, templates) == []
    p = tmp_path / "compliance/prohibited.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("[翻倍,", "[神奇, 翻倍,"), encoding="utf-8")
    assert len(pack(tmp_path, cfg, rules, templates)) == 1


def test_bad_lists_name_file_and_line(tmp_path: Path, cfg: Config) -> None:
    write_pack(tmp_path, {"r1.yaml": rule_yaml("r1", cls="service")}, only_zh("r1", "您好"))
    p = tmp_path / "compliance/prohibited.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("  negation_window: 3\n  negations: [not", "  negation_window: x\n  negations: [not"), encoding="utf-8")
    (tmp_path / "compliance/variables.yaml").unlink()
    _, problems = check_ruleset(pack_config(cfg, tmp_path))
    assert [str(p).replace(str(tmp_path) + "/", "") for p in problems] == ["compliance/variables.yaml: lint list file is missing"]
    (tmp_path / "compliance/variables.yaml").write_text("masked: []\n")
    _, problems = check_ruleset(pack_config(cfg, tmp_path))
    line = p.read_text(encoding="utf-8").splitlines().index("en:") + 2
    assert len(problems) == 1 and f"prohibited.yaml:{line}: en.negation_window: Input should be a valid integer" in str(problems[0])


def test_missing_lists_folder_is_an_error(tmp_path: Path, cfg: Config) -> None:
    c = cfg.model_copy(update={"compliance": cfg.compliance.model_copy(update={"lists_dir": str(tmp_path / "nope")})})
    ruleset, problems = check_ruleset(c)
    assert ruleset is None and "compliance lists folder not found" in str(problems[0])


def test_shipped_pack_is_clean(cfg: Config) -> None:
    ruleset, problems = check_ruleset(cfg)
    assert ruleset is not None and problems == []


def test_a_missing_risk_assessment_is_not_a_claim(lists: lint.Lists) -> None:
    assert claims("We have no risk assessment on file for you.", lists) == []
    assert claims("您目前没有风险测评记录", lists) == []
    assert claims("There is no risk here", lists) == ["no risk"]
