"""Signed one-click unsubscribe tokens: the link itself proves who clicked, so no login is needed.

The token names the user and is signed with SECRET_KEY under its own salt (a token for anything else
does not validate here). It does not expire: an unsubscribe link in a months-old email must still work
(RFC 8058 asks for that), and all it can ever do is turn digests off.
"""

from __future__ import annotations

from django.core import signing

_SALT = "spendwatch.digests.unsubscribe.v1"


def unsubscribe_token(user_id: int) -> str:
    return signing.dumps({"u": user_id}, salt=_SALT, compress=False)


def user_id_from_token(token: str) -> int | None:
    """The user the token was made for, or None when it was not made by us (or was altered)."""
    try:
        payload = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        return None
    user_id = payload.get("u") if isinstance(payload, dict) else None
    return user_id if isinstance(user_id, int) else None
