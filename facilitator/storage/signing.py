"""Expiring HMAC-signed URLs for stores the facilitator serves itself (local, memory).

A URL is ``<base_url><quoted key>?expires=<unix time>&signature=<hex>``; the signature is
HMAC-SHA256 over ``method``, ``expires`` and ``key`` with the store's secret, so a URL grants
one method on one key until one moment, and changing any of the three voids it. A PUT URL that
may replace an object carries ``&overwrite=1``, covered by the signature too: adding it to a
write-once URL voids that URL. The view in
:mod:`facilitator.storage.views` checks it with :meth:`UrlSigner.verify`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

from facilitator.storage.errors import URLSignatureError

__all__ = ["UrlSigner", "default_secret"]

DEFAULT_BASE_URL = "/objects/"


def default_secret() -> bytes:
    """A secret derived from Django's SECRET_KEY, so signed URLs survive restarts."""
    from django.conf import settings
    from django.utils.crypto import salted_hmac

    return salted_hmac("facilitator.storage.signed-url", "v1", secret=settings.SECRET_KEY, algorithm="sha256").digest()


class UrlSigner:
    """Signs and checks ``(method, key, expires)``.

    Args:
        secret: the HMAC key; bytes or text (default: derived from ``SECRET_KEY``).
        base_url: where :mod:`facilitator.storage.urls` is mounted, absolute
            (``https://facilitator.example/objects/``) or a path (``/objects/``).
    """

    def __init__(self, secret: str | bytes | None = None, base_url: str = DEFAULT_BASE_URL) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        self._secret = secret
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = default_secret()  # settings read on first use, not at import
        return self._secret

    def signature(self, method: str, key: str, expires: int, overwrite: bool = False) -> str:
        flags = "\noverwrite" if overwrite else ""  # keys hold no control characters: unambiguous
        message = f"{method.upper()}\n{expires}\n{key}{flags}".encode("utf-8", "surrogatepass")
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def url(self, method: str, key: str, expires: int, overwrite: bool = False) -> str:
        """The URL for ``method`` on ``key`` until the unix time ``expires``."""
        query = {"expires": expires, "signature": self.signature(method, key, expires, overwrite)}
        if overwrite:
            query["overwrite"] = 1
        return f"{self.base_url}{quote(key, safe='/')}?{urlencode(query)}"

    def url_for(self, method: str, key: str, expires_s: int, overwrite: bool = False) -> str:
        return self.url(method, key, int(time.time()) + expires_s, overwrite)

    def verify(
        self, method: str, key: str, expires: str | None, signature: str | None, overwrite: bool = False
    ) -> None:
        """Accept a request's ``expires`` and ``signature`` query values, or raise.

        Raises:
            URLSignatureError: ``bad_signature`` if missing or not ours, ``url_expired`` if
                valid but past its time. The signature is checked first, so the answer never
                tells a forger more than "no".
        """
        if not (expires and signature and expires.isascii() and expires.isdigit() and signature.isascii()):
            raise URLSignatureError("bad_signature", "this URL is not signed")
        expected = self.signature(method, key, int(expires), overwrite)
        if not hmac.compare_digest(expected, signature):
            raise URLSignatureError("bad_signature", "bad URL signature")
        if int(expires) < time.time():
            raise URLSignatureError("url_expired", "this URL has expired")
