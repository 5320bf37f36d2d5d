"""``make local``: the local stack in the foreground on http://127.0.0.1:$REFUNDFLOW_PORT (default 3000)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

from local.stack import SOURCE_ROLES, SOURCE_SIGNING_SECRETS, DevStack, LocalSettings
from refundflow import catalog


def main() -> int:
    stack = DevStack(LocalSettings.from_environment()).start()
    sources = "\n".join(
        f"    {name:<15} {secrets[0]}   (may assert: {', '.join(SOURCE_ROLES.get(name, [])) or 'nothing'})"
        for name, secrets in SOURCE_SIGNING_SECRETS.items()
    )
    sandboxes = "\n".join(
        f"    {entry.name:<15} {stack.api_url}/_sandbox/{entry.name}/"
        + (f"   (webhooks to {stack.api_url}/webhooks/{entry.name})" if entry.inbound else "")
        for entry in catalog.platforms()
        if entry.name in stack.simulators
    )
    print(
        f"""refundflow local stack
  API             {stack.api_url}   (POST /refund-requests, POST /webhooks/{{platform}}, GET /refunds/{{refund_id}},
                                     POST /refunds/{{refund_id}}/approval)
  Sandboxes (their credentials: the secrets under {stack.stack.parameters["SecretsPrefix"]} in moto)
{sandboxes}
  Approver tokens POST {stack.api_url}/_local/issuer/token {{"sub": "lee", "role": "team_lead"}}
  AWS (moto)      {stack.aws_endpoint}   (aws --endpoint-url {stack.aws_endpoint} ...)
  Signing secrets of the source systems (Standard Webhooks, POST /refund-requests; source.system must match):
{sources}
Ctrl-C stops it; all state is in memory.""",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
