"""Churn risk learned from outcomes: features of a folded account, labels, fitting, backtests."""
