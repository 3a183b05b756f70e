"""Local stand-ins for the OIDC issuers the template's JWT authorizers trust.

A JWT authorizer in the template names an issuer URL and audiences. Locally nobody can sign as
GitHub or GitLab, so each trusted issuer gets a fresh RSA key whose public half forms the local JWKS;
the authorizer validates tokens against it with exactly the issuer and audiences the template names.
``kernel-access local --issuer NAME`` (and the tests) mint tokens with the private half.

PyJWT is a dev-extra dependency, imported here only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: Clock skew API Gateway tolerates on exp/nbf/iat.
LEEWAY_SECONDS: Final = 60


class TokenRejected(ValueError):
    """The token is not valid for this authorizer (API Gateway answers 401 Unauthorized)."""


@dataclass
class LocalIssuer:
    """One trusted issuer: its URL and audiences (from the template) and a local signing key."""

    name: str
    issuer: str
    audiences: tuple[str, ...]
    identity_source: str = "$request.header.Authorization"
    key_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    _private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), repr=False
    )

    def jwks(self) -> dict[str, Any]:
        """The public JWKS, as the issuer would publish it at its ``jwks_uri``."""
        import json

        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._private_key.public_key()))
        public.update({"kid": self.key_id, "use": "sig", "alg": "RS256"})
        return {"keys": [public]}

    def private_key_pem(self) -> str:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def mint(
        self,
        *,
        subject: str = "repo:example/partner-app:ref:refs/heads/main",
        audience: str | None = None,
        lifetime: int = 600,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed test token: ``iss``/``aud`` as the template expects, a fresh ``jti``."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or (self.audiences[0] if self.audiences else "sts.amazonaws.com"),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        payload.update(claims or {})
        return jwt.encode(payload, self._private_key, algorithm="RS256", headers={"kid": self.key_id})

    def validate(self, token: str) -> dict[str, Any]:
        """The token's claims if it is valid for this issuer and one of the audiences; else TokenRejected.

        What API Gateway's JWT authorizer checks: signature by a key of the issuer's JWKS (by ``kid``),
        ``iss`` equal to the configured issuer, ``aud`` (or ``client_id``) among the audiences, ``exp``
        in the future, ``nbf``/``iat`` not in the future.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenRejected("malformed token") from error
        if header.get("alg") != "RS256" or header.get("kid") != self.key_id:
            raise TokenRejected("token not signed by a key of the issuer's JWKS")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._private_key.public_key(),
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iss"]},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.PyJWTError as error:
            raise TokenRejected(str(error)) from error
        iat = claims.get("iat")
        if isinstance(iat, int | float) and iat > time.time() + LEEWAY_SECONDS:
            raise TokenRejected("token issued in the future")
        audiences = claims.get("aud", claims.get("client_id"))
        presented: Sequence[Any] = audiences if isinstance(audiences, list) else [audiences]
        if self.audiences and not any(a in self.audiences for a in presented):
            raise TokenRejected("audience not accepted")
        return claims


def claims_as_authorizer_context(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims the way HTTP API puts them in ``requestContext.authorizer.jwt.claims``: all strings.

    API Gateway stringifies every claim: numbers and booleans as text, arrays as ``[a b c]``.
    """
    out: dict[str, str] = {}
    for key, value in claims.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list):
            out[key] = "[" + " ".join(str(v) for v in value) + "]"
        elif isinstance(value, dict):
            import json

            out[key] = json.dumps(value, separators=(",", ":"))
        else:
            out[key] = str(value)
    return out


def find_issuer(issuers: Sequence[LocalIssuer], name: str) -> LocalIssuer:
    """The issuer known by ``name``: its authorizer name, its URL, or the issuer name of cdk.json.

    The TokenExchange construct names each authorizer ``oidc-<issuer>``; accepting the bare
    ``<issuer>`` lets ``--issuer github`` match what the user wrote in cdk.json.
    """
    for issuer in issuers:
        if name in (issuer.name, issuer.issuer, issuer.name.removeprefix("oidc-")):
            return issuer
    known = ", ".join(i.name for i in issuers) or "none"
    raise KeyError(f"no JWT issuer {name!r} in this template (have: {known})")
