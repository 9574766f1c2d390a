"""How fast surveys queues and mails invitations: one scheduler pass over N contacts, then the
sender draining the outbox into a real SMTP server (aiosmtpd) on this machine.

Real PostgreSQL (embedded) and a real SMTP server; Kafka is started by the shared test
infrastructure but not used by these two loops.

    .venv/bin/python -m bench.survey_invitations [--contacts 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.surveys.contacts import Contact
from services.surveys.invitations.definitions import DefinitionIn
from services.surveys.invitations.links import LinkSigner
from services.surveys.invitations.scheduler import Scheduler
from services.surveys.invitations.sender import InvitationSender
from services.surveys.segments import parse_arr_tiers
from services.surveys.store import campaigns as campaign_store
from services.surveys.store import contacts as contact_store
from shared.db import create_engine, migrate
from shared.events import utcnow
from tests.support.infra import Infra, running_infra
from tests.surveys.support import SmtpServer


async def run(infra: Infra, contacts: int) -> dict[str, Any]:
    async with SmtpServer() as smtp:
        settings = infra.fresh_settings(survey_link_secret="bench-secret", smtp_port=smtp.port,
                                        survey_max_invitations_per_run=contacts)
        await migrate(settings)
        engine = create_engine(settings)
        now = utcnow()
        try:
            async with engine.begin() as conn:
                people = [(Contact(f"u{n}", f"user{n}@acct{n % 500}.example", f"User {n}", "admin"),
                           {"email": f"user{n}@acct{n % 500}.example"}) for n in range(contacts)]
                for start in range(0, contacts, 1000):
                    await contact_store.save_contacts(conn, people[start:start + 1000])
                    chunk = range(start, min(start + 1000, contacts))
                    await contact_store.add_memberships(conn, [(f"u{n}", f"acct{n % 500}", now)
                                                               for n in chunk])
                await contact_store.save_accounts(conn, {f"acct{a}": {"plan": "pro"} for a in range(500)})
                await campaign_store.create_definition(conn, "sv_bench", DefinitionIn.model_validate({
                    "name": "Bench NPS", "survey_type": "nps", "question": "How likely...?",
                    "audience": {"plans": ["pro"], "roles": ["admin"]}, "cadence_days": 90}), now)

            def clock() -> datetime:
                return now
            scheduler = Scheduler(settings, engine, clock, parse_arr_tiers(settings.survey_arr_tiers))
            started = time.perf_counter()
            report = await scheduler.run_once()
            schedule_seconds = time.perf_counter() - started
            sender = InvitationSender(settings, engine, clock, LinkSigner("bench-secret"), batch_size=50,
                                      lease=timedelta(minutes=20))
            started = time.perf_counter()
            while await sender.run_once():
                pass
            send_seconds = time.perf_counter() - started
        finally:
            await engine.dispose()
        assert len(report.created) == contacts, report
        assert len(smtp.received) == contacts, len(smtp.received)
    return {
        "benchmark": "survey_invitations",
        "command": f".venv/bin/python -m bench.survey_invitations --contacts {contacts}",
        "date": datetime.now(UTC).date().isoformat(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "contacts": contacts,
        "scheduler_pass_seconds": round(schedule_seconds, 2),
        "invitations_queued_per_second": round(contacts / schedule_seconds, 1),
        "emails_sent": contacts,
        "send_seconds": round(send_seconds, 2),
        "emails_per_second": round(contacts / send_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=2000)
    args = parser.parse_args()
    with running_infra() as infra:  # outside the event loop: it runs its own checks
        result = asyncio.run(run(infra, args.contacts))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "survey_invitations.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
