"""Account facts and outcome events go through ingest untouched: their meaning is scoring's
(shared/account_facts.py), so ingest neither drops, renames nor reinterprets a trait."""

from __future__ import annotations

from datetime import date

from services.ingest.app import create_app
from shared.account_facts import AccountFacts, LifecycleStage, OutcomeEvent, PaymentStatus, Trait
from shared.settings import Settings
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.kafka import read_topic

TRAITS = {
    Trait.NAME: "Acme Corp", Trait.PLAN: "enterprise", Trait.MRR: 4_200.5, Trait.SEATS: 120,
    Trait.RENEWAL_DATE: "2027-03-31", Trait.LIFECYCLE_STAGE: "adoption", Trait.PAYMENT_STATUS: "past_due",
    Trait.ONBOARDING_STARTED_AT: "2026-01-05T09:00:00Z", Trait.PLAN_EVENT_LIMIT: 1_000_000,
    Trait.CHAMPION_USER_ID: "user-7", Trait.CSM_NAME: "Jane Roe", Trait.CSM_EMAIL: "jane@example.com",
    Trait.CSM_SLACK_CHANNEL: "#cs-acme", Trait.CSM_SLACK_USER: "U0123ABC",
    # Not a trait Churnwatch reads, of a type none of them has: kept as sent all the same.
    "custom": {"nested": [1, "two", None]},
}


async def test_group_traits_and_outcome_events_arrive_as_sent(settings: Settings) -> None:
    group = {"type": "group", "userId": "u1", "groupId": "acct-acme", "messageId": "facts-1",
             "traits": {str(k): v for k, v in TRAITS.items()}, "timestamp": "2026-11-20T10:00:00Z"}
    churned = {"type": "track", "userId": "u1", "event": "Account Churned", "messageId": "out-1",
               "properties": {"reason": "budget", "mrr_lost": 4_200.5}}
    renewed = {"type": "track", "userId": "u1", "event": "subscription_renewed", "messageId": "out-2",
               "properties": {"term_months": 12}}
    async with serving(create_app(settings)) as client:
        response = await client.post("/v1/batch", json={"writeKey": "test-write-key",
                                                        "batch": [group, churned, renewed]})
        assert response.status_code == 200, response.text
    topics = Topics.from_settings(settings)
    [traits_event] = await read_topic(settings, topics.traits)
    assert traits_event.payload["traits"] == group["traits"]
    assert traits_event.account_id == "acct-acme"
    facts = AccountFacts.from_traits(traits_event.payload["traits"])
    assert (facts.seats, facts.renewal_date, facts.lifecycle_stage, facts.payment_status) == (
        120, date(2027, 3, 31), LifecycleStage.ADOPTION, PaymentStatus.PAST_DUE)
    assert (facts.csm_email, facts.csm_slack_user, facts.plan_event_limit) == (
        "jane@example.com", "U0123ABC", 1_000_000)

    usage = {e.event_id: e for e in await read_topic(settings, topics.usage)}
    assert usage["out-1"].payload["event"] == "Account Churned"  # the client's spelling, untouched
    assert usage["out-1"].payload["properties"] == churned["properties"]
    assert OutcomeEvent.of(usage["out-1"].payload["event"]) is OutcomeEvent.ACCOUNT_CHURNED
    assert OutcomeEvent.of(usage["out-2"].payload["event"]) is OutcomeEvent.SUBSCRIPTION_RENEWED
    assert {e.account_id for e in usage.values()} == {"acct-acme"}  # by the group call before them
