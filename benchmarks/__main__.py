"""``make benchmarks``: every benchmark, one JSON document on stdout."""

from __future__ import annotations

import json
import sys

from benchmarks import cold_imports, lambda_memory, webhook_receive, workflow


def main() -> int:
    results = {
        "cold_imports": cold_imports.main(["--runs", "5"]),
        "webhook_receive": webhook_receive.main(["--requests", "200"]),
        "workflow": workflow.main(["--refunds", "20", "--concurrency", "4"]),
        "lambda_memory": lambda_memory.main(["--refunds", "4"]),
    }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
