"""battery-sim: placeholder replaced below."""


def main() -> int:  # pragma: no cover
    raise SystemExit("not yet implemented")
