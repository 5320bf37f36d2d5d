"""The part every catalog-driven payment connector shares: its capabilities from the catalog, its currency profile,
and (for those without an SDK) the shared HTTP client built at first use."""

from __future__ import annotations

from typing import ClassVar

from refundflow.connectors.capabilities import payment_capabilities
from refundflow.connectors.http import HttpClient
from refundflow.currencies import CurrencyProfile
from refundflow.ports import PaymentCapabilities, RefundProvider


class CatalogRefundProvider(RefundProvider):
    """A RefundProvider whose capabilities are its catalog entry's, unless a test passes its own.

    A subclass sets ``name`` (the catalog key) and ``title`` (the platform as a person reads it in refusals), and may
    set ``_capabilities`` in its constructor.
    """

    title: ClassVar[str]
    _capabilities: PaymentCapabilities | None = None

    @property
    def capabilities(self) -> PaymentCapabilities:
        """The capabilities a test passed, else the catalog entry's (its currency profile naming ``title``)."""
        if self._capabilities is not None:
            return self._capabilities
        return payment_capabilities(self.name, self.title)

    @property
    def money(self) -> CurrencyProfile:
        """The platform's currency profile, naming it in refusals."""
        return self.capabilities.currencies.named(self.title)


class HttpRefundProvider(CatalogRefundProvider):
    """A CatalogRefundProvider that speaks HTTP through the shared client (``connectors.http``).

    Its constructor sets ``_http`` (a client a test injects, or None) and ``_http_base_url``; the client is built at
    first use, never at import.
    """

    _http: HttpClient | None = None
    _http_base_url: str = ""

    @property
    def http(self) -> HttpClient:
        """The shared HTTP client for ``_http_base_url``."""
        if self._http is None:
            self._http = HttpClient(platform=self.name, base_url=self._http_base_url)
        return self._http
