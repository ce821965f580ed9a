"""Believable last user messages for the demo organisation's gateway logs.

Mostly work, phrased the way each kind of team asks; a few canned prompts that apps send verbatim
(so identical prompts repeat); some chit-chat ("how's it going?") and some personal use ("what's the
weather in Lisbon?"), so the Savings page has something true to show. Deterministic given the rng.
"""

from __future__ import annotations

import random

TRIVIAL_SHARE = 0.04
NON_WORK_SHARE = 0.03
CANNED_SHARE = 0.06

_FILL = {
    "lang": ("Python", "TypeScript", "Go", "Kotlin", "SQL", "Java"),
    "component": (
        "the payments webhook handler",
        "the order export job",
        "the login rate limiter",
        "the invoice PDF renderer",
        "the search indexer",
        "the feature-flag client",
    ),
    "concern": (
        "race conditions",
        "SQL injection",
        "missing error handling",
        "N+1 queries",
        "timezone bugs",
        "unbounded memory use",
    ),
    "thing": (
        "deduplicates customer records by email",
        "retries failed webhooks with backoff",
        "parses the supplier CSV and validates VAT numbers",
        "paginates the audit log API",
        "rounds invoice lines so the total still matches",
    ),
    "customer": ("a hotel chain", "a logistics firm in Rotterdam", "a regional bank", "an online retailer"),
    "issue": (
        "was charged twice for the annual plan",
        "cannot reset their password",
        "sees the wrong VAT rate on invoices",
        "gets a timeout when exporting reports",
        "wants to move their data to the EU region",
    ),
    "metric": ("weekly churn", "average order value", "return rate", "support backlog", "gross margin"),
    "region": ("EMEA", "the Nordics", "DACH", "North America", "APAC"),
    "period": ("Q3", "October", "the last 12 weeks", "H1"),
    "contract": ("master services agreement", "data processing agreement", "reseller agreement", "NDA"),
    "audience": ("the steering committee", "the board", "our enterprise customers", "the sales team"),
    "campaign": ("the winter sale", "the partner webinar", "the new loyalty tier", "the Leeds store opening"),
    "language": ("German", "French", "Spanish", "Japanese", "Dutch"),
    "city": ("Lisbon", "Leeds", "Barcelona", "Edinburgh", "Porto", "Berlin", "Kyoto"),
    "dish": ("a vegetarian lasagne", "banana bread", "a Thai green curry", "overnight oats"),
}

_WORK: dict[str, tuple[str, ...]] = {
    "engineering": (
        "Review this change to {component} and look for {concern}.",
        "Write a {lang} function that {thing}, with tests.",
        "Why does {component} time out under load? Here is the profile output.",
        "Refactor {component} so it can be unit tested without the database.",
        "Explain this stack trace from {component} and suggest a fix.",
        "Write the migration plan for splitting {component} into its own service.",
    ),
    "data": (
        "Write a SQL query for {metric} by month for {region}.",
        "Find the drivers of {metric} in the attached export and suggest a chart.",
        "Is the change in {metric} for {period} significant? Here are the weekly figures.",
        "Write a dbt model that builds {metric} per customer segment.",
    ),
    "support": (
        "Classify this ticket and suggest a priority: the customer {issue}.",
        "Draft a reply to a customer who {issue}, within our refund policy.",
        "Summarise this ticket thread for the engineer on call: the customer {issue}.",
    ),
    "sales": (
        "Prepare a briefing on {customer} before our discovery call.",
        "Draft a follow-up email to {customer} after the demo, with next steps.",
        "Write objection handling for {customer} who says we are too expensive.",
    ),
    "marketing": (
        "Write three subject lines and a 120-word email for {campaign}.",
        "Draft a LinkedIn post announcing {campaign}.",
        "Translate the landing page copy for {campaign} into {language}, keep our brand terms.",
    ),
    "finance": (
        "Write the commentary for the {period} variance report: {metric} is 8% below budget.",
        "Build a forecast of {metric} for next quarter from these monthly figures.",
        "Explain the accrual for the prepaid licences in {period} to the auditors.",
    ),
    "people": (
        "Draft the job description for a senior engineer in {region}.",
        "Write the announcement of the new hybrid-work policy for {audience}.",
        "Summarise the engagement survey comments for {period} into themes.",
    ),
    "legal": (
        "Flag unusual clauses in this {contract} with {customer}.",
        "Compare the liability caps in these two versions of the {contract}.",
        "Does this {contract} meet GDPR article 28? List the gaps.",
    ),
    "operations": (
        "Write the runbook for restarting {component} after a failover.",
        "Summarise this week's incidents for {audience}.",
        "Draft the status update: {component} degraded, fix deploying, next update in 30 minutes.",
    ),
}
_TASK_KINDS = {
    "code-generation": "engineering", "code-review": "engineering", "refactoring": "engineering",
    "data-analysis": "data", "report-writing": "finance", "support-triage": "support",
    "ticket-triage": "support", "email-drafting": "sales", "sales-research": "sales",
    "content-writing": "marketing", "translation": "marketing", "contract-review": "legal",
    "meeting-summaries": "operations", "chat-assistant": "operations",
}  # fmt: skip
_TEAM_KINDS = {
    "engineering-opus": "engineering", "agent-cli": "engineering", "ide-assistant": "engineering",
    "hr-helpdesk": "people", "ops-chat": "operations",
}  # fmt: skip
# Prompts an app sends word for word, many times a day: response-cache candidates.
_CANNED = {
    "engineering": ("Summarise the failing CI jobs on main since yesterday and who owns each.",),
    "data": ("Refresh the weekly KPI commentary from the dashboard numbers below.",),
    "support": ("Summarise today's open tickets by priority and product area.",),
    "sales": ("List my accounts with renewals in the next 60 days and their risk notes.",),
    "marketing": ("Rewrite this product blurb in our brand voice, under 50 words.",),
    "finance": ("Reconcile the card transactions below with the expense claims and list mismatches.",),
    "people": ("Answer this employee question using the handbook excerpt below.",),
    "legal": ("Check this NDA against our standard positions and list deviations.",),
    "operations": ("Summarise the overnight alerts and say which need action this morning.",),
}
_TRIVIAL = (
    "how's it going?", "hi!", "good morning :)", "hello, are you there?", "thanks, that's all",
    "ok thank you", "perfect, cheers", "are you working today?", "test", "what day is it today?",
    "great, thanks a lot!", "hey", "morning! quick hello before standup", "ok",
)  # fmt: skip
_NON_WORK = (
    "what's the weather in {city}?", "is it going to rain in {city} this weekend?",
    "macros for a 2000 kcal day", "recipe for {dish}", "what should I cook tonight?",
    "things to do in {city} with kids", "recommend a film for tonight", "who won the football last night?",
    "gift ideas for my partner's birthday", "how do I get my toddler to sleep through the night?",
    "write a poem for my mum's birthday", "best running shoes for a half marathon",
)  # fmt: skip


def _fill(rng: random.Random, template: str) -> str:
    slots = {name: rng.choice(values) for name, values in _FILL.items() if "{" + name in template}
    return template.format(**slots)


def _kind(team_kind: str, task: str | None) -> str:
    kind = _TEAM_KINDS.get(team_kind, team_kind)
    if kind in _WORK:
        return kind
    return _TASK_KINDS.get(task or "", "operations")


def demo_prompt(rng: random.Random, team_kind: str, task: str | None) -> str:
    """A last user message for one demo request of this kind of team (a Profile key) and task."""
    draw = rng.random()
    if draw < TRIVIAL_SHARE:
        return rng.choice(_TRIVIAL)
    if draw < TRIVIAL_SHARE + NON_WORK_SHARE:
        return _fill(rng, rng.choice(_NON_WORK))
    kind = _kind(team_kind, task)
    if draw < TRIVIAL_SHARE + NON_WORK_SHARE + CANNED_SHARE:
        return rng.choice(_CANNED[kind])
    # The task says what is asked; the team's own phrasing when the task has none of its own.
    task_kind = _TASK_KINDS.get(task or "")
    templates = _WORK[task_kind] if task_kind and rng.random() < 0.7 else _WORK[kind]
    return _fill(rng, rng.choice(templates))
