"""A seeded model of a SaaS customer base, and senders that replay it through Churnwatch's public APIs.

`simulator.model` is pure: the same configuration and seed give the same event stream and
the same ground truth, byte for byte. `simulator.senders` delivers that stream to ingest and
surveys over HTTP; `simulator.cli` is `churnwatch simulate`; `simulator.demo` is `make demo`.
"""
