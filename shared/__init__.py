"""Code that more than one Churnwatch service uses: settings, the event contract,
Kafka and database helpers, HTTP plumbing and metrics."""
