"""What every sandbox simulator shares: routing, fault injection, idempotency replay and outbound
webhooks. A simulator is a WSGI app mounted by the local stack under ``/_sandbox/<platform>``.

Control routes every simulator has (JSON in, JSON out), under its own mount point:
- ``POST /_control/faults``: add a fault rule (see :class:`FaultRule`)
- ``DELETE /_control/faults``: clear the fault rules
- ``POST /_control/reset``: forget every object, key, fault and delivery
- ``GET /_control/requests``: the requests received (method, path, headers, body), oldest first
- ``GET /_control/deliveries``: the webhooks sent back, with the answers they got
- ``POST /_control/webhook-endpoint``: ``{"url": ..., "secret": ...}`` where to send webhooks
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import queue
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import requests
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

Handler = Callable[..., Response]


def exact_json(value: Any) -> str:
    """JSON text where ``Decimal`` values are written as exact JSON numbers (the way Xero writes amounts).

    The simulators' own writer: they never import connector code, so a conversion bug in a connector is
    not mirrored by the simulator it is tested against.

    Raises:
        TypeError: a float or another type with no exact JSON form.
    """
    if value is None or isinstance(value, bool | str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} is not a JSON number")
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(key))}:{exact_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(exact_json(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} has no exact JSON form")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)


def public_fields(record: Mapping[str, Any], *, keep: Collection[str] = ()) -> dict[str, Any]:
    """A stored object as the platform's API shows it: a deep copy without the simulator's own ``_``-prefixed
    fields (except those in ``keep``, such as HAL's ``_links``)."""
    return {key: copy.deepcopy(value) for key, value in record.items() if not key.startswith("_") or key in keep}


def self_signed_pem(key: RSAPrivateKey, now: float, subject: x509.Name) -> str:
    """A self-signed SHA-256 certificate of ``key`` for ``subject``, valid from a day before ``now`` for 366 days
    (PEM): what a simulator serves at its certificate URL."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    start = datetime.fromtimestamp(now, UTC) - timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=366))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def control_outcome(
    request: Request,
    refund_id: str,
    settle: Callable[[str, bool], dict[str, Any]],
    *,
    respond: Callable[..., Response] = json_response,
    shown: Callable[[dict[str, Any]], Any] = lambda refund: refund,
) -> Response:
    """A simulator's ``_control`` route deciding a pending refund: ``{"succeeded": true|false}`` (400 otherwise)
    handed to ``settle`` (a PaymentSandbox's ``settle_refund``); 404 for an unknown refund, 409 for one that is not
    pending, else the refund as ``shown``."""
    payload = request.get_json(force=True, silent=True) or {}
    if not isinstance(payload.get("succeeded"), bool):
        return respond({"error": "succeeded must be true or false"}, 400)
    try:
        refund = settle(refund_id, payload["succeeded"])
    except KeyError:
        return respond({"error": f"no refund {refund_id}"}, 404)
    except ValueError as error:
        return respond({"error": str(error)}, 409)
    return respond(shown(refund))


def new_id(prefix: str, length: int = 24) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


class LostAnswer(Response):
    """The answer that never comes (a ``FaultRule`` with ``lose_answer``): the server closes the connection without
    a byte of answer, so the client sees what a read timeout or a dropped connection gives it (``requests``:
    ``ConnectionError``, "Remote end closed connection without response"), at once.

    Raises:
        ConnectionAbortedError: served without a socket to close (an in-process WSGI client): the caller gets no
            answer either.
    """

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        connection = environ.get("werkzeug.socket")
        if connection is None:
            raise ConnectionAbortedError("the simulator lost this answer on purpose (a fault)")
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        start_response("200 OK", [("Content-Length", "0")])
        return []


@dataclass
class FaultRule:
    """Make matching requests fail or stall.

    - ``method`` / ``path``: HTTP method (or ``*``) and a regex searched in the path below the mount.
    - ``status`` + ``body``: answer with this instead of the platform's answer.
    - ``when``: ``before`` answers without doing the work; ``after`` does the work, then answers
      with the fault (the client sees an error, but the effect happened: an unknown outcome).
    - ``lose_answer``: no answer at all: the connection is closed once the request is read (as when the
      client's read timeout fires, or the network drops the answer); with ``after`` the work is done first, so
      the client has no answer to a request that took effect. Deterministic: a sleep longer than the client's
      timeout would race the machine's load (and cost its length in every test).
    - ``times``: how many matching requests the rule applies to (``-1``: until cleared).
    """

    method: str = "*"
    path: str = ".*"
    status: int | None = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    when: str = "before"
    lose_answer: bool = False
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        return (self.method in {"*", method}) and re.search(self.path, path) is not None


@dataclass
class Delivery:
    url: str
    event_id: str
    event_type: str
    attempts: int = 0
    last_status: int | None = None
    delivered: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    # Whether a 2xx answer is the platform's expected acknowledgement (Salesforce Outbound Messages need the SOAP
    # Ack); None: any 2xx is.
    accept: Callable[[requests.Response], bool] | None = None


class WebhookSender:
    """Sends signed webhooks on a background thread, retrying failures a few times like a platform."""

    def __init__(self, sign: Callable[[bytes, str], dict[str, str]], retries: int = 3, backoff: float = 0.2) -> None:
        self._sign = sign
        self._retries = retries
        self._backoff = backoff
        self.url: str | None = None
        self.secret: str | None = None
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[Delivery, bytes, float]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def configure(self, url: str | None, secret: str | None) -> None:
        self.url, self.secret = url, secret

    def send(
        self,
        event_id: str,
        event_type: str,
        body: bytes,
        delay_seconds: float = 0.0,
        headers: Mapping[str, str] | None = None,
        accept: Callable[[requests.Response], bool] | None = None,
    ) -> None:
        """Queue a delivery. ``headers``: sent with every attempt besides the signature (a platform's delivery id
        that its retries keep, such as Zendesk's ``X-Zendesk-Webhook-Invocation-Id``). ``accept``: whether a 2xx
        answer is the platform's acknowledgement (else it is retried like a failure)."""
        if not self.url or not self.secret:
            return
        delivery = Delivery(
            url=self.url, event_id=event_id, event_type=event_type, headers=dict(headers or {}), accept=accept
        )
        with self._lock:
            self.deliveries.append(delivery)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
                self._thread.start()
        self._queue.put((delivery, body, time.monotonic() + delay_seconds))

    def _run(self) -> None:
        while True:
            delivery, body, not_before = self._queue.get()
            wait = not_before - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            for attempt in range(self._retries + 1):
                delivery.attempts = attempt + 1
                try:
                    assert self.secret is not None
                    headers = {"Content-Type": "application/json", **delivery.headers, **self._sign(body, self.secret)}
                    answer = requests.post(delivery.url, data=body, headers=headers, timeout=10)
                    delivery.last_status = answer.status_code
                    if 200 <= answer.status_code < 300 and (delivery.accept is None or delivery.accept(answer)):
                        delivery.delivered = True
                        break
                except requests.RequestException:
                    delivery.last_status = None
                if attempt < self._retries:  # a pause between attempts, none after the last
                    time.sleep(self._backoff * (2**attempt))
            self._queue.task_done()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def reset(self) -> None:
        with self._lock:
            self.deliveries.clear()


@dataclass
class StoredResponse:
    fingerprint: str
    status: int
    body: Any
    headers: dict[str, str]
    created_at: float


class IdempotencyStore:
    """Saved first responses per key, with in-flight detection, for platforms that replay them."""

    def __init__(self) -> None:
        self._responses: dict[tuple[str, str], StoredResponse] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def fingerprint(*parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def begin(self, scope: str, key: str) -> StoredResponse | bool | None:
        """The saved response, None to go ahead, or False if the same key is being processed."""
        with self._lock:
            stored = self._responses.get((scope, key))
            if stored is not None:
                return stored
            if (scope, key) in self._in_flight:
                return False
            self._in_flight.add((scope, key))
            return None

    def finish(self, scope: str, key: str, stored: StoredResponse | None) -> None:
        with self._lock:
            self._in_flight.discard((scope, key))
            if stored is not None:
                self._responses[(scope, key)] = stored

    def expire_older_than(self, seconds: float) -> None:
        cutoff = time.time() - seconds
        with self._lock:
            for key in [key for key, value in self._responses.items() if value.created_at < cutoff]:
                del self._responses[key]

    def reset(self) -> None:
        with self._lock:
            self._responses.clear()
            self._in_flight.clear()


# ---------------------------------------------------------------- the conformance suites' control of a sandbox

SANDBOX_FAULTS = ("transient", "server_error", "timeout_after_commit")
"""``transient``: a 429/503 answered before any work; ``server_error``: a 500 answered before any work (a platform
that cannot tell may still be read as an unknown outcome by its connector); ``timeout_after_commit``: the work is
done and its answer is lost (the connection closes without one: what a client's read timeout gives, at once)."""


@runtime_checkable
class PaymentSandbox(Protocol):
    """What a payment simulator offers the conformance suite (tests/conformance/payment_suite.py) and the local
    stack, beyond its platform's own API. Amounts are ISO 4217 minor units; the sandbox converts them to its
    platform's unit itself (never with connector code)."""

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """``{"api": <its function's API secret>, "verification": <intake's webhook verification secret>}``."""
        ...

    def seed_payment(self, amount_minor: int, currency: str, *, settled: bool = True) -> dict[str, Any]:
        """A captured payment (``settled`` false: not settled yet, where the platform distinguishes it).
        Returns ``{"provider": <name>, "payment_id": ..., "locator": {...}}``, a PaymentReference's fields."""
        ...

    def settle_refund(self, provider_refund_id: str, succeeded: bool) -> dict[str, Any]:
        """Decide a refund the platform holds open (sending its webhook where the platform sends one)."""
        ...

    def inject_fault(self, operation: str, fault: str) -> None:
        """Make the next ``operation`` (``create_refund``, ``get_refund``, ``get_payment``, ``find_refund``: those
        the platform has) fail with ``fault`` (one of ``SANDBOX_FAULTS``).

        Raises:
            ValueError: an operation the platform does not have, or an unknown fault.
        """
        ...

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund the platform holds, oldest first (the platform's own objects, copies)."""
        ...


@runtime_checkable
class OutsideRefunds(Protocol):
    """A payment sandbox that can make a refund the way a person does in the platform's dashboard (or another
    tool): none of refundflow's references on it, decided at once, its webhooks sent as the platform sends them.
    The payment conformance suite checks that what the platform then tells reaches refundflow's record of refunds
    made outside it (issue 12)."""

    def refund_outside(self, payment_id: str, amount_minor: int) -> str:
        """Refund ``amount_minor`` of the seeded payment ``payment_id`` as its dashboard would; returns the
        platform's id of the refund (the id its news and its API name it by)."""
        ...


@runtime_checkable
class BooksSandbox(Protocol):
    """What a books simulator offers the books conformance suite (tests/conformance/books_suite.py) and the
    local stack. Amounts are ISO 4217 minor units, converted by the sandbox itself."""

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """``{"api": <its function's API secret>, "verification": {...}}``."""
        ...

    def seed_invoice(self, amount_minor: int, currency: str, *, paid: bool = False) -> str:
        """A sales invoice of one line for a customer, optionally paid in full; returns its id."""
        ...

    def documents(self) -> list[dict[str, Any]]:
        """Every credit document the books hold (the platform's own objects, copies)."""
        ...

    def inject_fault(self, operation: str, fault: str) -> None:
        """Make the next ``operation`` (``record_credit``: the document's create) fail with ``fault``.

        Raises:
            ValueError: an unknown operation or fault.
        """
        ...


ApproverRole = Literal["team_lead", "agent"]
TicketIntent = Literal["approve", "request", "withdraw"]
TICKET_INTENTS: tuple[TicketIntent, ...] = ("approve", "request", "withdraw")


@runtime_checkable
class TicketSandbox(Protocol):
    """What a help-desk simulator offers the ticket conformance suite (tests/conformance/ticket_suite.py), the
    demo scenarios (local/scenarios.py ``ticket_scenarios``) and the e2e tests, beyond its platform's own API
    (/work/notes/s6/TICKET_SANDBOX.md is the contract every help desk's simulator follows). ``requests_seen``:
    every API request received (each help desk's simulator is a :class:`Simulator`)."""

    requests_seen: list[dict[str, Any]]

    def local_secrets(self) -> dict[str, dict[str, Any]]:
        """``{"api": <its function's API secret>, "verification": <intake's webhook verification secret>}``."""
        ...

    def seed_ticket(self, request: Mapping[str, Any]) -> str:
        """A ticket (with its requester, assignee and group) carrying a refund request the way the platform
        package's DEFAULT mapping.yaml reads it. ``request`` keys, all optional except payment_provider and
        payment_id: payment_provider, payment_id, reason, order_id, invoice_system, invoice_id, amount ("49.90",
        major units; omitted: full refund), currency ("EUR"), customer_email, customer_name, approver_role
        ("team_lead" | "agent" | None: the group/team/owner the ticket is assigned to, which the default
        mapping's roles map to that refundflow role), subject, description (free text). Platform-specific keys
        may be accepted in addition. Nothing is sent. Returns the ticket's id as the platform's API writes it."""
        ...

    def agent_action(self, ticket_id: str, intent: TicketIntent) -> None:
        """Do in the ticket what a support agent does for ``intent`` and what the desk's trigger (automation,
        workflow) reacts to, then send the delivery that trigger sends to the configured webhook endpoint,
        signed (or authenticated) exactly as the platform does.

        Raises:
            KeyError: an unknown ticket.
        """
        ...

    def ticket_view(self, ticket_id: str) -> dict[str, Any]:
        """What a person sees on the ticket: ``{"notes": [internal note texts, oldest first], "public": [public
        replies sent to the customer, oldest first], "labels": [the refund state labels refundflow set (tags,
        status, custom field or property values, as the platform stores them)], "ticket": <the platform's own
        ticket object, a copy>}``.

        Raises:
            KeyError: an unknown ticket.
        """
        ...

    def inject_fault(self, operation: str, fault: str) -> None:
        """Make the next ``operation`` fail: ``read_ticket``, ``write_back`` (the first write call of a
        write-back), ``has_update`` (the read that looks for a marker), ``public_reply`` (the customer's message,
        only where the desk's catalog entry lists ``public_reply``); faults: ``SANDBOX_FAULTS`` (``transient``
        is the platform's 429 WITH its Retry-After header).

        Raises:
            ValueError: an unknown operation or fault.
        """
        ...


class Simulator:
    """Base class: subclasses register routes with :meth:`route` in ``__init__``."""

    name = "simulator"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._rules: list[Rule] = []
        self._handlers: dict[str, Handler] = {}
        self.faults: list[FaultRule] = []
        self.requests_seen: list[dict[str, Any]] = []
        self.idempotency = IdempotencyStore()
        self.webhooks = WebhookSender(self.sign_webhook)
        self._map: Map | None = None
        self.route("/_control/faults", self._add_fault, methods=["POST"])
        self.route("/_control/faults", self._clear_faults, methods=["DELETE"])
        self.route("/_control/reset", self._reset, methods=["POST"])
        self.route("/_control/requests", self._list_requests, methods=["GET"])
        self.route("/_control/deliveries", self._list_deliveries, methods=["GET"])
        self.route("/_control/webhook-endpoint", self._set_webhook_endpoint, methods=["POST"])

    # ---------------------------------------------------------------- to override

    def sign_webhook(self, body: bytes, secret: str) -> dict[str, str]:
        """The platform's signature headers for an outbound webhook."""
        return {}

    def reset_state(self) -> None:
        """Forget every platform object (called by ``/_control/reset``)."""

    # ---------------------------------------------------------------- routing

    def route(self, path: str, handler: Handler, methods: list[str]) -> None:
        endpoint = f"{handler.__name__}:{','.join(methods)}:{path}"
        self._rules.append(Rule(path, endpoint=endpoint, methods=methods))
        self._handlers[endpoint] = handler
        self._map = None

    @property
    def url_map(self) -> Map:
        # Built once under the lock: two first requests at once would both bind the same Rule objects.
        with self.lock:
            if self._map is None:
                self._map = Map(self._rules, strict_slashes=False)
            return self._map

    def add_fault(self, rule: FaultRule) -> None:
        with self.lock:
            self.faults.append(rule)

    # The operations the conformance suites may fault, as the platform's (method, path pattern); a simulator
    # declares its own, and ``inject_fault`` turns one of ``SANDBOX_FAULTS`` into a fault rule on it.
    FAULT_OPERATIONS: ClassVar[Mapping[str, tuple[str, str]]] = {}
    TRANSIENT_STATUS: ClassVar[int] = 429

    def inject_fault(self, operation: str, fault: str) -> None:
        """Make the next ``operation`` (a key of ``FAULT_OPERATIONS``) fail with ``fault``: ``transient``
        (``TRANSIENT_STATUS``, refused before any work), ``server_error`` (500, nothing done, but a client cannot
        tell), ``timeout_after_commit`` (the work is done, its answer is lost: :class:`LostAnswer`).

        Raises:
            ValueError: an operation the platform does not have, or an unknown fault.
        """
        if operation not in self.FAULT_OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        method, path = self.FAULT_OPERATIONS[operation]
        if fault == "transient":
            rule = FaultRule(method=method, path=path, status=self.TRANSIENT_STATUS)
        elif fault == "server_error":
            rule = FaultRule(method=method, path=path, status=500)
        elif fault == "timeout_after_commit":
            rule = FaultRule(method=method, path=path, status=None, when="after", lose_answer=True)
        else:
            raise ValueError(f"unknown fault {fault!r}")
        self.add_fault(rule)

    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        if path.startswith("/_control"):
            return None
        with self.lock:
            for rule in self.faults:
                if rule.matches(method, path) and rule.times != 0:
                    if rule.times > 0:
                        rule.times -= 1
                    return rule
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        body = request.get_data()
        if not path.startswith("/_control"):
            with self.lock:
                self.requests_seen.append(
                    {
                        "method": request.method,
                        "path": path,
                        "query": request.query_string.decode(),
                        "headers": dict(request.headers),
                        "body": body.decode("utf-8", "replace"),
                    }
                )
        fault = self._take_fault(request.method, path)
        if fault is not None and fault.when == "before" and fault.lose_answer:
            return LostAnswer()
        if fault is not None and fault.when == "before" and fault.status is not None:
            return self.fault_response(fault)
        try:
            adapter = self.url_map.bind_to_environ(request.environ)
            endpoint, arguments = adapter.match(path, method=request.method)
            response = self._handlers[endpoint](request, **arguments)
        except MethodNotAllowed:
            response = self.not_found(request)
        except NotFound:
            response = self.not_found(request)
        except HTTPException as error:
            response = json_response({"error": error.description}, error.code or 500)
        if fault is not None and fault.when == "after" and fault.lose_answer:
            return LostAnswer()
        if fault is not None and fault.when == "after" and fault.status is not None:
            return self.fault_response(fault)
        return response

    def not_found(self, request: Request) -> Response:
        return json_response({"error": f"no route {request.method} {request.path}"}, 404)

    def fault_response(self, fault: FaultRule) -> Response:
        """The answer to a faulted request; platforms override it to answer in their error shape."""
        body = fault.body if fault.body is not None else {"error": "simulated fault"}
        return json_response(body, fault.status or 500, headers=fault.headers)

    # ---------------------------------------------------------------- control routes

    def _add_fault(self, request: Request) -> Response:
        payload = request.get_json(force=True) or {}
        allowed = set(FaultRule.__dataclass_fields__)
        unknown = set(payload) - allowed
        if unknown:
            return json_response({"error": f"unknown fault fields {sorted(unknown)}"}, 400)
        self.add_fault(FaultRule(**payload))
        return json_response({"faults": len(self.faults)}, 201)

    def _clear_faults(self, request: Request) -> Response:
        with self.lock:
            self.faults.clear()
        return json_response({"faults": 0})

    def _reset(self, request: Request) -> Response:
        with self.lock:
            self.faults.clear()
            self.requests_seen.clear()
            self.idempotency.reset()
            self.webhooks.reset()
            self.reset_state()
        return json_response({"reset": True})

    def _list_requests(self, request: Request) -> Response:
        with self.lock:
            return json_response({"requests": list(self.requests_seen)})

    def _list_deliveries(self, request: Request) -> Response:
        return json_response({"deliveries": [vars(delivery) for delivery in self.webhooks.deliveries]})

    def _set_webhook_endpoint(self, request: Request) -> Response:
        payload = request.get_json(force=True) or {}
        self.webhooks.configure(payload.get("url"), payload.get("secret"))
        return json_response({"url": self.webhooks.url})

    # ---------------------------------------------------------------- a help desk's control routes

    # What an unknown ticket is called in a help desk's control answers ("no case 500...").
    TICKET_NOUN: ClassVar[str] = "ticket"

    def route_ticket_controls(self) -> None:
        """A TicketSandbox's operations over HTTP (``POST /_control/tickets`` seeds one, ``POST
        /_control/tickets/<id>/agent-action`` ``{"intent"}`` acts on it, ``GET /_control/tickets/<id>/view`` shows
        it): for a help desk simulator that implements ``seed_ticket``, ``agent_action`` and ``ticket_view``."""
        self.route("/_control/tickets", self._control_seed_ticket, methods=["POST"])
        self.route("/_control/tickets/<ticket_id>/agent-action", self._control_agent_action, methods=["POST"])
        self.route("/_control/tickets/<ticket_id>/view", self._control_ticket_view, methods=["GET"])

    def _control_seed_ticket(self, request: Request) -> Response:
        sandbox: Any = self
        payload = request.get_json(force=True, silent=True)
        if not isinstance(payload, dict):
            return json_response({"error": "a JSON object is required"}, 400)
        try:
            return json_response({"id": sandbox.seed_ticket(payload)}, 201)
        except ValueError as error:
            return json_response({"error": str(error)}, 400)

    def _control_agent_action(self, request: Request, ticket_id: str) -> Response:
        sandbox: Any = self
        payload = request.get_json(force=True, silent=True) or {}
        try:
            sandbox.agent_action(ticket_id, str(payload.get("intent")))
        except KeyError:
            return json_response({"error": f"no {self.TICKET_NOUN} {ticket_id}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response(sandbox.ticket_view(ticket_id))

    def _control_ticket_view(self, request: Request, ticket_id: str) -> Response:
        sandbox: Any = self
        try:
            return json_response(sandbox.ticket_view(ticket_id))
        except KeyError:
            return json_response({"error": f"no {self.TICKET_NOUN} {ticket_id}"}, 404)


class GraphQLSimulator(Simulator):
    """A platform whose API is one GraphQL endpoint (Braintree, Shopify): every operation is a POST to the same path,
    so a fault rule names the operation's root field after the path (``<path>#refundTransaction``) to fault one
    mutation without faulting every query."""

    def __init__(self) -> None:
        self._operation = threading.local()
        super().__init__()

    def is_graphql(self, request: Request) -> bool:
        """Whether ``request`` goes to the GraphQL endpoint (the platform says where it is)."""
        raise NotImplementedError

    def dispatch(self, request: Request) -> Response:
        self._operation.field = graphql_root_field(request.get_data()) if self.is_graphql(request) else None
        return super().dispatch(request)

    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        field = getattr(self._operation, "field", None)
        return super()._take_fault(method, f"{path}#{field}" if field else path)


def graphql_root_field(body: bytes) -> str | None:
    """The first root field of the operation in a GraphQL request body (``{"query": ...}``), or None."""
    from graphql import parse
    from graphql.error import GraphQLSyntaxError
    from graphql.language import FieldNode, OperationDefinitionNode

    try:
        document = parse(str(json.loads(body or b"{}").get("query") or ""))
    except (ValueError, AttributeError, GraphQLSyntaxError):
        return None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for node in definition.selection_set.selections:
                if isinstance(node, FieldNode):
                    return node.name.value
    return None


class EntraSimulator(Simulator):
    """A Microsoft platform behind Entra ID (Business Central, Dynamics 365 Finance, Dataverse): the
    client-credentials grant for one app in one tenant at ``POST /login/{tenant}/oauth2/v2.0/token``
    (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow: form body, ``scope`` the resource's
    ``/.default``; refusals ``{"error", "error_description": "AADSTS...", "error_codes"}``), and the bearer tokens it
    issued, each valid ``ACCESS_TOKEN_SECONDS``.

    A subclass sets ``tenant_id``, ``client_id``, ``client_secret`` and ``clock`` and says which scope its resource
    takes (``entra_scope``); it checks a request's token with ``bearer_valid``.
    """

    ACCESS_TOKEN_SECONDS: ClassVar[int] = 3599
    tenant_id: str
    client_id: str
    client_secret: str
    clock: Callable[[], float]

    def __init__(self) -> None:
        self.tokens: dict[str, float] = {}
        self.token_grants = 0
        super().__init__()
        self.route("/login/<tenant>/oauth2/v2.0/token", self._entra_token, methods=["POST"])

    def entra_scope(self, request: Request) -> str:
        """The one scope the token endpoint grants (``<resource>/.default``)."""
        raise NotImplementedError

    def bearer_valid(self, request: Request) -> bool:
        """Whether the request carries a token this endpoint issued that has not expired or been revoked."""
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        with self.lock:
            expires = self.tokens.get(token)
        return expires is not None and expires > self.clock()

    def revoke_tokens(self) -> None:
        """Every access token stops working (as after a secret rotation or a token's expiry)."""
        with self.lock:
            self.tokens.clear()

    def _entra_token(self, request: Request, tenant: str) -> Response:
        form = request.form
        if tenant != self.tenant_id:
            return _entra_error(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _entra_error(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant.")
        if form.get("client_id") != self.client_id:
            return _entra_error(
                400, "unauthorized_client", f"AADSTS700016: Application '{form.get('client_id')}' not found."
            )
        if not secrets.compare_digest(str(form.get("client_secret", "")), self.client_secret):
            return _entra_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("scope") != self.entra_scope(request):
            return _entra_error(
                400, "invalid_scope", f"AADSTS1002012: The provided value for scope {form.get('scope')} is not valid."
            )
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = self.clock() + self.ACCESS_TOKEN_SECONDS
            self.token_grants += 1
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.ACCESS_TOKEN_SECONDS,
                "ext_expires_in": self.ACCESS_TOKEN_SECONDS,
                "access_token": token,
            }
        )


def _entra_error(status: int, error: str, description: str) -> Response:
    code = int(description[len("AADSTS") :].split(":")[0])
    return json_response({"error": error, "error_description": description, "error_codes": [code]}, status)
