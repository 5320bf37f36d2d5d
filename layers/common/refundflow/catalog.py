"""The platform catalog (``refundflow/platforms/catalog.yaml``): which platforms this release carries, their
roles, capabilities, settings and secrets, and where their code lives (by convention, never by a list).

Light on purpose: intake and ValidateRefund load it on their cold start, so only pydantic and PyYAML are
imported here; a platform's own package (its SDK, its HTTP client) is imported by the helpers on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from refundflow.errors import ConfigurationError, InvalidRequest, UnsupportedProvider

if TYPE_CHECKING:
    from refundflow.money import Money

Role = Literal["payment", "books", "ticket", "trigger", "settlement"]
NAME_PATTERN = r"^[a-z][a-z0-9_]{1,20}$"
ROLE_FUNCTION_PREFIX: Mapping[str, str] = {"payment": "refund", "books": "books", "ticket": "ticket"}
"""Deployed function names are ``<stack>-<prefix>-<name>``: one invoke policy per role on the prefix."""
WEBHOOKS_SECRET_FOLDER = "webhooks/"


class CatalogModel(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class IdempotencySupport(CatalogModel):
    carrier: Literal["header", "body", "query", "none"] = Field(
        description="Where the key travels: a request header, a body field or a query parameter (QuickBooks' "
        "requestid); none when the platform takes no key."
    )
    name: str | None = Field(
        default=None, description="Header, field or query parameter name; None when carrier is none."
    )
    key_lifetime_hours: float | None = Field(
        default=None, gt=0, description="How long the platform remembers a key (None: not documented / forever)."
    )

    @model_validator(mode="after")
    def _named(self) -> IdempotencySupport:
        if (self.carrier == "none") != (self.name is None):
            raise ValueError("idempotency: a header, body or query carrier needs a name, carrier none has none")
        return self


class CurrencyRules(CatalogModel):
    amount_format: Literal["minor_units", "decimal_string"] = "minor_units"
    exponents: dict[str, int] = Field(default_factory=dict, description="The platform's exponent where not ISO's.")
    accepted: list[str] | None = Field(
        default=None, min_length=1, description="The only currencies the platform takes (omitted: every ISO one)."
    )
    refused: dict[str, str] = Field(default_factory=dict, description="Currency -> why the platform cannot carry it.")
    multiple_of: dict[str, int] = Field(default_factory=dict, description="Currency -> step in the platform's unit.")
    max_minor_units: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _iso(self) -> CurrencyRules:
        from refundflow.money import CURRENCY_EXPONENTS

        unknown = sorted(set(self.accepted or ()) - set(CURRENCY_EXPONENTS))
        if unknown:
            raise ValueError(f"currencies.accepted: not ISO 4217 currencies: {unknown}")
        return self


class ArrivalWindow(CatalogModel):
    """How long the platform documents a refund takes to reach the customer, for one kind of payment method: a
    range quoted as "usually", never a date the platform promised (no platform returns one on the refund)."""

    method: Literal["card", "bank", "wallet", "pay_later", "any"]
    from_days: int = Field(ge=0, le=90, description="0: the platform says only 'up to' to_days.")
    to_days: int = Field(ge=1, le=90)
    day_kind: Literal["business", "calendar"] = "business"
    source: str = Field(min_length=1, description="Where the platform says so (URL).")

    @model_validator(mode="after")
    def _ordered(self) -> ArrivalWindow:
        if self.from_days > self.to_days:
            raise ValueError(f"arrival window {self.from_days}-{self.to_days}: from_days is after to_days")
        return self


class PaymentEntry(CatalogModel):
    idempotency: IdempotencySupport
    find_by_reference: bool
    outcome: Literal["pollable", "webhook_only"]
    void_before_settlement: bool = False
    partial_refunds: bool = True
    payment_lookup: bool = Field(default=True, description="get_payment can read the payment's amounts.")
    currencies: CurrencyRules = Field(default_factory=CurrencyRules)
    locator: dict[str, list[str]] = Field(
        default_factory=dict, description="Provider-owned locator keys and their allowed values (empty: any)."
    )
    settlement_news: bool = Field(
        default=False,
        description="Its webhooks announce payouts: its function reads the payout's settlement records and puts "
        "them in the settlement drop (settlement/<name>/payouts/), where reconciliation picks them up.",
    )
    acquirer_reference: Literal["read", "webhook", "none"] = Field(
        default="none",
        description="Where a refund's acquirer reference number (ARN) comes from: read, get_refund reads it once "
        "the network assigned it (re-read on a schedule until then); webhook, only the refund's webhook carries it; "
        "none, the platform exposes none.",
    )
    arrival: list[ArrivalWindow] = Field(
        default_factory=list,
        description="The platform's documented refund arrival windows, per method; the first is quoted when the "
        "refund's method is unknown. Empty: the platform documents none (the merchant's default range is quoted).",
    )


class BooksEntry(CatalogModel):
    document_kinds: list[Literal["credit_note", "credit_memo", "refund_receipt", "customer_refund"]] = Field(
        min_length=1
    )
    find_by_reference: bool
    idempotency: IdempotencySupport
    currencies: CurrencyRules = Field(default_factory=CurrencyRules)


# public_reply: the desk has a customer-visible reply (the customer's one message about a refund from its ticket goes
# there, not by e-mail); optional, so a desk without one simply does not list it.
TicketWrite = Literal["internal_note", "tags", "status", "custom_field", "properties", "attributes", "public_reply"]


class TicketEntry(CatalogModel):
    """A help desk or CRM: it triggers refunds from tickets (its webhook, verified by intake, news to its own
    function, which reads the ticket and applies the merchant's mapping) and is told every refund event (a FIFO
    queue fed by the bus, consumed by its own function). The default mapping is its package's ``mapping.yaml``."""

    writes: list[TicketWrite] = Field(min_length=1, description="How it shows a refund event on the ticket.")
    rate_limit: str = Field(min_length=1, description="Its API's rate limit and how it says so (README table).")
    trigger: str = Field(min_length=1, description="What the support admin sets up to call us (README table).")


# The platforms whose verifier reads XML with its own hardened parser (Salesforce Outbound Messages: no DOCTYPE,
# bounded): text/xml is refused for any other, so no platform's body reaches a parser not written for it.
XML_PLATFORMS = frozenset({"salesforce"})
MediaType = Literal["application/json", "application/x-www-form-urlencoded", "text/plain", "text/xml"]


class InboundEntry(CatalogModel):
    verification: str = Field(min_length=1, description="The platform's scheme, in words (README table).")
    requirements: list[str] = Field(
        default_factory=list, description="pip requirements intake needs to verify (pinned in constraints.txt)."
    )
    content_types: list[MediaType] = Field(
        default_factory=lambda: list[MediaType](["application/json"]),
        min_length=1,
        description="The media types the platform posts (intake answers 415 to others). A JSON or text/plain body "
        "(Amazon Pay's SNS messages) is also held to intake's JSON rules after verification; a form body is read by "
        "the platform's verifier only, and so is an XML body (text/xml: Salesforce Outbound Messages only).",
    )


class SettingEntry(CatalogModel):
    env: str = Field(pattern=r"^[A-Z][A-Z0-9_]{2,63}$")
    parameter: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{2,63}$")
    default: str
    local: str | None = Field(
        default=None, description="The local stack's value: {sandbox} is its simulators' base, {api} its API."
    )
    https: bool = Field(default=False, description="An https:// URL (the template refuses anything else).")
    description: str = ""

    @model_validator(mode="after")
    def _https_default(self) -> SettingEntry:
        if self.https and not self.default.startswith("https://"):
            raise ValueError(f"{self.env}: an https setting needs an https:// default")
        return self


class SecretsEntry(CatalogModel):
    api: list[str] = Field(default_factory=list, description="Keys of <SecretsPrefix><name> (its function only).")
    verification: list[str] = Field(
        default_factory=list, description="Keys of <SecretsPrefix>webhooks/<name> (intake only)."
    )
    rotated_in_place: bool = Field(default=False, description="Its function writes its API secret back (OAuth2).")


class Platform(CatalogModel):
    name: str = Field(pattern=NAME_PATTERN)
    title: str = Field(min_length=1)
    roles: list[Role] = Field(min_length=1)
    client: str = Field(min_length=1, description="SDK or shared HTTP client, and why (README table).")
    docs: str = Field(pattern=r"^https://")
    requirements: list[str] = Field(default_factory=list, description="Its own function's pip requirements.")
    payment: PaymentEntry | None = None
    books: BooksEntry | None = None
    ticket: TicketEntry | None = None
    inbound: InboundEntry | None = None
    settings: list[SettingEntry] = Field(default_factory=list)
    secrets: SecretsEntry = Field(default_factory=SecretsEntry)
    simulator: str | None = Field(default=None, pattern=r"^local\.simulators\.[a-z0-9_]+:[A-Za-z][A-Za-z0-9_]*$")
    timeout_seconds: int = Field(default=60, ge=3, le=900, description="Its function's Lambda timeout.")

    @model_validator(mode="after")
    def _consistent(self) -> Platform:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"{self.name}: a role is listed twice")
        for role in ("payment", "books", "ticket"):
            if (role in self.roles) != (getattr(self, role) is not None):
                raise ValueError(f"{self.name}: the {role} record is required with the {role} role, and only then")
        if self.ticket is not None and self.inbound is None:
            raise ValueError(f"{self.name}: a ticket platform calls us: it needs an inbound section")
        if self.secrets.verification and self.inbound is None:
            raise ValueError(f"{self.name}: verification secrets without an inbound section")
        if self.inbound is not None and not self.secrets.verification:
            raise ValueError(f"{self.name}: an inbound section needs its verification secret keys")
        if self.inbound is not None and "text/xml" in self.inbound.content_types and self.name not in XML_PLATFORMS:
            raise ValueError(f"{self.name}: text/xml is for {', '.join(sorted(XML_PLATFORMS))} only (its own parser)")
        return self

    # ------------------------------------------------------------------ conventions

    @property
    def camel(self) -> str:
        """``amazon_pay`` -> ``AmazonPay`` (logical ids in the template)."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    def function_name(self, role: str, stack: str) -> str:
        """The deployed function of ``role`` (``<stack>-refund-stripe``, ``<stack>-books-xero``,
        ``<stack>-ticket-zendesk``)."""
        return f"{stack}-{ROLE_FUNCTION_PREFIX[role]}-{self.name}"

    def logical_id(self, role: str) -> str:
        """``RefundStripeFunction``, ``BooksXeroFunction``, ``TicketZendeskFunction``."""
        return f"{ROLE_FUNCTION_PREFIX[role].capitalize()}{self.camel}Function"

    @property
    def function_roles(self) -> list[str]:
        """The roles this platform has a function for (payment, books, ticket)."""
        return [role for role in self.roles if role in ROLE_FUNCTION_PREFIX]

    def api_secret_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}"

    def verification_secret_name(self, prefix: str) -> str:
        return f"{prefix}{WEBHOOKS_SECRET_FOLDER}{self.name}"


class Catalog(CatalogModel):
    platforms: list[Platform] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        for what, values in (
            ("name", [entry.name for entry in self.platforms]),
            ("camel-cased name", [entry.camel for entry in self.platforms]),
            ("setting env", [setting.env for entry in self.platforms for setting in entry.settings]),
            ("setting parameter", [setting.parameter for entry in self.platforms for setting in entry.settings]),
        ):
            duplicates = sorted({value for value in values if values.count(value) > 1})
            if duplicates:
                raise ValueError(f"catalog: duplicate {what} {duplicates}")
        return self

    def by_name(self) -> dict[str, Platform]:
        return {entry.name: entry for entry in self.platforms}


# ---------------------------------------------------------------------- loading


def parse(text: str, *, source: str = "catalog.yaml") -> Catalog:
    """A catalog from YAML text (tests and tools load their own).

    Raises:
        ConfigurationError: not valid YAML, or an entry breaks the schema (the message names it).
    """
    import yaml  # at the first load only: no function needs the YAML parser at import

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader
        return Catalog.model_validate(document)
    except (yaml.YAMLError, ValueError) as error:
        raise ConfigurationError(f"{source}: {error}") from error


def load_path(path: Path) -> Catalog:
    return parse(path.read_text(encoding="utf-8"), source=str(path))


@cache
def catalog() -> Catalog:
    """The packaged catalog, parsed once per process."""
    text = resources.files("refundflow.platforms").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse(text)


def platforms() -> list[Platform]:
    return list(catalog().platforms)


def names(role: Role | None = None) -> list[str]:
    return [entry.name for entry in catalog().platforms if role is None or role in entry.roles]


def platform(name: str) -> Platform:
    """The entry for ``name``.

    Raises:
        InvalidRequest: ``platform_not_supported``, no such platform in this release.
    """
    found = catalog().by_name().get(name)
    if found is None:
        raise InvalidRequest(f"no platform {name!r} is deployed", code="platform_not_supported")
    return found


def payment_platforms() -> list[Platform]:
    return [entry for entry in catalog().platforms if "payment" in entry.roles]


def books_platforms() -> list[Platform]:
    return [entry for entry in catalog().platforms if "books" in entry.roles]


def payment_platform(name: str) -> Platform:
    """Raises:
    UnsupportedProvider: ``provider_not_supported``, no payment connector for ``name`` is deployed."""
    found = catalog().by_name().get(name)
    if found is None or found.payment is None:
        raise UnsupportedProvider(
            f"no connector for payment provider {name} is deployed", code="provider_not_supported"
        )
    return found


def books_platform(name: str) -> Platform:
    """Raises:
    InvalidRequest: ``books_not_supported``, no books connector for ``name`` is deployed."""
    found = catalog().by_name().get(name)
    if found is None or found.books is None:
        raise InvalidRequest(f"no connector for books system {name} is deployed", code="books_not_supported")
    return found


def ticket_platforms() -> list[Platform]:
    return [entry for entry in catalog().platforms if "ticket" in entry.roles]


def public_reply_desks() -> frozenset[str]:
    """The help desks that tell the customer about a refund from their ticket in a public reply (``ticket.writes``
    lists ``public_reply``): notify sends those refunds no e-mail."""
    return frozenset(
        entry.name for entry in ticket_platforms() if entry.ticket and "public_reply" in entry.ticket.writes
    )


def ticket_platform(name: str) -> Platform:
    """Raises:
    InvalidRequest: ``ticket_platform_not_supported``, no help desk ``name`` is deployed."""
    found = catalog().by_name().get(name)
    if found is None or found.ticket is None:
        raise InvalidRequest(f"no help desk {name} is deployed", code="ticket_platform_not_supported")
    return found


def inbound_platform(name: str) -> Platform:
    """Raises:
    InvalidRequest: ``platform_not_supported``, ``name`` sends us no webhooks in this release."""
    found = catalog().by_name().get(name)
    if found is None or found.inbound is None:
        raise InvalidRequest(f"no webhook endpoint for {name!r}", code="platform_not_supported")
    return found


# ---------------------------------------------------------------------- capabilities (the ports' models)


def payment_capabilities(name: str) -> Any:
    """``refundflow.ports.PaymentCapabilities`` built from the entry's payment record.

    Raises:
        UnsupportedProvider: not a payment platform of this release.
    """
    from refundflow import ports

    record = payment_platform(name).payment
    assert record is not None
    models: Any = ports
    return models.PaymentCapabilities.model_validate(record.model_dump(exclude={"arrival"}))


def books_capabilities(name: str) -> Any:
    """``refundflow.ports.BooksCapabilities`` built from the entry's books record.

    Raises:
        InvalidRequest: ``books_not_supported``.
    """
    from refundflow import ports

    record = books_platform(name).books
    assert record is not None
    models: Any = ports
    return models.BooksCapabilities.model_validate(record.model_dump())


# ---------------------------------------------------------------------- code by convention


def _module(name: str, part: str) -> Any:
    if not re.match(NAME_PATTERN, name):
        raise ConfigurationError(f"not a platform name: {name!r}")
    try:
        return importlib.import_module(f"refundflow.platforms.{name}.{part}")
    except ModuleNotFoundError as error:
        if error.name in {f"refundflow.platforms.{name}", f"refundflow.platforms.{name}.{part}"}:
            raise ConfigurationError(f"platform {name} has no {part} module") from error
        raise


def connector(name: str) -> Any:
    """The platform's connector (``refundflow.platforms.<name>.connector:connector()``, cached by it):
    a RefundProvider, a BooksConnector or a TicketPlatform."""
    platform(name)
    return _module(name, "connector").connector()


def inbound(name: str) -> Any:
    """The platform's InboundPlatform (``refundflow.platforms.<name>.inbound:inbound()``)."""
    inbound_platform(name)
    return _module(name, "inbound").inbound()


def representable(name: str) -> Callable[[Money], str | None] | None:
    """The platform's own exactness rule (``refundflow.platforms.<name>.amounts:representable``), or None when
    it has none (the currency profile's rule applies: its exponents, accepted and refused currencies, steps)."""
    platform(name)
    if importlib.util.find_spec(f"refundflow.platforms.{name}") is None:
        return None
    if importlib.util.find_spec(f"refundflow.platforms.{name}.amounts") is None:
        return None
    rule: Callable[[Money], str | None] | None = getattr(_module(name, "amounts"), "representable", None)
    return rule
