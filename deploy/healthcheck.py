"""`python -m deploy.healthcheck <service>`: exit 0 if the service in this container answers
/readyz with 200, 1 otherwise. The compose healthcheck (the slim image has no curl); it reads the
same CHURNWATCH_<SERVICE>_PORT the service listens on. Standard library only: it must stay cheap."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORTS = {"ingest": 8081, "scoring": 8082, "alerts": 8083, "surveys": 8084, "console": 8085}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.healthcheck",
                                     description="Exit 0 if the service answers GET /readyz with 200.")
    parser.add_argument("service", choices=sorted(DEFAULT_PORTS))
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    port = os.environ.get(f"CHURNWATCH_{args.service.upper()}_PORT", str(DEFAULT_PORTS[args.service]))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=args.timeout) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{args.service} not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
