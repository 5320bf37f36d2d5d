"""``make local``: the local stack in the foreground on http://127.0.0.1:$REFUNDFLOW_PORT (default 3000)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

from local.stack import (
    SOURCE_ROLES,
    SOURCE_SIGNING_SECRETS,
    STRIPE_WEBHOOK_SECRET,
    DevStack,
    LocalSettings,
)


def main() -> int:
    stack = DevStack(LocalSettings.from_environment()).start()
    sources = "\n".join(
        f"    {name:<15} {secrets[0]}   (may assert: {', '.join(SOURCE_ROLES.get(name, [])) or 'nothing'})"
        for name, secrets in SOURCE_SIGNING_SECRETS.items()
    )
    print(
        f"""refundflow local stack
  API             {stack.api_url}   (POST /refund-requests, POST /webhooks/stripe, GET /refunds/{{refund_id}},
                                     POST /refunds/{{refund_id}}/approval)
  Stripe sandbox  {stack.api_url}/_sandbox/stripe/v1/...
  Xero sandbox    {stack.api_url}/_sandbox/xero/api.xro/2.0/...
  Approver tokens POST {stack.api_url}/_local/issuer/token {{"sub": "lee", "role": "team_lead"}}
  AWS (moto)      {stack.aws_endpoint}   (aws --endpoint-url {stack.aws_endpoint} ...)
  Signing secrets of the source systems (Standard Webhooks, POST /refund-requests; source.system must match):
{sources}
  Stripe webhooks {STRIPE_WEBHOOK_SECRET}
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
