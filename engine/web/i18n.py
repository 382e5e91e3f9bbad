"""The console's words in zh-CN and en (a message table; the key is the English text)."""

from __future__ import annotations

LOCALES = ("en", "zh-CN")
ZH: dict[str, str] = {
    "Sign in": "登录", "Sign out": "退出", "User name": "用户名", "Password": "密码",
    "Steward console": "Steward 控制台", "Review queue": "审核队列", "Firings": "触发记录",
    "Call tasks": "回访任务", "Outbox": "发件箱", "Users and roles": "用户与角色",
    "Change password": "修改密码", "Current password": "当前密码", "New password": "新密码",
    "Proposal": "变更提案", "Author": "作者", "Submitted": "提交时间", "Status": "状态", "Note": "说明",
    "Lint findings": "检查结果", "No findings": "无问题", "Approve": "批准", "Reject": "驳回",
    "Comment": "意见", "Approved version": "已批准版本", "approved": "已批准", "rejected": "已驳回",
    "submitted": "待审核", "Rule": "规则", "Client": "客户", "Day": "日期", "Channel": "渠道",
    "Reason": "原因", "Filter": "筛选", "Next page": "下一页", "Export CSV": "导出 CSV",
    "Facts as recorded": "记录时的事实", "Policy trail": "策略轨迹", "Words": "消息内容",
    "Dispatch steps": "发送步骤", "Rule version source": "规则版本源码", "Phone": "电话",
    "Outcome": "结果", "reached": "已接通", "no_answer": "未接听", "declined": "拒绝",
    "callback_later": "稍后回电", "wrong_number": "号码错误", "Retry": "重试", "Dead letters": "死信",
    "Roles": "角色", "Add user": "添加用户", "Save roles": "保存角色", "New one-time password": "重置一次性密码",
    "One-time password": "一次性密码", "Your password is a one-time password: choose your own.": "您的密码是一次性密码：请设置新密码。",
    "Sign-in refused: wrong user name or password, or the account is locked.": "登录被拒绝：用户名或密码错误，或账户已锁定。",
    "You may not open this page.": "您无权访问此页面。", "Nothing to review.": "没有待审核的提案。",
    "No open tasks.": "没有未完成的任务。", "Times are shown in": "时间时区", "Due": "截止",
    "Signed in as": "当前用户", "Decided by": "决定人", "Total": "合计", "Recorded": "已记录",
    "channel not configured: messages go to dead letters": "渠道未配置：消息将进入死信",
    "The author can never approve or reject their own proposal.": "作者不能批准或驳回自己的提案。",
    "Charts": "图表", "Firings per day by status": "每日触发（按状态）",
    "Firings by reason code": "触发原因代码", "Language": "语言", "Active": "启用", "yes": "是", "no": "否", "State": "状态", "Attempts": "尝试次数",
}
ZH.update({  # issue 11, compliance and author pages (i11a)
    "Based on": "基于", "Rule tests": "规则测试", "passed": "通过", "failed": "失败", "File": "文件", "Case": "用例",
    "Why": "原因", "Rule tests did not run: the proposal has errors.": "规则测试未运行：提案有错误。",
    "Impact preview": "影响预览", "From": "从", "To": "到", "Preview impact": "预览影响",
    "No impact preview: the proposal holds Python rule files, which never run in the console.":
        "无影响预览：提案包含 Python 规则文件，控制台从不运行它们。",
    "Approval is blocked": "无法批准", "Running the proposal's rule tests in a separate process…": "正在独立进程中运行提案的规则测试…", "Running the pipeline over the book, day by day": "正在逐日运行流水线",
    "clients": "位客户", "contacts = client x day": "接触 = 客户 × 日", "No new or changed rules.": "没有新增或修改的规则。",
    "added": "新增", "removed": "移除", "unchanged": "不变", "blocked": "被拦截",
    "proposed": "提案", "segment": "客群", "locale": "语言", "Clients added and removed": "新增与移除的客户", "Approved versions": "已批准版本",
    "Nothing is approved yet: nothing runs.": "尚无已批准版本：不会运行任何规则。", "Approved by": "批准人",
    "When": "时间", "Files": "文件", "Content hash": "内容哈希", "Edits start from": "编辑基于",
    "the working files (nothing approved yet)": "工作文件（尚无批准版本）",
    "A draft is kept for review only: nothing edited here runs before a compliance reviewer approves it.":
        "草稿仅用于审核：在合规审核人批准之前，这里编辑的内容不会运行。",
    "My drafts": "我的草稿", "Saved": "保存时间", "open": "草稿", "Rules": "规则", "Edit": "编辑",
    "Your draft": "您的草稿", "saved": "已保存", "Nothing edited here runs before approval.": "批准前，这里编辑的内容不会运行。",
    "A newer version has been approved since this draft was saved: check the rule against it and save again.":
        "保存草稿后已有新版本获批：请对照新版本检查规则后重新保存。",
    "Draft saved.": "草稿已保存。", "Templates": "模板", "Preview": "预览", "Submit for review": "提交审核",
    "what changed and why (the reviewer reads it)": "改了什么、为什么（审核人会阅读）", "Save draft": "保存草稿",
    "Submit proposal": "提交提案", "the rule fires for this client": "该规则对此客户触发",
    "the rule does not fire for this client": "该规则对此客户不触发",
})


def translator(locale: str) -> dict[str, str]:
    return ZH if locale == "zh-CN" else {}


def pick(query: str | None, cookie: str | None, accept: str | None) -> str:
    """?lang=, then the lang cookie, then Accept-Language; English otherwise."""
    for v in (query, cookie):
        if v in LOCALES:
            return v
    return "zh-CN" if (accept or "").lower().startswith("zh") else "en"
