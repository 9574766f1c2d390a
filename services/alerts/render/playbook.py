"""The suggested next step for each signal type: built-in wording, overridable in the YAML.

Unknown signal types (scoring may add some) get the `default` line rather than nothing,
so every message ends with something a CSM can do.
"""

from __future__ import annotations

from services.alerts.routing.config import RoutingConfig

BUILT_IN: dict[str, str] = {
    "entered_red": "Call your champion this week: confirm what changed, agree a recovery plan "
    "and a date to review it.",
    "band_dropped": "Review what moved the score and check in with the account before it slips further.",
    "score_drop": "Look at the factors that fell and reach out with a specific offer of help.",
    "usage_decline": "Find out which teams stopped using the product and offer a re-onboarding "
    "session or a workflow review.",
    "ticket_spike": "Read the open tickets, sync with support on a fix date, and tell the customer "
    "you are on it.",
    "high_severity_ticket": "Make sure support has an owner and an ETA; call the customer's contact "
    "to acknowledge the impact.",
    "detractor_response": "Reply to the respondent within 48 hours: thank them, address the comment, "
    "and offer a call.",
    "champion_change": "Introduce yourself to the new contact and re-establish the success plan; "
    "find a second sponsor.",
    "competitor_mentioned": "Ask what they are comparing and prepare a value recap against their goals.",
    "payment_issue": "Coordinate with billing and contact the account's finance contact before "
    "access is affected.",
    "renewal_at_risk": "Start the renewal conversation now: book a business review and address the "
    "open risks.",
    "onboarding_behind": "Book a working session to reach the first value milestone; remove the "
    "blocker this week.",
    "seats_nearly_full": "Expansion opportunity: ask about team growth and offer a seat upgrade.",
    "usage_near_plan_limit": "Expansion opportunity: review their usage trend and propose the next plan "
    "before they hit the limit.",
    "promoter_response": "Thank them and ask for a reference, review or case study.",
    "churn_risk": "The churn model puts this account among those that churn: read why below, call your "
    "champion this week and agree a plan on the behaviours that weigh most.",
}
DEFAULT = "Review the account's health and the evidence below, then decide on an outreach."


def next_step(config: RoutingConfig, signal_type: str) -> str:
    return (
        config.playbook.get(signal_type)
        or BUILT_IN.get(signal_type)
        or config.playbook.get("default")
        or DEFAULT
    )
