"""The keyed audit chain's two designs, measured on the local stack: (a) a KMS HMAC key, one GenerateMac per
entry written and one VerifyMac per entry read; (b) an HMAC key in Secrets Manager read through the Powertools
cache (one GetSecretValue per container per SECRETS_CACHE_SECONDS), the MAC computed in the function. Prints JSON.

Usage: python -m benchmarks.audit_mac [--refunds N] [--repeats R]

Measured: entries per straight-through refund (the real workflow and handlers), audit-key secret reads while
those refunds ran, audit-writing Lambda invocations per refund (the reads if every invocation were a cold
container: the upper bound on AWS), and the latency per entry of each design against moto. Moto answers in
process over loopback: KMS on AWS adds a network round trip per entry (milliseconds), so (a)'s latency here is
a floor. Costs are us-east-1 list prices per request; the key's or secret's monthly fee is left out (it does not
grow with refunds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

from benchmarks.meters import Meter
from benchmarks.workflow import Bench
from local.stack import DevStack, LocalSettings
from refundflow import settings
from refundflow.adapters.audit_keys import audit_keys_from_secret
from refundflow.audit import entry_mac
from refundflow.ids import canonical_json
from refundflow.models import AuditEntry
from tests.support.iam import AUDIT_WRITERS

PRICES = {
    "kms_request": 0.03 / 10_000,  # aws.amazon.com/kms/pricing: GenerateMac and VerifyMac are requests
    "secrets_manager_call": 0.05 / 10_000,  # aws.amazon.com/secrets-manager/pricing: per 10,000 API calls
}


class SecretReads:
    """Counts the GetSecretValue calls Powertools makes for one secret (cache misses: its provider builds its own
    boto3 session, so the meters on the default session do not see them)."""

    def __init__(self, secret_name: str) -> None:
        self.secret_name = secret_name
        self.count = 0
        self._lock = threading.Lock()
        self._original = SecretsProvider._get

    def __enter__(self) -> SecretReads:
        original = self._original

        def counted(provider: SecretsProvider, name: str, **options: Any) -> str | bytes:
            if name == self.secret_name:
                with self._lock:
                    self.count += 1
            return original(provider, name, **options)

        SecretsProvider._get = counted  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        SecretsProvider._get = self._original  # type: ignore[method-assign]


def per_entry_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered) * 1000, 4),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 4),
    }


def kms_latency(stack: DevStack, messages: list[bytes], repeats: int) -> tuple[list[float], list[float]]:
    kms = stack.client("kms")
    key_id = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    generate: list[float] = []
    verify: list[float] = []
    for _ in range(repeats):
        for message in messages:
            started = time.perf_counter()
            mac = kms.generate_mac(KeyId=key_id, MacAlgorithm="HMAC_SHA_256", Message=message)["Mac"]
            generate.append(time.perf_counter() - started)
            started = time.perf_counter()
            kms.verify_mac(KeyId=key_id, MacAlgorithm="HMAC_SHA_256", Message=message, Mac=mac)
            verify.append(time.perf_counter() - started)
    return generate, verify


def cached_secret_latency(entries: list[AuditEntry], repeats: int) -> tuple[list[float], list[float]]:
    """Per entry: read the keys (from the cache after the first call) and seal, or check, the entry."""
    audit_keys_from_secret()  # the one call per container per TTL; not part of the per-entry cost
    seal: list[float] = []
    verify: list[float] = []
    for _ in range(repeats):
        for entry in entries:
            fields = entry.model_dump(mode="json", exclude={"hash", "scheme", "key_id"})
            started = time.perf_counter()
            sealed = audit_keys_from_secret().seal(fields)
            seal.append(time.perf_counter() - started)
            started = time.perf_counter()
            keys = audit_keys_from_secret()
            assert sealed.key_id is not None
            assert entry_mac(keys.keys[sealed.key_id], sealed.prev_hash, sealed.model_dump(mode="json")) == sealed.hash
            verify.append(time.perf_counter() - started)
    return seal, verify


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refunds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the measured entries per latency run")
    args = parser.parse_args(argv)

    meter = Meter().start()
    with DevStack(LocalSettings(api_port=0, aws_port=0)) as stack:
        bench = Bench(stack, meter)
        secret_name = settings.load(settings.AuditSettings).audit_key_secret_name
        bodies = [bench.prepare(index) for index in range(args.refunds)]
        invocations_before = Counter(stack.functions.invocations)
        with SecretReads(secret_name) as reads:
            refund_ids = [bench.run_one(body) for body in bodies]
        invoked = Counter(stack.functions.invocations) - invocations_before
        writer_invocations = sum(count for name, count in invoked.items() if name in AUDIT_WRITERS)
        secret_reads_local = reads.count

        timelines = [bench.client.refund(refund_id) for refund_id in refund_ids]
        if not all(view["audit"]["intact"] and view["audit"]["keyed"] for view in timelines):
            raise RuntimeError("a refund's audit chain did not verify as keyed")
        entries = [AuditEntry.model_validate(entry) for view in timelines for entry in view["timeline"]]
        per_refund_entries = len(entries) / len(refund_ids)
        messages = [
            f"{entry.prev_hash}\n{canonical_json(entry.model_dump(mode='json', exclude={'hash'}))}".encode()
            for entry in entries
        ]
        kms_generate, kms_verify = kms_latency(stack, messages, args.repeats)
        secret_seal, secret_verify = cached_secret_latency(entries, args.repeats)

    # One status read (GET /refunds/{id}) per refund verifies every entry once.
    kms_calls = per_refund_entries * 2
    secret_calls_upper = (writer_invocations / len(refund_ids)) + 1
    result = {
        "refunds": len(refund_ids),
        "entries_per_refund": per_refund_entries,
        "kms_hmac": {
            "generate_mac_ms_per_entry": per_entry_ms(kms_generate),
            "verify_mac_ms_per_entry": per_entry_ms(kms_verify),
            "calls_per_refund": kms_calls,
            "calls_per_refund_note": "GenerateMac per entry written + VerifyMac per entry on one status read",
            "usd_per_refund": round(kms_calls * PRICES["kms_request"], 8),
        },
        "secrets_manager_cached_key": {
            "seal_ms_per_entry": per_entry_ms(secret_seal),
            "verify_ms_per_entry": per_entry_ms(secret_verify),
            "secret_reads_measured_for_all_refunds": secret_reads_local,
            "audit_writer_invocations_per_refund": writer_invocations / len(refund_ids),
            "calls_per_refund_upper_bound": secret_calls_upper,
            "calls_per_refund_note": (
                "at most one GetSecretValue per invocation (every container cold) plus the status read; "
                "warm containers read once per SECRETS_CACHE_SECONDS for all refunds they serve"
            ),
            "usd_per_refund_upper_bound": round(secret_calls_upper * PRICES["secrets_manager_call"], 8),
        },
        "prices_usd": PRICES,
    }
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
