"""Help-desk webhooks (Zendesk, Intercom, a generic signed format) turned into ticket events."""
