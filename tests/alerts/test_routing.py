"""Pure routing, configuration, local time, lifecycle decisions and signed links."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import jwt
import pytest

from services.alerts.consumer import capabilities
from services.alerts.lifecycle.transitions import (
    Action,
    AlertSnapshot,
    AlertState,
    Notify,
    escalation_due_at,
    on_cleared,
    on_raised,
)
from services.alerts.links import LinkAction, make_token, read_token
from services.alerts.routing.config import (
    Channel,
    ConfigError,
    Fallback,
    Lifecycle,
    QuietHours,
    RoutingConfig,
    load_routing,
    parse_routing,
)
from services.alerts.routing.plan import (
    SLACK_WEBHOOK_CHANNEL,
    AlertFacts,
    Capabilities,
    DigestRoute,
    Role,
    StoredPreferences,
    Target,
    plan_escalation,
    plan_notices,
    resolve_segment,
    route_digest,
)
from services.alerts.routing.timing import latest_digest_moment, quiet_until
from shared.account_facts import AccountFacts
from shared.events import Severity, SignalKind
from shared.settings import Settings
from shared.signed_links import LinkError, LinkProblem

SECRET = "a-test-secret-long-enough-for-hs256-0123456789"
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
API = Capabilities(slack_api=True, slack_webhook=False)
WEBHOOK = Capabilities(slack_api=False, slack_webhook=True, default_email="cs-team@example.com")

CONFIG = parse_routing(
    {
        "defaults": {"timezone": "Europe/Berlin", "quiet_hours": {"start": "20:00", "end": "08:00"}},
        "fallback": {"slack_channel": "#cs-alerts", "email": "cs-team@example.com"},
        "segments": [
            {
                "name": "enterprise",
                "match": {"plans": ["Enterprise"], "min_mrr": 5000},
                "escalation": {
                    "after_hours": 4,
                    "contacts": [{"name": "Dana", "email": "dana@example.com", "slack_user": "U0DANA"}],
                },
            },
            {
                "name": "low_touch",
                "match": {"max_arr": 12000},
                "delivery": "digest",
                "fallback": {"email": "scale@example.com"},
            },
        ],
        "recipients": [{"email": "jane@example.com", "timezone": "America/New_York", "slack_user": "U0JANE"}],
    }
)
ACME = AccountFacts(
    name="Acme",
    plan="enterprise",
    mrr=9000,
    csm_email="Jane@Example.com",
    csm_slack_channel="#cs-acme",
    csm_slack_user="U0JANE",
)


def high(segment: str | None = None) -> AlertFacts:
    return AlertFacts(Severity.HIGH, segment)


# --- configuration --------------------------------------------------------------------------


def test_errors_name_the_place_in_the_file(tmp_path: Path) -> None:
    file = tmp_path / "routing.yaml"
    file.write_text(
        "defaults:\n  timezone: Mars/Olympus\n"
        "segments:\n  - name: a\n    escalation: {after_hours: 0, contacts: []}\n  - nam: b\n"
        "lifecycle: {cooldown_hours: -1}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_routing(file)
    message = str(raised.value)
    assert str(file) in message
    for place in (
        "defaults.timezone",
        "segments[0].escalation.after_hours",
        "segments[0].escalation.contacts",
        "segments[1].name",
        "segments[1].nam",
        "lifecycle.cooldown_hours",
    ):
        assert place in message, place


def test_missing_file_and_bad_yaml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_routing(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("segments: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_routing(bad)
    assert load_routing(None) == RoutingConfig()


def test_webhook_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_ENT", "https://hooks.example.com/ent")
    config = parse_routing({"slack": {"webhooks": {"#cs-ent": "${HOOK_ENT}"}}})
    assert config.slack.webhooks == {"#cs-ent": "https://hooks.example.com/ent"}
    with pytest.raises(ConfigError, match=r"slack.webhooks.#cs-x: environment variable NOT_SET_HERE"):
        parse_routing({"slack": {"webhooks": {"#cs-x": "${NOT_SET_HERE}"}}})


# --- segments and recipients ------------------------------------------------------------------


def test_segment_by_signal_name_then_by_facts() -> None:
    assert resolve_segment(CONFIG, "low_touch", ACME).name == "low_touch"  # type: ignore[union-attr]
    assert resolve_segment(CONFIG, None, ACME).name == "enterprise"  # type: ignore[union-attr]
    small = AccountFacts(plan="starter", mrr=200)
    assert resolve_segment(CONFIG, "smb", small).name == "low_touch"  # type: ignore[union-attr]
    assert resolve_segment(CONFIG, None, AccountFacts(plan="pro", mrr=3000)) is None
    assert resolve_segment(CONFIG, None, AccountFacts()) is None  # unknown revenue is not "small"


def test_owner_gets_their_channel_with_a_mention_and_their_email() -> None:
    [owner] = plan_notices(high(), ACME, CONFIG, resolve_segment(CONFIG, None, ACME), {}, API, NOON)
    assert (owner.role, owner.recipient, owner.digest) == (Role.OWNER, "jane@example.com", False)
    assert owner.targets == (
        Target(Channel.SLACK, "#cs-acme", "U0JANE"),
        Target(Channel.EMAIL, "Jane@Example.com"),
    )
    assert owner.timezone == "America/New_York"  # from the directory, over the default


def test_low_touch_goes_to_the_digest_and_ownerless_to_the_fallback() -> None:
    small = AccountFacts(name="Small", mrr=100, csm_email="sam@example.com")
    [owner] = plan_notices(high(), small, CONFIG, resolve_segment(CONFIG, None, small), {}, API, NOON)
    assert owner.digest and not owner.immediate
    nobody = AccountFacts(name="Orphan", mrr=100)
    [fallback] = plan_notices(
        high(), nobody, CONFIG, resolve_segment(CONFIG, None, nobody), {}, WEBHOOK, NOON
    )
    assert fallback.role is Role.FALLBACK
    # The segment's own fallback email wins over the global one; Slack falls back to the global channel.
    assert fallback.targets == (
        Target(Channel.SLACK, "#cs-alerts"),
        Target(Channel.EMAIL, "scale@example.com"),
    )


def test_preferences_choose_channels_threshold_and_team_scope() -> None:
    prefs = {
        "jane@example.com": StoredPreferences(channels=[Channel.EMAIL], min_severity=Severity.MEDIUM),
        "lead@example.com": StoredPreferences(scope="team", segments=["enterprise"], slack_user="U0LEAD"),
        "other@example.com": StoredPreferences(scope="team", segments=["low_touch"]),
    }
    segment = resolve_segment(CONFIG, None, ACME)
    notices = plan_notices(high(), ACME, CONFIG, segment, prefs, API, NOON)
    assert [(n.recipient, n.targets) for n in notices] == [
        ("jane@example.com", (Target(Channel.EMAIL, "Jane@Example.com"),)),
        ("lead@example.com", (Target(Channel.SLACK, "U0LEAD"), Target(Channel.EMAIL, "lead@example.com"))),
    ]
    low = plan_notices(AlertFacts(Severity.LOW, None), ACME, CONFIG, segment, prefs, API, NOON)
    assert low[0].skipped == "below_min_severity"


def test_quiet_hours_defer_to_the_recipients_morning() -> None:
    late = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 18:30 in New York, 00:30 in Berlin
    [jane] = plan_notices(high(), ACME, CONFIG, None, {}, API, late)
    assert jane.not_before is None  # New York evening, before 20:00
    nobody = AccountFacts(name="Orphan")
    [fallback] = plan_notices(high(), nobody, CONFIG, None, {}, API, late)
    assert fallback.not_before == datetime(2026, 11, 21, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    opted_out = {"jane@example.com": StoredPreferences(no_quiet_hours=True, timezone="Europe/Berlin")}
    [jane] = plan_notices(high(), ACME, CONFIG, None, opted_out, API, late)
    assert jane.not_before is None


def test_webhook_only_deployments_cannot_dm() -> None:
    dm_only = AccountFacts(name="A", csm_email="jane@example.com", csm_slack_user="U0JANE")
    [owner] = plan_notices(high(), dm_only, RoutingConfig(), None, {}, WEBHOOK, NOON)
    assert owner.targets[0] == Target(Channel.SLACK, SLACK_WEBHOOK_CHANNEL, "U0JANE")
    [owner] = plan_notices(high(), dm_only, RoutingConfig(), None, {}, API, NOON)
    assert owner.targets[0] == Target(Channel.SLACK, "U0JANE")


def test_escalation_contacts_are_reached_directly() -> None:
    segment = resolve_segment(CONFIG, None, ACME)
    assert segment is not None and segment.escalation is not None
    [dana] = plan_escalation(segment.escalation.contacts, CONFIG, {}, API, NOON)
    assert (dana.role, dana.targets) == (
        Role.ESCALATION,
        (Target(Channel.SLACK, "U0DANA"), Target(Channel.EMAIL, "dana@example.com")),
    )


# --- local time ----------------------------------------------------------------------------------


def test_quiet_hours_across_midnight_and_daylight_saving() -> None:
    quiet = QuietHours(start=time(20), end=time(8))
    assert quiet_until(datetime(2026, 11, 20, 19, 0, tzinfo=UTC), "Europe/Berlin", quiet) == datetime(
        2026, 11, 21, 7, 0, tzinfo=UTC
    )  # 20:00 Berlin
    assert quiet_until(datetime(2026, 11, 20, 18, 59, tzinfo=UTC), "Europe/Berlin", quiet) is None
    # The night clocks go back in Berlin (25 October 2026), 08:00 local is 07:00 UTC again.
    assert quiet_until(datetime(2026, 10, 24, 22, 0, tzinfo=UTC), "Europe/Berlin", quiet) == datetime(
        2026, 10, 25, 7, 0, tzinfo=UTC
    )
    lunch = QuietHours(start=time(12), end=time(13))
    assert quiet_until(NOON, "UTC", lunch) == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)


def test_digest_moment_is_the_latest_local_digest_time() -> None:
    day, moment = latest_digest_moment(datetime(2026, 11, 21, 8, 30, tzinfo=UTC), "Europe/Berlin", time(9))
    assert (str(day), moment) == ("2026-11-21", datetime(2026, 11, 21, 8, 0, tzinfo=UTC))
    day, moment = latest_digest_moment(datetime(2026, 11, 21, 7, 59, tzinfo=UTC), "Europe/Berlin", time(9))
    assert (str(day), moment) == ("2026-11-20", datetime(2026, 11, 20, 8, 0, tzinfo=UTC))


# --- lifecycle decisions -----------------------------------------------------------------------------


POLICY = Lifecycle(cooldown_hours=24, clear_after_minutes=60, max_signal_age_hours=168)


def alert(
    state: AlertState = AlertState.OPEN,
    told: Severity | None = Severity.MEDIUM,
    notified: datetime | None = NOON,
) -> AlertSnapshot:
    return AlertSnapshot(state, Severity.MEDIUM, told, notified, NOON)


def test_raised_signals() -> None:
    later = NOON + timedelta(hours=2)
    assert on_raised(None, None, Severity.HIGH, NOON, NOON, POLICY).action is Action.OPEN
    same = on_raised(alert(), None, Severity.MEDIUM, later, later, POLICY)
    assert (same.action, same.notify, same.reason) == (Action.UPDATE, Notify.NONE, "already_open")
    worse = on_raised(alert(), None, Severity.HIGH, later, later, POLICY)
    assert (worse.notify, worse.reason) == (Notify.UPDATE, "severity_rose")
    snoozed = on_raised(alert(AlertState.SNOOZED), None, Severity.HIGH, later, later, POLICY)
    assert (snoozed.notify, snoozed.reason) == (Notify.NONE, "snoozed")
    replayed = on_raised(None, None, Severity.HIGH, NOON, NOON, POLICY, replayed=True)
    assert (replayed.action, replayed.notify, replayed.reason) == (Action.IGNORE, Notify.NONE, "replayed")
    replayed_open = on_raised(alert(), None, Severity.HIGH, later, later, POLICY, replayed=True)
    assert (replayed_open.action, replayed_open.notify) == (Action.UPDATE, Notify.NONE)
    old = on_raised(None, None, Severity.HIGH, NOON - timedelta(days=8), NOON, POLICY)
    assert (old.action, old.reason) == (Action.IGNORE, "stale")


def test_flapping_is_held_back_by_the_cooldown() -> None:
    resolved = alert(AlertState.RESOLVED)
    within = on_raised(None, resolved, Severity.MEDIUM, NOON, NOON + timedelta(hours=3), POLICY)
    assert (within.action, within.notify, within.reason) == (Action.REOPEN, Notify.DIGEST, "cooldown")
    worse = on_raised(None, resolved, Severity.HIGH, NOON, NOON + timedelta(hours=3), POLICY)
    assert (worse.action, worse.notify) == (Action.REOPEN, Notify.ALERT)
    after = on_raised(None, resolved, Severity.MEDIUM, NOON, NOON + timedelta(hours=25), POLICY)
    assert (after.action, after.notify) == (Action.OPEN, Notify.ALERT)


def test_a_new_reason_joins_the_open_alert_for_the_digest_unless_it_is_worse() -> None:
    later = NOON + timedelta(hours=2)
    joins = on_raised(alert(), None, Severity.MEDIUM, later, later, POLICY, new_reason=True)
    assert (joins.action, joins.notify, joins.reason) == (Action.UPDATE, Notify.DIGEST, "new_reason")
    worse = on_raised(alert(), None, Severity.HIGH, later, later, POLICY, new_reason=True)
    assert (worse.action, worse.notify, worse.reason) == (Action.UPDATE, Notify.UPDATE, "severity_rose")
    snoozed = on_raised(alert(AlertState.SNOOZED), None, Severity.HIGH, later, later, POLICY, new_reason=True)
    assert (snoozed.action, snoozed.notify) == (Action.UPDATE, Notify.NONE)
    week_ago = NOON - timedelta(days=8)
    backfill = on_raised(alert(), None, Severity.HIGH, week_ago, later, POLICY, new_reason=True)
    assert (backfill.notify, backfill.reason) == (Notify.NONE, "stale")
    untold = on_raised(alert(told=None), None, Severity.LOW, later, later, POLICY, new_reason=True)
    assert (untold.notify, untold.reason) == (Notify.DIGEST, "new_reason")


def test_cleared_signals() -> None:
    assert on_cleared(None, None, NOON, POLICY).reason == "no_open_alert"
    assert on_cleared(alert(), None, NOON, POLICY).reason == "no_such_reason"
    assert on_cleared(alert(), NOON, NOON - timedelta(minutes=1), POLICY).reason == "stale_clear"
    assert on_cleared(alert(), NOON, NOON, POLICY).action is Action.CLEAR
    assert on_cleared(alert(), NOON, NOON, Lifecycle(clear_after_minutes=0)).action is Action.RESOLVE


def test_only_risk_alerts_at_the_threshold_escalate() -> None:
    escalation = CONFIG.segments[0].escalation
    assert escalation_due_at(NOON, Severity.HIGH, SignalKind.RISK, escalation) == NOON + timedelta(hours=4)
    assert escalation_due_at(NOON, Severity.MEDIUM, SignalKind.RISK, escalation) is None
    assert escalation_due_at(NOON, Severity.HIGH, SignalKind.EXPANSION, escalation) is None
    assert escalation_due_at(NOON, Severity.HIGH, SignalKind.RISK, None) is None


# --- links ----------------------------------------------------------------------------------------------


def test_links_are_signed_bound_and_expire_on_the_injected_clock() -> None:
    token = make_token(SECRET, 7, LinkAction.ACKNOWLEDGE, "jane@example.com", NOON, timedelta(days=14))
    claims = read_token(SECRET, token, NOON + timedelta(days=13))
    assert (claims.alert_id, claims.action, claims.recipient) == (
        7,
        LinkAction.ACKNOWLEDGE,
        "jane@example.com",
    )
    with pytest.raises(LinkError) as expired:
        read_token(SECRET, token, NOON + timedelta(days=14))
    assert expired.value.problem is LinkProblem.EXPIRED
    for bad in (token[:-2] + ("A" if token[-1] != "A" else "B") + token[-1], "nonsense", token + "x"):
        with pytest.raises(LinkError) as invalid:
            read_token(SECRET, bad, NOON)
        assert invalid.value.problem is LinkProblem.INVALID
    with pytest.raises(LinkError):
        read_token(SECRET + "x", token, NOON)


def test_an_action_link_is_refused_for_another_action() -> None:
    token = make_token(SECRET, 7, LinkAction.ACKNOWLEDGE, "jane@example.com", NOON, timedelta(days=14))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["aud"], claims["sub"], claims["rcp"]) == (
        "churnwatch-alerts/acknowledge", "7", "jane@example.com")
    forger = "a-forger-without-the-secret-0123456789"
    as_feedback = jwt.encode({**claims, "aud": "churnwatch-alerts/feedback"}, forger)
    header, _, signature = token.split(".")
    with pytest.raises(LinkError) as invalid:
        read_token(SECRET, f"{header}.{as_feedback.split('.')[1]}.{signature}", NOON)
    assert invalid.value.problem is LinkProblem.INVALID


def test_action_links_sent_before_the_shared_format_work_until_they_expire() -> None:
    # The old format, from its spec: an HS256 JWT of alert, act, rcp, iat and exp, nothing else.
    old = jwt.encode(
        {"alert": 7, "act": "snooze", "rcp": "jane@example.com", "iat": int(NOON.timestamp()),
         "exp": int((NOON + timedelta(days=14)).timestamp())}, SECRET, algorithm="HS256")
    claims = read_token(SECRET, old, NOON + timedelta(days=13))
    assert (claims.alert_id, claims.action, claims.recipient, claims.expires_at) == (
        7, LinkAction.SNOOZE, "jane@example.com", NOON + timedelta(days=14))
    with pytest.raises(LinkError) as expired:
        read_token(SECRET, old, NOON + timedelta(days=14))
    assert expired.value.problem is LinkProblem.EXPIRED
    with pytest.raises(LinkError) as invalid:
        read_token(SECRET + "x", old, NOON)
    assert invalid.value.problem is LinkProblem.INVALID


def test_a_default_email_that_is_no_address_stops_the_service_at_start() -> None:
    config = RoutingConfig()
    with pytest.raises(ValueError, match="CHURNWATCH_ALERT_DEFAULT_EMAIL"):
        capabilities(Settings(alert_default_email="cs-team@localhost"), config)
    assert capabilities(Settings(alert_default_email="cs-team@example.com"), config).default_email == (
        "cs-team@example.com")


def test_a_digest_goes_where_the_recipient_is_still_reachable_else_to_the_fallback() -> None:
    none = Capabilities(slack_api=False, slack_webhook=False)
    api = Capabilities(slack_api=True, slack_webhook=False)
    dm = [{"channel": "slack", "address": "U0SAM0001"}]
    both = [*dm, {"channel": "email", "address": "sam@example.com"}]
    fallback = Fallback(slack_channel="#cs-alerts", email="cs-team@example.com")
    assert route_digest(both, none, fallback) == DigestRoute(Channel.EMAIL, "sam@example.com", False)
    assert route_digest(dm, api, fallback) == DigestRoute(Channel.SLACK, "U0SAM0001", False)
    # Slack is gone from this deployment: the fallback's email, else its channel (if reachable).
    assert route_digest(dm, none, fallback) == DigestRoute(Channel.EMAIL, "cs-team@example.com", True)
    assert route_digest(dm, api, Fallback(slack_channel="#cs-alerts")) == DigestRoute(
        Channel.SLACK, "U0SAM0001", False
    )
    assert route_digest([], api, Fallback(slack_channel="#cs-alerts")) == DigestRoute(
        Channel.SLACK, "#cs-alerts", True
    )
    assert route_digest(dm, none, Fallback(slack_channel="#cs-alerts")) is None
    assert route_digest([{"channel": "pager", "address": "x"}], none, Fallback()) is None
