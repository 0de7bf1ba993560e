"""The checks deploy/verify-image.sh runs once the images are built: the gateway's image alone, then the team stack
from deploy/compose/team/compose.yaml, all under podman with host networking on free loopback ports, against the
fake upstream (run from the same image). Prints each check; exits 1 if any failed.

Usage (verify-image.sh sets CONTAINERS_CONF and the image names): python -m deploy.verify WORKDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from deploy.verify.common import failures
from deploy.verify.image import image_checks
from deploy.verify.team import team_checks


def main() -> int:
    work = Path(sys.argv[1])
    print("verify-image: the image (podman, host network, loopback ports):", flush=True)
    image_checks(work)
    print("verify-image: the team stack (deploy/compose/team/compose.yaml under podman-compose):", flush=True)
    team_checks(work)
    print(f"verify-image: {len(failures)} check(s) failed" if failures else "verify-image: every check passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
