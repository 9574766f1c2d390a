"""Real Kafka and PostgreSQL on this machine without Docker, for `make run` and the tests."""
