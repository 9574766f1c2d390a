"""The project's public contract on paper: the configuration reference and topics (compose:
tests/test_compose.py)."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings
from shared.topics import Topics

ROOT = Path(__file__).resolve().parents[1]


def test_the_configuration_reference_documents_every_setting_with_its_default() -> None:
    readme = (ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        variable = f"CHURNWATCH_{name.upper()}"
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{variable}`")), None)
        assert row is not None, f"{variable} is not in docs/configuration.md's table"
        default = field.default
        if default is not None and not hasattr(default, "get_secret_value"):
            assert f"`{default}`" in row, f"{variable}: docs/configuration.md lacks default {default!r}"


def test_readme_documents_every_topic() -> None:
    readme = (ROOT / "README.md").read_text()
    for topic in Topics.from_settings(Settings()).all():
        assert f"`{topic}`" in readme, topic


def test_public_ports_are_the_contract() -> None:
    defaults = Settings()
    assert (defaults.ingest_port, defaults.scoring_port, defaults.alerts_port,
            defaults.surveys_port) == (8081, 8082, 8083, 8084)
