"""Deployment: local (no Docker) infrastructure launchers, compose files, configs."""
