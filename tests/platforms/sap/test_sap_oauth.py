"""SAP sign-in by OAuth 2.0 client credentials (``SAP_AUTH=oauth2_client_credentials``) against the simulator's token
endpoint: bearer tokens instead of the communication user's password, cached, replaced before and after they expire,
a refused client in words that say what to check, and the books conformance suite under this sign-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.simulators.sap import SapSimulator
from refundflow import settings
from refundflow.errors import ConfigurationError, RejectedError
from refundflow.money import Money
from refundflow.platforms.sap import connector as sap
from refundflow.platforms.sap.connector import SapBooks, default_token_url
from tests.conformance.books_suite import BooksHarness, BooksSuite
from tests.platforms.sap.conftest import SecretStore, make_books
from tests.platforms.sap.test_sap_books import booking


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def api_authorizations(sandbox: SapSimulator) -> list[str]:
    """The Authorization header of every OData call (the token endpoint's own excluded)."""
    return [
        seen["headers"].get("Authorization", "")
        for seen in sandbox.requests_seen
        if seen["path"].startswith("/sap/opu/odata/sap/")
    ]


@pytest.fixture
def oauth_books(served: tuple[SapSimulator, str], secret: SecretStore) -> SapBooks:
    return make_books(served[1], secret, auth="oauth2_client_credentials")


def test_every_call_carries_a_bearer_token_bought_once_with_the_client_credentials(
    oauth_books: SapBooks, sandbox: SapSimulator
) -> None:
    # GIVEN the OAuth 2.0 sign-in
    # WHEN two refunds are booked
    first = oauth_books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 1_000))
    second = oauth_books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 2_000))
    # THEN both are booked, with one token request and no password on any OData call
    assert (first.total, second.total) == (Money.of(1_000, "EUR"), Money.of(2_000, "EUR"))
    assert sandbox.token_requests == 1
    authorizations = api_authorizations(sandbox)
    assert authorizations
    assert all(value.startswith("Bearer ") for value in authorizations)
    # AND the token request itself authenticated the client with HTTP basic, form-encoded client credentials grant
    (token_call,) = [seen for seen in sandbox.requests_seen if seen["path"] == "/sap/bc/sec/oauth2/token"]
    assert token_call["headers"]["Authorization"].startswith("Basic ")
    assert token_call["body"] == "grant_type=client_credentials"


def test_a_token_near_its_expiry_is_replaced_before_it_is_used(
    served: tuple[SapSimulator, str], sandbox: SapSimulator, secret: SecretStore
) -> None:
    # GIVEN a booked refund under a token of an hour
    clock = Clock()
    books = make_books(served[1], secret, auth="oauth2_client_credentials", clock=clock)
    books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 1_000))
    # WHEN the next refund comes 59 minutes later, inside the expiry margin
    clock.now += 59 * 60
    books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 1_000))
    # THEN a second token was bought before the call, and SAP refused nothing (a 401 would re-read the secret)
    assert sandbox.token_requests == 2
    assert secret.fresh_reads == 0


def test_a_token_sap_no_longer_accepts_is_replaced_once_and_the_refund_booked_once(
    oauth_books: SapBooks, sandbox: SapSimulator, secret: SecretStore
) -> None:
    # GIVEN a cached token that SAP has ended (a restart of the system, a revoked client)
    oauth_books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 1_000))
    sandbox.expire_tokens()
    before = len(sandbox.documents())
    # WHEN the next refund is booked
    document = oauth_books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 2_500))
    # THEN SAP's 401 made the function read the secret again and buy a new token, and one document was made
    assert document.total == Money.of(2_500, "EUR")
    assert (sandbox.token_requests, secret.fresh_reads) == (2, 1)
    assert len(sandbox.documents()) == before + 1


def test_a_refused_client_is_refused_for_good_in_words_that_say_what_to_check(
    served: tuple[SapSimulator, str], sandbox: SapSimulator
) -> None:
    # GIVEN a client secret SAP does not accept
    wrong = SecretStore({"client_id": sandbox.username, "client_secret": "not-the-password"})
    books = make_books(served[1], wrong, auth="oauth2_client_credentials")
    invoice_id = sandbox.seed_invoice(10_000, "EUR")
    before = len(sandbox.documents())
    # WHEN a refund is booked / THEN it is refused, naming the OAuth details, and nothing reached the OData services
    with pytest.raises(RejectedError) as caught:
        books.record_credit(booking(invoice_id, 1_000))
    assert caught.value.code == "sap_unauthorized"
    assert "OAuth 2.0" in caught.value.message
    assert "Client authentication failed" in caught.value.message
    assert len(sandbox.documents()) == before
    assert api_authorizations(sandbox) == []


def test_a_secret_without_client_credentials_is_a_configuration_error(
    served: tuple[SapSimulator, str], sandbox: SapSimulator
) -> None:
    books = make_books(served[1], SecretStore({"username": "U", "password": "P"}), auth="oauth2_client_credentials")
    with pytest.raises(ConfigurationError, match="client_id and client_secret"):
        books.record_credit(booking(sandbox.seed_invoice(10_000, "EUR"), 1_000))


# ---------------------------------------------------------------- configuration


@pytest.fixture
def _fresh_factory() -> Iterator[None]:
    settings.load.cache_clear()
    sap.connector.cache_clear()
    yield
    sap.connector.cache_clear()
    settings.load.cache_clear()


def test_the_token_url_defaults_to_the_api_host_s_own_endpoint() -> None:
    assert (
        default_token_url("https://my000001-api.s4hana.cloud.sap/sap/opu/odata/sap/")
        == "https://my000001-api.s4hana.cloud.sap/sap/bc/sec/oauth2/token"
    )
    with pytest.raises(ConfigurationError, match="SAP_TOKEN_URL"):
        default_token_url("https://gateway.example.com/odata")


@pytest.mark.usefixtures("_fresh_factory")
def test_the_factory_chooses_the_sign_in_by_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SAP_AUTH chosen, with a BTP token URL and a scope
    monkeypatch.setenv("SECRETS_PREFIX", "refundflow/")
    monkeypatch.setenv("SAP_API_BASE", "https://my000001-api.s4hana.cloud.sap/sap/opu/odata/sap")
    monkeypatch.setenv("SAP_AUTH", "oauth2_client_credentials")
    monkeypatch.setenv("SAP_TOKEN_URL", "https://acme.authentication.eu10.hana.ondemand.com/oauth/token")
    monkeypatch.setenv("SAP_OAUTH_SCOPE", "API_CREDIT_MEMO_REQUEST_SRV_0001")
    # WHEN the books are built / THEN they sign in with that token URL and scope
    session = sap.connector()._session
    assert session.auth == "oauth2_client_credentials"
    assert session._token_url == "https://acme.authentication.eu10.hana.ondemand.com/oauth/token"
    assert session._scope == "API_CREDIT_MEMO_REQUEST_SRV_0001"
    # AND without SAP_TOKEN_URL the API host's own endpoint is used; an unknown mode is refused
    monkeypatch.delenv("SAP_TOKEN_URL")
    sap.connector.cache_clear()
    settings.load.cache_clear()
    assert sap.connector()._session._token_url == "https://my000001-api.s4hana.cloud.sap/sap/bc/sec/oauth2/token"
    monkeypatch.setenv("SAP_AUTH", "saml")
    sap.connector.cache_clear()
    settings.load.cache_clear()
    with pytest.raises(ConfigurationError):
        sap.connector()


# ---------------------------------------------------------------- conformance under OAuth 2.0


@pytest.fixture
def oauth_harness(oauth_books: SapBooks, sandbox: SapSimulator) -> BooksHarness:
    return BooksHarness(name="sap", connector=oauth_books, sandbox=sandbox, pays_out_split_cash=False)


class TestSapOAuthBooksConformance(BooksSuite):
    @pytest.fixture
    def harness(self, oauth_harness: BooksHarness) -> BooksHarness:
        return oauth_harness
