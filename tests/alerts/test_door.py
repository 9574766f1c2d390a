"""An alert id no PostgreSQL bigint can hold is a 400 naming it, not a 500 (issue 17)."""

from __future__ import annotations

from shared.settings import Settings
from tests.alerts.support import API_TOKEN, AUTH
from tests.alerts.test_alerts_service import running_alerts
from tests.support.infra import Infra


async def test_alert_id_above_int64_is_a_400(infra: Infra) -> None:
    settings: Settings = infra.fresh_settings(alerts_api_token=API_TOKEN)
    async with running_alerts(settings) as client:
        too_big = await client.get(f"/v1/alerts/{2**63}", headers=AUTH)
        assert too_big.status_code == 400, too_big.text
        assert [e["field"] for e in too_big.json()["errors"]] == ["path.alert_id"]
        largest = await client.get(f"/v1/alerts/{2**63 - 1}", headers=AUTH)
        assert largest.status_code == 404, largest.text
        assert largest.json()["code"] == "alert_not_found"
