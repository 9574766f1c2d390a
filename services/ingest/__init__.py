"""Ingest: Segment-compatible tracking API and ticket events in, Kafka envelopes out."""
