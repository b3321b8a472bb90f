"""A container's start: verify the baked-in bundle, then become the server.

``python -m medops.serving.container BUNDLE KEY -- COMMAND...`` reads the bundle through the
registry's verifying reader, trusting only the public key file beside it, and replaces
itself with COMMAND only when every signature and checksum holds. A bundle altered in the
image (or on a mounted volume) therefore never serves; the refusal is one line on stderr
and exit code 3, which the orchestrator shows as a failed start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from medops.errors import ConfigError, MedopsError

USAGE = "usage: python -m medops.serving.container BUNDLE PUBLIC_KEY_FILE -- COMMAND..."


def verify(bundle: Path, key_file: Path) -> str:
    """The bundle's model and version once verified; raises MedopsError when it is not."""
    from medops.registry.predictor import load_bundle_file

    try:
        key = key_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the public key {key_file}: {exc.strerror}") from None
    predictor = load_bundle_file(bundle, key)
    manifest = predictor.bundle.manifest
    return f"{manifest.get('model')}:{manifest.get('version')}"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[2] != "--" or len(argv) < 4:
        print(USAGE, file=sys.stderr)
        return 2
    bundle, key_file, command = Path(argv[0]), Path(argv[1]), argv[3:]
    try:
        ref = verify(bundle, key_file)
    except MedopsError as exc:
        print(f"error: the bundle {bundle.name} is refused: {exc.message}", file=sys.stderr)
        return 3
    print(f"bundle {bundle.name} verified ({ref})", file=sys.stderr)
    sys.stderr.flush()
    os.execvp(command[0], command)  # the server takes this process's place (PID 1 in a container)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
