"""The `vigil` command (and `python -m vigil`).

A SIGTERM may come at any moment, start-up included (a service manager stopping the
daemon while it still imports): from the first line on it ends the process cleanly, with
SystemExit, until the daemon installs its own handler. Nothing is running yet then, and
an open store transaction rolls back.
"""

import signal
import sys


def _terminated(_signum: int, _frame: object) -> None:
    # The daemon stopping is its normal end (exit 0); any other command was cut short,
    # and says so as a shell would (128 + SIGTERM).
    raise SystemExit(0 if "watch" in sys.argv[1:] else 143)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    from vigil.cli import main as run

    run()


if __name__ == "__main__":
    main()
