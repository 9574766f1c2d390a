"""What background work in every service runs on: the polling loop and the back-off between retries."""
