"""Alerts' persistence, one module per aggregate; every table is in `tables.py`, on one `MetaData`.

`contacts` (the CSM and owner traits), `signal_ledger` (every risk signal heard), `alert_records`
(alerts, reasons, actions, the scheduler's due conditions), `deliveries` (the outbox the dispatcher
leases and claims), `slack_threads`, `pacing`, `digests`, `preferences`, `feedback`, `read_model`
(the API's history) and `link_secret`.
"""
