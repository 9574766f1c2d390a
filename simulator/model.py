"""The customer base, day by day: hidden health, what customers do, and what happens in the end. Pure.

Every account has a hidden health in [0, 1] that Churnwatch never sees. It drifts back to
the account's own set point with daily noise, until a decline starts (a random hazard):
then it falls for weeks, and either recovers or settles low. Everything observable follows
from health, with noise: how many users are active (less on weekends), how many tickets
they file and how urgent (with bursts, sometimes naming a competitor), how they answer NPS
and CSAT surveys, whether payments fail, whether the champion leaves. Low health makes an
account cancel (monthly plans, any day; everyone at renewal, with a probability that rises
steeply as health falls) or stop paying; the outcome is reported as the `account churned` or
`subscription renewed` track event. Unrelated noise, such as a product-wide incident that makes
healthy accounts file tickets, keeps the signals honest.

Each account draws from its own generator seeded by (seed, account number), and the world's
incidents from another: the same configuration gives the same events, ids and ground truth,
and an account's story does not depend on how many others there are.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from simulator import catalog

Channel = Literal["segment", "ticket", "survey"]

# Health below this, or a fall from the account's level of this much, is a decline the
# ground truth records (and alerts on it count as right).
DECLINE_RATE = (0.006, 0.02)  # health lost per day while declining
DECLINE_DAYS = (20, 70)
RECOVERY_SHARE = 0.45  # declines that end with health returning to the set point
CHAMPION_LOSS_HIT = 0.10
PAYMENT_FAILURE_HIT = 0.03
NON_PAYMENT_CHURN_DAYS = 30
WEEKDAY_ACTIVITY = (1.0, 1.0, 0.97, 0.93, 0.8, 0.18, 0.12)  # Monday .. Sunday


@dataclass(frozen=True)
class SimulationConfig:
    accounts: int = 50
    days: int = 90
    seed: int = 1
    start: date = date(2026, 1, 5)
    # Share of user actions sent as track events (1.0 = every one): the volume knob.
    usage_scale: float = 1.0
    # Daily chance that a healthy account starts declining.
    decline_hazard: float = 0.004
    # Daily chance of a product-wide incident that makes accounts file tickets (noise).
    incident_hazard: float = 0.015
    # Send `identify` calls for users (off: a benchmark of what keeps nothing per user).
    identify_users: bool = True

    def __post_init__(self) -> None:
        if self.accounts < 1 or self.days < 1:
            raise ValueError("accounts and days must be at least 1")
        if not 0 < self.usage_scale <= 10:
            raise ValueError("usage_scale must be in (0, 10]")


@dataclass(frozen=True)
class SimEvent:
    """One thing a customer's systems send: a Segment message, a ticket update or a survey answer.

    `body` is exactly what goes over the wire: a Segment message (an item of `/v1/batch`), the
    generic ticket format (`/v1/tickets`), or a survey response (`POST /v1/responses`).
    """

    at: datetime
    account_id: str
    channel: Channel
    body: dict[str, Any]
    # Ordering of events at the same instant: the order they were generated in.
    sequence: int = 0


@dataclass(frozen=True)
class DayTruth:
    account_id: str
    day: date
    health: float
    declining: bool


@dataclass
class Decline:
    start: date
    health_before: float
    lowest: float
    end: date | None = None
    outcome: str = "ongoing"  # recovered | settled | churned | ongoing


@dataclass
class AccountTruth:
    """What really happened to one account, for judging Churnwatch against."""

    account_id: str
    name: str
    plan: str
    mrr: float
    seats: int
    csm_email: str
    set_point: float
    churned_on: date | None = None
    churn_reason: str | None = None
    renewed_on: list[date] = field(default_factory=list)
    declines: list[Decline] = field(default_factory=list)
    champion_changes: list[date] = field(default_factory=list)
    payment_failures: list[date] = field(default_factory=list)


@dataclass(frozen=True)
class SimDay:
    index: int
    day: date
    events: list[SimEvent]
    truth: list[DayTruth]


def account_id_for(index: int) -> str:
    return f"acct-{index + 1:05d}"


def weighted_choice(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal for large ones."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def renewal_churn_probability(health: float) -> float:
    """At renewal: near certain below 0.25, a coin toss at 0.4, rare (under 3%) from 0.6."""
    return 1.0 / (1.0 + math.exp(-(0.4 - health) * 18))


@dataclass
class _User:
    user_id: str
    name: str
    email: str
    role: str
    engagement: float  # how active this person is relative to their colleagues


@dataclass
class _Ticket:
    ticket_id: str
    subject: str
    priority: str
    requester: str
    created_at: datetime
    tags: list[str]


class _Account:
    """One account's hidden state and its generator; `step()` lives one day."""

    def __init__(self, config: SimulationConfig, index: int) -> None:
        self.config = config
        self.index = index
        self.id = account_id_for(index)
        self.rng = random.Random(f"{config.seed}:account:{index}")
        rng = self.rng
        self.sequence = 0
        self.plan = rng.choices(catalog.PLANS, weights=[p.share for p in catalog.PLANS])[0]
        self.seats = rng.randint(*self.plan.seats)
        self.mrr = round(self.seats * self.plan.price_per_seat, 2)
        self.name = f"{rng.choice(catalog.NAME_FIRST)} {rng.choice(catalog.NAME_SECOND)} {index + 1}"
        self.csm = rng.choice(catalog.NAMED_CSMS) if self.plan.high_touch else catalog.DIGITAL_CS
        # A few accounts are new and still onboarding; some of those never get going.
        self.onboarding = rng.random() < 0.15
        started_days_ago = rng.randint(0, 20) if self.onboarding else rng.randint(60, 1000)
        self.onboarding_started = config.start - timedelta(days=started_days_ago)
        self.onboarding_days = rng.randint(30, 45)
        self.set_point = rng.uniform(0.6, 0.95)
        if self.onboarding and rng.random() < 0.25:
            self.set_point = rng.uniform(0.3, 0.5)  # a bad fit from the start
        self.health = min(1.0, max(0.05, self.set_point + rng.gauss(0, 0.05)))
        self.target = self.set_point
        # Renewal falls anywhere in the coming term; monthly plans renew every 30 days.
        self.renewal = config.start + timedelta(days=rng.randint(1, self.plan.term_days))
        self.billing_day = rng.randint(0, 29)
        self.payment_status = "current"
        self.payment_changed = config.start
        self.users = [self._new_user(k) for k in range(max(2, round(self.seats * rng.uniform(0.5, 0.95))))]
        self.next_user = len(self.users)
        self.champion = rng.choice(self.users)
        self.champion.role = "admin"
        self.decline: Decline | None = None
        self.decline_rate = 0.0
        self.decline_until: date | None = None
        self.agenda: list[tuple[datetime, int, Channel, dict[str, Any]]] = []
        self.tickets = 0
        self.responses = 0
        self.churned = False
        self.stage = self._stage(config.start)
        self.truth = AccountTruth(self.id, self.name, self.plan.name, self.mrr, self.seats,
                                  self.csm.email, round(self.set_point, 3))

    # --- people -------------------------------------------------------------------------------

    def _new_user(self, number: int) -> _User:
        first, last = self.rng.choice(catalog.PERSON_FIRST), self.rng.choice(catalog.PERSON_LAST)
        role = "admin" if number == 0 else self.rng.choice(("member", "member", "member", "analyst"))
        domain = self.id.replace("acct-", "customer") + ".example"
        return _User(f"{self.id}-u{number}", f"{first} {last}",
                     f"{first.lower()}.{last.lower()}{number}@{domain}", role,
                     self.rng.lognormvariate(0, 0.5))

    # --- emitting -------------------------------------------------------------------------------

    def _message_id(self) -> str:
        # Ids carry the seed (tickets and responses too): two runs with different seeds against
        # one system never collide; the same seed again is recognised as the same events.
        self.sequence += 1
        return f"sim{self.config.seed}-{self.index + 1}-{self.sequence}"

    def _event(self, at: datetime, channel: Channel, body: dict[str, Any]) -> SimEvent:
        return SimEvent(at, self.id, channel, body, self.sequence)

    def _segment(self, at: datetime, message: dict[str, Any]) -> SimEvent:
        message = {"messageId": self._message_id(), "timestamp": at.isoformat(), **message}
        return self._event(at, "segment", message)

    def _group(self, at: datetime, traits: dict[str, Any]) -> SimEvent:
        return self._segment(at, {"type": "group", "userId": self.champion.user_id,
                                  "groupId": self.id, "traits": traits})

    def _identify(self, at: datetime, user: _User) -> SimEvent:
        return self._segment(at, {"type": "identify", "userId": user.user_id,
                                  "traits": {"name": user.name, "email": user.email,
                                             "role": user.role},
                                  "context": {"groupId": self.id}})

    def _track(self, at: datetime, user_id: str, event: str, properties: dict[str, Any]) -> SimEvent:
        return self._segment(at, {"type": "track", "userId": user_id, "event": event,
                                  "properties": properties, "context": {"groupId": self.id}})

    def _at(self, day: date, earliest_hour: float = 7.0, latest_hour: float = 20.0) -> datetime:
        seconds = self.rng.uniform(earliest_hour * 3600, latest_hour * 3600)
        return datetime.combine(day, time(0), UTC) + timedelta(seconds=int(seconds))

    def _stage(self, day: date) -> str:
        if self.onboarding and (day - self.onboarding_started).days < self.onboarding_days:
            return "onboarding"
        if self.plan.term_days > 30 and 0 <= (self.renewal - day).days <= 90:
            return "renewal"
        return "adoption"

    def full_traits(self) -> dict[str, Any]:
        return {
            "name": self.name, "plan": self.plan.name, "mrr": self.mrr, "seats": self.seats,
            "renewal_date": self.renewal.isoformat(), "lifecycle_stage": self.stage,
            "payment_status": self.payment_status,
            "onboarding_started_at": datetime.combine(self.onboarding_started, time(9), UTC).isoformat(),
            "plan_event_limit": self.seats * self.plan.event_limit_per_seat,
            "champion_user_id": self.champion.user_id,
            "csm_name": self.csm.name, "csm_email": self.csm.email,
            "csm_slack_channel": self.csm.slack_channel, "csm_slack_user": self.csm.slack_user,
        }

    # --- one day --------------------------------------------------------------------------------

    def step(self, day_index: int, day: date, incident: bool) -> tuple[list[SimEvent], DayTruth | None]:
        if self.churned:
            return [], None
        events: list[SimEvent] = []
        if day_index == 0:
            events += self._introduce(day)
        self._drift(day)
        events += self._usage(day)
        events += self._support(day, incident)
        events += self._surveys(day)
        events += self._champion(day)
        events += self._billing(day)
        events += self._expansion(day)
        events += self._due(day)  # last: includes follow-ups scheduled for later today
        stage = self._stage(day)
        if stage != self.stage:
            self.stage = stage
            events.append(self._group(self._at(day, 6, 7), {"lifecycle_stage": stage}))
        events += self._outcome(day)
        truth = DayTruth(self.id, day, round(self.health, 4), self.decline is not None)
        return events, truth

    def _introduce(self, day: date) -> list[SimEvent]:
        """Day one: the account's traits and its people, early in the morning."""
        morning = datetime.combine(day, time(5), UTC)
        events = [self._group(morning, self.full_traits())]
        if self.config.identify_users:
            events += [self._identify(morning + timedelta(seconds=1 + n), user)
                       for n, user in enumerate(self.users)]
        return events

    def _drift(self, day: date) -> None:
        rng = self.rng
        if self.decline is None and rng.random() < self.config.decline_hazard:
            self.decline = Decline(day, round(self.health, 4), round(self.health, 4))
            self.decline_rate = rng.uniform(*DECLINE_RATE)
            self.decline_until = day + timedelta(days=rng.randint(*DECLINE_DAYS))
            self.truth.declines.append(self.decline)
        if self.decline is not None and self.decline_until is not None:
            self.health -= self.decline_rate
            if day >= self.decline_until:
                recovered = rng.random() < RECOVERY_SHARE
                self.decline.end, self.decline.outcome = day, "recovered" if recovered else "settled"
                self.target = self.set_point if recovered else max(0.05, self.health)
                self.decline = None
        else:
            self.health += 0.04 * (self.target - self.health)
            if self.target < self.set_point:  # settled low: the set point follows, slowly
                self.set_point = self.target
        self.health = min(1.0, max(0.02, self.health + rng.gauss(0, 0.012)))
        if self.decline is not None:
            self.decline.lowest = round(min(self.decline.lowest, self.health), 4)

    def _due(self, day: date) -> list[SimEvent]:
        """Follow-ups scheduled earlier (ticket updates, survey amendments) that fall today."""
        end = datetime.combine(day + timedelta(days=1), time(0), UTC)
        due = [item for item in self.agenda if item[0] < end]
        self.agenda = [item for item in self.agenda if item[0] >= end]
        return [self._event(at, channel, body) for at, _, channel, body in sorted(due, key=lambda i: i[:2])]

    def _schedule(self, at: datetime, channel: Channel, body: dict[str, Any]) -> None:
        self.sequence += 1
        self.agenda.append((at, self.sequence, channel, body))

    def _usage(self, day: date) -> list[SimEvent]:
        rng = self.rng
        activity = WEEKDAY_ACTIVITY[day.weekday()] * rng.lognormvariate(0, 0.15)
        active_share = min(0.98, (0.12 + 0.8 * self.health) * activity)
        per_user = self.config.usage_scale * (0.8 + 3.2 * self.health)
        events = []
        for user in self.users:
            if rng.random() >= min(1.0, active_share * user.engagement):
                continue
            for _ in range(poisson(rng, per_user * min(user.engagement, 2.5))):
                action = weighted_choice(rng, catalog.PRODUCT_EVENTS)
                properties: dict[str, Any] = {"feature": rng.choice(catalog.FEATURES)}
                if action == "Report Built":
                    properties["rows"] = rng.randint(10, 5000)
                events.append(self._track(self._at(day), user.user_id, action, properties))
        return events

    def _support(self, day: date, incident: bool) -> list[SimEvent]:
        rng = self.rng
        trouble = (1 - self.health) ** 2
        chance = min(0.9, (0.02 + 0.003 * len(self.users)) * (1 + 6 * trouble))
        count = 1 if rng.random() < chance else 0
        if self.decline is not None and rng.random() < 0.04:
            count += rng.randint(2, 4)  # a spike: several people hit the same wall
        events = [self._open_ticket(day, incident=False) for _ in range(count)]
        if incident and rng.random() < 0.3:
            events.append(self._open_ticket(day, incident=True))
        return events

    def _open_ticket(self, day: date, incident: bool) -> SimEvent:
        rng = self.rng
        self.tickets += 1
        trouble = 1 - self.health
        tags: list[str] = []
        if incident:
            subject, priority = catalog.INCIDENT_SUBJECT, rng.choice(("high", "urgent"))
            tags.append("incident")
        else:
            if rng.random() < (0.3 if self.health < 0.5 else 0.015):
                competitor = rng.choice(catalog.COMPETITORS)
                subject = rng.choice(catalog.COMPETITOR_SUBJECTS).format(competitor=competitor)
                tags.append("competitor")
            elif rng.random() < 0.2 + 0.7 * trouble:
                subject = rng.choice(catalog.TROUBLE_SUBJECTS)
            else:
                subject = rng.choice(catalog.ROUTINE_SUBJECTS)
            severe = rng.random() < 0.08 + 0.5 * trouble**2
            priority = rng.choice(("high", "urgent")) if severe else rng.choice(("low", "normal", "normal"))
        requester = rng.choice(self.users).user_id
        created = self._at(day, 8, 18)
        ticket = _Ticket(f"{self.id}-s{self.config.seed}-t{self.tickets}", subject, priority, requester,
                         created, tags)
        # It is worked on within hours, and solved in days (longer for unhappy accounts).
        opened = created + timedelta(hours=rng.uniform(0.5, 6))
        solved = opened + timedelta(days=rng.expovariate(1 / (1.0 + 4 * trouble)))
        self._schedule(opened, "ticket", self._ticket_body(ticket, "open", opened))
        self._schedule(solved, "ticket", self._ticket_body(ticket, "solved", solved))
        if rng.random() < 0.35:  # a CSAT survey follows the solved ticket
            self.responses += 1
            score = max(1, min(5, round(rng.gauss(1.2 + 4 * self.health, 0.8))))
            self._schedule(solved + timedelta(hours=rng.uniform(1, 30)), "survey", {
                "response_id": f"{self.id}-s{self.config.seed}-r{self.responses}", "account_id": self.id,
                "user_id": requester, "survey_type": "csat", "score": score,
                "submitted_at": (solved + timedelta(hours=1)).isoformat()})
        return self._event(created, "ticket", self._ticket_body(ticket, "new", created))

    def _ticket_body(self, ticket: _Ticket, status: str, at: datetime) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ticket_id": ticket.ticket_id, "account_id": self.id, "status": status,
            "priority": ticket.priority, "subject": ticket.subject, "tags": ticket.tags,
            "updated_at": at.isoformat(), "user_id": ticket.requester,
            "created_at": ticket.created_at.isoformat(),
            "event_id": f"{ticket.ticket_id}:{status}",
        }
        if status == "solved":
            body["solved_at"] = at.isoformat()
        return body

    def _surveys(self, day: date) -> list[SimEvent]:
        rng = self.rng
        if rng.random() >= 1 / 40:
            return []
        respondent = self.champion if rng.random() < 0.4 else rng.choice(self.users)
        score = max(0, min(10, round(rng.gauss(0.5 + 10 * self.health, 1.3))))
        pool: tuple[str, ...]
        if score <= 6:
            pool = catalog.DETRACTOR_COMMENTS
            if rng.random() < (0.3 if self.health < 0.5 else 0.05):
                pool = catalog.COMPETITOR_COMMENTS
        else:
            pool = catalog.PROMOTER_COMMENTS if score >= 9 else catalog.PASSIVE_COMMENTS
        comment = rng.choice(pool).format(competitor=rng.choice(catalog.COMPETITORS))
        self.responses += 1
        at = self._at(day)
        response: dict[str, Any] = {
            "response_id": f"{self.id}-s{self.config.seed}-r{self.responses}", "account_id": self.id,
            "user_id": respondent.user_id, "survey_type": "nps", "score": score,
            "submitted_at": at.isoformat()}
        # Survey tools often deliver the score first and the comment as an amendment.
        if comment and rng.random() < 0.3:
            self._schedule(at + timedelta(hours=rng.uniform(1, 20)), "survey",
                           {**response, "comment": comment})
        elif comment:
            response["comment"] = comment
        return [self._event(at, "survey", response)]

    def _champion(self, day: date) -> list[SimEvent]:
        rng = self.rng
        hazard = 0.012 if self.decline is not None else 0.0006
        if len(self.users) < 2 or rng.random() >= hazard:
            return []
        leaving = self.champion
        self.users.remove(leaving)
        # Usually a colleague steps up; sometimes a new hire replaces them.
        if rng.random() < 0.6:
            successor = max(self.users, key=lambda u: u.engagement)
            events: list[SimEvent] = []
        else:
            successor = self._new_user(self.next_user)
            self.next_user += 1
            self.users.append(successor)
            events = [self._identify(self._at(day, 8, 9), successor)] if self.config.identify_users else []
        successor.role = "admin"
        self.champion = successor
        self.health = max(0.02, self.health - CHAMPION_LOSS_HIT)
        self.truth.champion_changes.append(day)
        events.append(self._group(self._at(day, 9, 10), {"champion_user_id": successor.user_id}))
        return events

    def _billing(self, day: date) -> list[SimEvent]:
        rng = self.rng
        events: list[SimEvent] = []
        since = (day - self.payment_changed).days
        if self.payment_status == "current" and (day - self.config.start).days % 30 == self.billing_day:
            if rng.random() < 0.01 + 0.3 * (1 - self.health) ** 3:
                self._set_payment(day, "failed", events)
                self.health = max(0.02, self.health - PAYMENT_FAILURE_HIT)
                self.truth.payment_failures.append(day)
        elif self.payment_status == "failed" and since >= rng.randint(2, 6):
            self._set_payment(day, "current" if rng.random() < 0.5 + 0.5 * self.health else "past_due",
                              events)
        elif self.payment_status == "past_due" and since >= 7 and rng.random() < 0.1 * self.health:
            self._set_payment(day, "current", events)
        return events

    def _set_payment(self, day: date, status: str, events: list[SimEvent]) -> None:
        self.payment_status, self.payment_changed = status, day
        events.append(self._group(self._at(day, 4, 6), {"payment_status": status}))

    def _expansion(self, day: date) -> list[SimEvent]:
        rng = self.rng
        if self.health < 0.8 or self.decline is not None or rng.random() >= 0.002:
            return []
        added = max(1, round(self.seats * rng.uniform(0.05, 0.2)))
        self.seats += added
        self.mrr = round(self.seats * self.plan.price_per_seat, 2)
        at = self._at(day, 9, 12)
        events = [self._group(at, {"seats": self.seats, "mrr": self.mrr,
                                   "plan_event_limit": self.seats * self.plan.event_limit_per_seat})]
        for _ in range(max(1, added // 2)):
            user = self._new_user(self.next_user)
            self.next_user += 1
            self.users.append(user)
            if self.config.identify_users:
                events.append(self._identify(at + timedelta(minutes=5), user))
        return events

    def _outcome(self, day: date) -> list[SimEvent]:
        rng = self.rng
        reason = None
        if self.payment_status == "past_due" and (day - self.payment_changed).days >= NON_PAYMENT_CHURN_DAYS:
            reason = "non-payment"
        elif self.plan.term_days <= 30 and self.health < 0.25 and rng.random() < 0.03:
            reason = "cancelled"
        elif day >= self.renewal:
            if rng.random() < renewal_churn_probability(self.health):
                reason = "not renewed"
            else:
                self.renewal = self.renewal + timedelta(days=self.plan.term_days)
                self.truth.renewed_on.append(day)
                at = self._at(day, 20, 21)
                return [self._track(at, "billing-system", "subscription renewed",
                                    {"mrr": self.mrr, "renewal_date": self.renewal.isoformat()}),
                        self._group(at + timedelta(seconds=1), {"renewal_date": self.renewal.isoformat()})]
        if reason is None:
            return []
        self.churned = True
        self.truth.churned_on, self.truth.churn_reason = day, reason
        if self.decline is not None:
            self.decline.end, self.decline.outcome = day, "churned"
        return [self._track(self._at(day, 21, 22), "billing-system", "account churned",
                            {"reason": reason, "mrr": self.mrr})]


class Simulation:
    """Iterate `days()` once; then `accounts()` tells what happened to each account."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self._accounts = [_Account(config, index) for index in range(config.accounts)]
        self._world = random.Random(f"{config.seed}:world")

    def days(self) -> Iterator[SimDay]:
        for index in range(self.config.days):
            day = self.config.start + timedelta(days=index)
            incident = self._world.random() < self.config.incident_hazard
            events: list[SimEvent] = []
            truth: list[DayTruth] = []
            for account in self._accounts:
                account_events, account_truth = account.step(index, day, incident)
                events += account_events
                if account_truth is not None:
                    truth.append(account_truth)
            events.sort(key=lambda e: (e.at, e.account_id, e.sequence))
            yield SimDay(index, day, events, truth)

    def accounts(self) -> list[AccountTruth]:
        return [account.truth for account in self._accounts]
