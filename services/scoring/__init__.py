"""Scoring: live, explainable health scores per account on event time, and risk signals."""
