"""Surveys: NPS/CSAT/CES responses in (amendable by response id), stored, published; NPS per account."""
