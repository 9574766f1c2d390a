"""Fixed vocabulary of the simulated customer base: plans, CSMs, names, ticket subjects, comments.

Data only. The model picks from these lists with its seeded random generators, so changing
a list changes the stream for every seed (and is a deliberate, reviewed change).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    share: float  # of accounts on this plan
    seats: tuple[int, int]  # licensed seats, inclusive range
    price_per_seat: float  # MRR per seat
    event_limit_per_seat: int  # tracked events per 30 days the plan allows, per seat
    term_days: int  # contract term: monthly plans can leave every month
    high_touch: bool  # a named CSM owns it; otherwise the pooled digital team


PLANS = (
    Plan("starter", 0.55, (3, 12), 25.0, 400, 30, False),
    Plan("growth", 0.33, (12, 45), 40.0, 600, 365, True),
    Plan("enterprise", 0.12, (45, 160), 65.0, 1000, 365, True),
)


@dataclass(frozen=True)
class Csm:
    name: str
    email: str
    slack_channel: str
    slack_user: str


NAMED_CSMS = (
    Csm("Jane Okafor", "jane.okafor@cs.example.com", "#cs-jane", "U07JANE001"),
    Csm("Marco Rossi", "marco.rossi@cs.example.com", "#cs-marco", "U07MARCO02"),
    Csm("Priya Natarajan", "priya.natarajan@cs.example.com", "#cs-priya", "U07PRIYA03"),
    Csm("Tom Becker", "tom.becker@cs.example.com", "#cs-tom", "U07TOM0004"),
)
DIGITAL_CS = Csm("Digital CS team", "digital-cs@cs.example.com", "#cs-digital", "U07DIGITAL")

NAME_FIRST = (
    "Acme", "Blue", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli",
    "Vandelay", "Soylent", "Cyberdyne", "Tyrell", "Wonka", "Gringotts", "Aperture", "Black Mesa",
    "Pied Piper", "Dunder", "Sterling", "Oscorp", "Massive", "Nimbus", "Quartz", "Juniper",
    "Falcon", "Harbor", "Maple", "Summit", "Cobalt", "Lumen", "Orbit", "Pioneer", "Redwood",
)
NAME_SECOND = (
    "Analytics", "Logistics", "Health", "Foods", "Labs", "Robotics", "Media", "Capital",
    "Retail", "Energy", "Travel", "Systems", "Studios", "Bank", "Insurance", "Networks",
)
PERSON_FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas",
                "Kemal", "Lea", "Mina", "Noah", "Olga", "Paulo", "Quinn", "Rosa", "Sami", "Tess")
PERSON_LAST = ("Adams", "Berg", "Costa", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
               "Jensen", "Khan", "Lopez", "Meyer", "Novak", "Ortiz", "Park", "Quist", "Ruiz")

# Product actions and how often each is done relative to the others.
PRODUCT_EVENTS = (
    ("Signed In", 5.0), ("Dashboard Viewed", 4.0), ("Report Built", 2.5), ("Export Created", 1.0),
    ("Alert Configured", 0.6), ("Integration Synced", 0.8), ("Comment Added", 1.5),
    ("User Invited", 0.2),
)
FEATURES = ("dashboards", "reports", "exports", "alerts", "integrations", "api")

COMPETITORS = ("Gainsight", "Totango", "ChurnZero", "Planhat", "Vitally")

ROUTINE_SUBJECTS = (
    "How do I schedule a weekly report?", "SSO setup question", "Add a user to our workspace",
    "CSV export has the wrong date format", "Question about API rate limits",
    "Invoice address change", "Dashboard filter does not save", "Integration token expired",
)
TROUBLE_SUBJECTS = (
    "Reports keep timing out", "Data has been missing for two days", "Sync broken again",
    "Exports fail for large workspaces", "Dashboards extremely slow since the update",
    "We are losing data between syncs", "Urgent: nobody on our team can log in",
)
COMPETITOR_SUBJECTS = (
    "Need a full export of our data, we are evaluating {competitor}",
    "How does your pricing compare to {competitor}?",
    "{competitor} offers this out of the box, when will you?",
)
INCIDENT_SUBJECT = "Outage: dashboards not loading"

PROMOTER_COMMENTS = (
    "Our whole team lives in the dashboards now.", "Support is fast and the reports save us hours.",
    "Love the integrations, setup was painless.", "",
)
PASSIVE_COMMENTS = (
    "Does the job, a bit slow sometimes.", "Good product, the exports could be better.",
    "Fine overall.", "",
)
DETRACTOR_COMMENTS = (
    "Reports time out every week and support takes days.", "Too expensive for what we use.",
    "Data was missing again, hard to trust the numbers.", "Half the team stopped logging in.",
    "Onboarding never really finished for us.",
)
COMPETITOR_COMMENTS = (
    "We are trialling {competitor} next month.", "{competitor} does this better and cheaper.",
)
