"""Survey tools' webhooks: `webhooks` (the routes), `signatures` (each vendor's HMAC), the vendor
translations `delighted` and `typeform` (pure), and `webhook_results` (what a delivery turns out to be).
"""
