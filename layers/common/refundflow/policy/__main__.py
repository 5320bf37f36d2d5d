"""Entry point of ``python -m refundflow.policy`` (run by developers and ``make policy-check``)."""

import sys

from refundflow.policy.cli import main

if __name__ == "__main__":
    sys.exit(main())
