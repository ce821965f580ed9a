"""G4 SAML and G5 OIDC against IdPs made in the test: a SAML response signed with a throwaway key, and a fake
OIDC provider on 127.0.0.1 issuing tokens signed with a test key. Nothing leaves the machine."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from allauth.socialaccount.models import SocialAccount, SocialApp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from apps.accounts.models import Role
from tests.accounts.conftest import add_totp, make_member

SUBJECT_ID = "urn:oasis:names:tc:SAML:attribute:subject-id"
MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
IDP_ENTITY = "https://idp.acme.example/saml"
SP_HOST = "spendwatch.acme.example"


def _key_and_cert() -> tuple[rsa.RSAPrivateKey, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test idp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key, key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def idp_keys():
    return _key_and_cert()


def _logged_in_user_id(client) -> str | None:
    return client.session.get("_auth_user_id")


# --- G4 SAML ----------------------------------------------------------------------------------------


@pytest.fixture
def saml_app(acme, idp_keys):
    _, _, cert_pem = idp_keys
    return SocialApp.objects.create(
        provider="saml",
        provider_id="acme-saml",
        name="Acme SAML",
        client_id="acme",
        settings={
            "organisation": "acme",
            "email_authoritative": True,
            "idp": {"entity_id": IDP_ENTITY, "sso_url": "https://idp.acme.example/sso", "x509cert": cert_pem},
            "attribute_mapping": {"uid": SUBJECT_ID, "email": MAIL},
            "advanced": {"want_assertion_signed": True, "reject_idp_initiated_sso": True},
        },
    )


@pytest.fixture
def saml_client(client, settings):
    # python3-saml reads the Host header (browsers always send one) and wants a dotted domain.
    settings.ALLOWED_HOSTS = [SP_HOST]
    client.defaults["HTTP_HOST"] = SP_HOST
    return client


def _saml_request_id(client) -> str:
    response = client.post("/accounts/saml/acme/login/")
    assert response.status_code == 302 and response["Location"].startswith("https://idp.acme.example/sso?")
    request_xml = zlib.decompress(
        base64.b64decode(parse_qs(urlparse(response["Location"]).query)["SAMLRequest"][0]), -15
    )
    return request_xml.split(b' ID="', 1)[1].split(b'"', 1)[0].decode()


def _saml_response(*, in_response_to: str | None, subject_id: str, email: str, sign_with=None) -> str:
    now = dt.datetime.now(dt.UTC)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    acs = f"http://{SP_HOST}/accounts/saml/acme/acs/"
    audience = f"http://{SP_HOST}/accounts/saml/acme/metadata/"
    irt = f' InResponseTo="{in_response_to}"' if in_response_to else ""
    assertion_id = f"_a{uuid.uuid4().hex}"
    assertion = f"""<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{assertion_id}" Version="2.0" IssueInstant="{now:{fmt}}">
<saml:Issuer>{IDP_ENTITY}</saml:Issuer>
<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">{subject_id}</saml:NameID>
<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{now + dt.timedelta(minutes=5):{fmt}}" Recipient="{acs}"{irt}/></saml:SubjectConfirmation></saml:Subject>
<saml:Conditions NotBefore="{now - dt.timedelta(minutes=1):{fmt}}" NotOnOrAfter="{now + dt.timedelta(minutes=5):{fmt}}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>
<saml:AuthnStatement AuthnInstant="{now:{fmt}}" SessionIndex="_s1"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>
<saml:AttributeStatement>
<saml:Attribute Name="{SUBJECT_ID}"><saml:AttributeValue>{subject_id}</saml:AttributeValue></saml:Attribute>
<saml:Attribute Name="{MAIL}"><saml:AttributeValue>{email}</saml:AttributeValue></saml:Attribute>
</saml:AttributeStatement></saml:Assertion>"""
    if sign_with:
        key_pem, cert_pem = sign_with
        assertion = OneLogin_Saml2_Utils.add_sign(assertion, key_pem, cert_pem).decode()
        assertion = assertion.removeprefix('<?xml version="1.0"?>').strip()
    response = f"""<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r{uuid.uuid4().hex}" Version="2.0" IssueInstant="{now:{fmt}}" Destination="{acs}"{irt}>
<saml:Issuer>{IDP_ENTITY}</saml:Issuer>
<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
{assertion}</samlp:Response>"""
    return base64.b64encode(response.encode()).decode()


def _post_to_acs(client, saml_response: str):
    response = client.post("/accounts/saml/acme/acs/", {"SAMLResponse": saml_response, "RelayState": ""})
    assert response.status_code == 302
    return client.get(response["Location"])


def test_saml_login_uses_the_stable_subject_id_not_the_email(saml_client, acme, saml_app, idp_keys):
    client = saml_client
    _, key_pem, cert_pem = idp_keys
    alice = make_member(acme, "alice@acme.example").user
    signed = (key_pem, cert_pem)
    response = _post_to_acs(
        client,
        _saml_response(
            in_response_to=_saml_request_id(client),
            subject_id="emp-0001",
            email="alice@acme.example",
            sign_with=signed,
        ),
    )
    assert response.status_code == 302 and _logged_in_user_id(client) == str(alice.pk)
    assert list(SocialAccount.objects.values_list("provider", "uid", "user_id")) == [
        ("acme-saml", "emp-0001", alice.pk)
    ]
    client.post("/accounts/logout/")

    # The IdP renames her address: she is still found by her subject id.
    _post_to_acs(
        client,
        _saml_response(
            in_response_to=_saml_request_id(client),
            subject_id="emp-0001",
            email="a.smith@acme.example",
            sign_with=signed,
        ),
    )
    assert _logged_in_user_id(client) == str(alice.pk)
    client.post("/accounts/logout/")

    # Someone else who was given her old address at the IdP does not become her.
    make_member(acme, "bob@acme.example")
    response = _post_to_acs(
        client,
        _saml_response(
            in_response_to=_saml_request_id(client),
            subject_id="emp-0002",
            email="bob@acme.example",
            sign_with=signed,
        ),
    )
    assert _logged_in_user_id(client) != str(alice.pk)


def test_saml_unsigned_assertion_is_rejected(saml_client, acme, saml_app, idp_keys, caplog):
    client = saml_client
    make_member(acme, "alice@acme.example")
    response = _post_to_acs(
        client,
        _saml_response(
            in_response_to=_saml_request_id(client), subject_id="emp-0001", email="alice@acme.example"
        ),
    )
    assert response.status_code == 401 and _logged_in_user_id(client) is None
    assert "The Assertion of the Response is not signed and the SP require it" in caplog.text
    assert SocialAccount.objects.count() == 0


def test_saml_assertion_signed_by_another_key_is_rejected(saml_client, acme, saml_app):
    client = saml_client
    _, other_key, other_cert = _key_and_cert()
    make_member(acme, "alice@acme.example")
    _post_to_acs(
        client,
        _saml_response(
            in_response_to=_saml_request_id(client),
            subject_id="emp-0001",
            email="alice@acme.example",
            sign_with=(other_key, other_cert),
        ),
    )
    assert _logged_in_user_id(client) is None


def test_saml_idp_initiated_login_is_rejected(saml_client, acme, saml_app, idp_keys, caplog):
    client = saml_client
    _, key_pem, cert_pem = idp_keys
    make_member(acme, "alice@acme.example")
    response = _post_to_acs(
        client,
        _saml_response(
            in_response_to=None,
            subject_id="emp-0001",
            email="alice@acme.example",
            sign_with=(key_pem, cert_pem),
        ),
    )
    assert response.status_code == 401 and _logged_in_user_id(client) is None
    assert "IdP initiated SSO rejected" in caplog.text


def test_saml_cannot_log_in_a_member_of_another_organisation(saml_client, acme, saml_app, idp_keys):
    client = saml_client
    from apps.org.models import Organisation

    _, key_pem, cert_pem = idp_keys
    globex = Organisation.objects.create(name="Globex", slug="globex")
    make_member(globex, "cio@globex.example", Role.CIO)
    _post_to_acs(
        client,
        _saml_response(
            in_response_to=_saml_request_id(client),
            subject_id="emp-9",
            email="cio@globex.example",
            sign_with=(key_pem, cert_pem),
        ),
    )
    assert _logged_in_user_id(client) is None and SocialAccount.objects.count() == 0


# --- G5 OIDC ----------------------------------------------------------------------------------------


class FakeOIDCProvider:
    """An OpenID provider on 127.0.0.1: discovery, token (checks PKCE), userinfo, JWKS."""

    def __init__(self, signing_key: rsa.RSAPrivateKey) -> None:
        self.key = signing_key
        self.claims: dict = {}
        self.code_challenge: str | None = None
        self.nonce: str | None = None
        self.token_requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    return self._json(200, provider.discovery())
                if self.path == "/jwks":
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key()))
                    return self._json(200, {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})
                if self.path == "/userinfo":
                    return self._json(
                        200, {k: provider.claims[k] for k in ("sub", "email", "email_verified")}
                    )
                return self._json(404, {})

            def do_POST(self) -> None:
                body = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                form = {k: v[0] for k, v in body.items()}
                provider.token_requests.append(form)
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                )
                if form.get("code") != "the-code" or challenge != provider.code_challenge:
                    return self._json(400, {"error": "invalid_grant"})
                return self._json(
                    200, {"access_token": "at", "token_type": "Bearer", "id_token": provider.id_token()}
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def discovery(self) -> dict:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def id_token(self) -> str:
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {"iss": self.url, "aud": "spendwatch", "iat": now, "exp": now + 300, "nonce": self.nonce}
        return jwt.encode({**claims, **self.claims}, self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def oidc(idp_keys):
    provider = FakeOIDCProvider(idp_keys[0])
    provider.thread.start()
    yield provider
    provider.server.shutdown()
    provider.server.server_close()


@pytest.fixture
def oidc_app(acme, oidc):
    return SocialApp.objects.create(
        provider="openid_connect",
        provider_id="acme-oidc",
        name="Acme SSO",
        client_id="spendwatch",
        secret="client-secret",
        settings={
            "server_url": oidc.url,
            "organisation": "acme",
            "require_mfa": True,
            "accepted_acr": ["phr"],
        },
    )


def _oidc_login(client, oidc, **claims):
    response = client.post("/accounts/oidc/acme-oidc/login/")
    assert response.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlparse(response["Location"]).query).items()}
    assert response["Location"].startswith(f"{oidc.url}/authorize?")
    oidc.code_challenge, oidc.nonce = query.get("code_challenge"), query.get("nonce")
    oidc.claims = {"email_verified": True, **claims}
    return query, client.get(
        "/accounts/oidc/acme-oidc/login/callback/", {"code": "the-code", "state": query["state"]}
    )


def test_oidc_uses_pkce_and_sub_as_the_account_id(client, acme, oidc, oidc_app):
    alice = make_member(acme, "alice@acme.example").user
    query, response = _oidc_login(
        client, oidc, sub="00u-alice", email="alice@acme.example", amr=["pwd", "mfa"]
    )
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(oidc.token_requests[-1]["code_verifier"]) >= 43
    assert response.status_code == 302 and _logged_in_user_id(client) == str(alice.pk)
    assert list(SocialAccount.objects.values_list("provider", "uid")) == [("acme-oidc", "00u-alice")]
    client.post("/accounts/logout/")
    # The same sub with a changed address is still alice; the address alone logs nobody in.
    _oidc_login(client, oidc, sub="00u-alice", email="alice.renamed@acme.example", amr=["mfa"])
    assert _logged_in_user_id(client) == str(alice.pk)


def test_oidc_token_request_without_the_pkce_verifier_fails_at_the_idp(client, acme, oidc, oidc_app):
    make_member(acme, "alice@acme.example")
    response = client.post("/accounts/oidc/acme-oidc/login/")
    query = {k: v[0] for k, v in parse_qs(urlparse(response["Location"]).query).items()}
    oidc.code_challenge = "a-challenge-made-for-another-login"
    oidc.claims = {"sub": "00u-alice", "email": "alice@acme.example", "email_verified": True, "amr": ["mfa"]}
    client.get("/accounts/oidc/acme-oidc/login/callback/", {"code": "the-code", "state": query["state"]})
    assert _logged_in_user_id(client) is None


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"amr": ["pwd"]}, False),
        ({}, False),
        ({"acr": "urn:acme:loa:1"}, False),
        ({"amr": ["pwd", "otp"]}, True),
        ({"acr": "phr"}, True),
    ],
)
def test_oidc_login_without_mfa_at_the_idp_is_refused(client, acme, oidc, oidc_app, claims, accepted):
    alice = make_member(acme, "alice@acme.example").user
    _oidc_login(client, oidc, sub="00u-alice", email="alice@acme.example", **claims)
    assert _logged_in_user_id(client) == (str(alice.pk) if accepted else None)


def test_oidc_unverified_or_unknown_addresses_log_nobody_in(client, acme, oidc, oidc_app):
    make_member(acme, "alice@acme.example")
    _oidc_login(client, oidc, sub="00u-x", email="alice@acme.example", email_verified=False, amr=["mfa"])
    assert _logged_in_user_id(client) is None
    _oidc_login(client, oidc, sub="00u-y", email="stranger@acme.example", amr=["mfa"])  # no sign-up
    assert _logged_in_user_id(client) is None
    assert SocialAccount.objects.count() == 0


def test_sso_login_still_asks_for_the_local_second_factor(client, acme, oidc, oidc_app):
    add_totp(make_member(acme, "cio@acme.example", Role.CIO).user)
    _, response = _oidc_login(client, oidc, sub="00u-cio", email="cio@acme.example", amr=["mfa"])
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
    assert _logged_in_user_id(client) is None
