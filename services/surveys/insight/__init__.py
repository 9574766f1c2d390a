"""Figures over score histograms: `arithmetic` (NPS, CSAT, CES) and `figures` (per group, periods,
trend). Pure.
"""
