"""HmacTokenIssuer: signs the tokens the account endpoints hand out, as ``wirehub token`` does.

The gateway's own HMAC secret signs them (HS256), with ``auth.token_audience`` and
``auth.token_issuer`` as ``aud`` and ``iss`` when set, so the gateway's ``JwtVerifier`` and
every Centrifugo SDK accept them exactly like tokens from ``wirehub token``.
"""

from __future__ import annotations

from wirehub.auth.jwt import issue_subscription_token, issue_token
from wirehub.config import AuthSettings
from wirehub.types import JSON

__all__ = ["HmacTokenIssuer"]


class HmacTokenIssuer:
    """A ``TokenIssuer`` signing with ``auth.token_hmac_secret``."""

    def __init__(self, auth: AuthSettings) -> None:
        if not auth.token_hmac_secret:
            raise ValueError("issuing tokens needs auth.token_hmac_secret")
        self._secret = auth.token_hmac_secret
        self._extra: dict[str, JSON] = {}
        if auth.token_audience:
            self._extra["aud"] = auth.token_audience
        if auth.token_issuer:
            self._extra["iss"] = auth.token_issuer

    def connection_token(self, user: str, *, ttl_s: int, info: JSON = None) -> str:
        return issue_token(self._secret, user=user, ttl_s=ttl_s, info=info, extra=self._extra)

    def subscription_token(self, user: str, channel: str, *, ttl_s: int, data: JSON = None) -> str:
        return issue_subscription_token(
            self._secret, user=user, channel=channel, ttl_s=ttl_s, data=data, extra=self._extra
        )
