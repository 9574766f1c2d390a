"""The four Churnwatch services; each is deployable on its own (`python -m services.<name>`)."""
