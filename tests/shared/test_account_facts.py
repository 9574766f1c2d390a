"""Reading account facts from group traits: lenient, never zero for unknown, order independent."""

from __future__ import annotations

from datetime import UTC, date, datetime

from shared.account_facts import (
    AccountFacts,
    LifecycleStage,
    OutcomeEvent,
    PaymentStatus,
    unreadable_traits,
)


def test_documented_traits_are_read() -> None:
    facts = AccountFacts.from_traits({
        "name": " Acme Corp ", "plan": "enterprise", "mrr": "12,500", "seats": 40,
        "renewal_date": "2027-02-01", "lifecycle_stage": "Adoption", "payment_status": "past-due",
        "created_at": "2026-01-05T09:00:00Z", "plan_event_limit": 1_000_000,
        "champion_user_id": 1234, "csm_name": "Jane", "csm_email": "jane@example.com",
        "csm_slack_channel": "#cs-acme", "csm_slack_user": "U0123ABC",
    })
    assert facts == AccountFacts(
        name="Acme Corp", plan="enterprise", mrr=12_500.0, seats=40, renewal_date=date(2027, 2, 1),
        lifecycle_stage=LifecycleStage.ADOPTION, payment_status=PaymentStatus.PAST_DUE,
        onboarding_started_at=datetime(2026, 1, 5, 9, tzinfo=UTC), plan_event_limit=1_000_000,
        champion_user_id="1234", csm_name="Jane", csm_email="jane@example.com",
        csm_slack_channel="#cs-acme", csm_slack_user="U0123ABC",
    )
    assert facts.arr == 150_000.0


def test_unreadable_traits_are_absent_not_zero_and_are_named() -> None:
    traits = {"seats": "many", "mrr": -5, "renewal_date": "soon", "payment_status": "weird",
              "lifecycle_stage": 3, "name": "", "arr": 1200}
    facts = AccountFacts.from_traits(traits)
    assert facts.seats is None and facts.renewal_date is None and facts.payment_status is None
    assert facts.mrr == 100.0  # an unreadable mrr falls back to arr / 12
    assert sorted(unreadable_traits(traits)) == ["lifecycle_stage", "mrr", "payment_status",
                                                  "renewal_date", "seats"]


def test_onboarding_start_prefers_its_own_trait() -> None:
    facts = AccountFacts.from_traits({"created_at": "2026-01-01", "onboarding_started_at": "2026-03-01"})
    assert facts.onboarding_started_at == datetime(2026, 3, 1, tzinfo=UTC)


def test_outcome_event_names_are_matched_loosely() -> None:
    assert OutcomeEvent.of("Account Churned") is OutcomeEvent.ACCOUNT_CHURNED
    assert OutcomeEvent.of("subscription_renewed") is OutcomeEvent.SUBSCRIPTION_RENEWED
    assert OutcomeEvent.of("Report Built") is None
