"""A form-encoded PUT to the local storage is answered as S3 answers it, never left hanging.

`curl --data-binary @video.mp4 URL` sends `Content-Type: application/x-www-form-urlencoded`. S3
stores the bytes as they are, with that content type, unless the presigned URL signed another
content type: then it answers 403 SignatureDoesNotMatch. moto reads such a body as a form (it
looks for an `Action=` in it) and, when the bytes are not UTF-8, never hands them on: the request
hung until the client gave up. This middleware checks the presigned signature (SigV4, or the
legacy SigV2; with the local stack's secret), answers S3's errors, and otherwise lets moto store
the bytes under a neutral type, then gives the object the content type it was sent with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from moto.s3.models import s3_backends

from local.config import ACCOUNT_ID

FORM = "application/x-www-form-urlencoded"
LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY = "test", "test"  # what local/config.py hands the stack
StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _signing_key(date: str, region: str, service: str) -> bytes:
    key = f"AWS4{LOCAL_SECRET_KEY}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _header(environ: dict[str, Any], name: str) -> str:
    if name == "content-type":
        return str(environ.get("CONTENT_TYPE", ""))
    if name == "content-length":
        return str(environ.get("CONTENT_LENGTH", ""))
    return str(environ.get("HTTP_" + name.upper().replace("-", "_"), ""))


def expected_signature(environ: dict[str, Any], query: list[tuple[str, str]]) -> str:
    """The SigV4 query signature of this request as S3 computes it."""
    params = dict(query)
    signed = params["X-Amz-SignedHeaders"].split(";")
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(query)
        if k != "X-Amz-Signature"
    )
    headers = "".join(f"{name}:{' '.join(_header(environ, name).split())}\n" for name in signed)
    path = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
    request = "\n".join(
        ["PUT", path, canonical_query, headers, ";".join(signed), "UNSIGNED-PAYLOAD"]
    )
    _, date, region, service, _ = params["X-Amz-Credential"].split("/")
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            params["X-Amz-Date"],
            scope,
            hashlib.sha256(request.encode()).hexdigest(),
        ]
    )
    key = _signing_key(date, region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def expected_v2_signature(environ: dict[str, Any], params: dict[str, str]) -> str:
    """The legacy (SigV2) query signature: verb, Content-MD5, Content-Type, Expires, resource."""
    path = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
    parts = [
        "PUT",
        _header(environ, "content-md5"),
        _header(environ, "content-type"),
        params["Expires"],
        path,
    ]
    digest = hmac.new(LOCAL_SECRET_KEY.encode(), "\n".join(parts).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _checked(environ: dict[str, Any], query: list[tuple[str, str]]) -> tuple[datetime, bool] | None:
    """(expiry, signature matches) of a URL presigned with the local secret, else None."""
    params = dict(query)
    if params.get("X-Amz-Credential", "").startswith(f"{LOCAL_ACCESS_KEY}/"):
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expiry = signed_at + timedelta(seconds=int(params["X-Amz-Expires"]))
        wanted = expected_signature(environ, query)
        return expiry, hmac.compare_digest(wanted, params.get("X-Amz-Signature", ""))
    if params.get("AWSAccessKeyId") == LOCAL_ACCESS_KEY and "Signature" in params:
        expiry = datetime.fromtimestamp(int(params["Expires"]), UTC)
        wanted = expected_v2_signature(environ, params)
        return expiry, hmac.compare_digest(wanted, params["Signature"])
    return None  # not presigned (the SDKs sign headers; moto checks none), or another secret


def refusal(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """(status, S3 error code, message) when S3 would refuse this presigned PUT, else None."""
    query = parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    try:
        checked = _checked(environ, query)
    except (KeyError, ValueError):
        return ("400 Bad Request", "AuthorizationQueryParametersError", "malformed presigned URL")
    if checked is None:
        return None
    expires, matches = checked
    if datetime.now(UTC) > expires:
        return ("403 Forbidden", "AccessDenied", "Request has expired")
    if not matches:
        return (
            "403 Forbidden",
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method. (This PUT sent Content-Type: "
            f"{_header(environ, 'content-type')}; the URL signed another.)",
        )
    return None


def error(start_response: StartResponse, status: str, code: str, message: str) -> list[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error>"
    ).encode()
    start_response(
        status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]


def drain(environ: dict[str, Any]) -> None:
    """Reads the refused body, so that the client reads the answer rather than a reset."""
    left = int(environ.get("CONTENT_LENGTH") or 0)
    while left > 0 and (chunk := environ["wsgi.input"].read(min(left, 1 << 20))):
        left -= len(chunk)


class FormEncodedPut:
    """WSGI middleware: S3 object PUTs sent as `application/x-www-form-urlencoded`."""

    def __init__(self, app: App) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        content_type = str(environ.get("CONTENT_TYPE", ""))
        path = str(environ.get("PATH_INFO", "")).lstrip("/")
        if environ.get("REQUEST_METHOD") != "PUT" or not content_type.startswith(FORM):
            return self._app(environ, start_response)
        if "/" not in path:
            return self._app(environ, start_response)
        if refused := refusal(environ):
            drain(environ)
            return error(start_response, *refused)
        environ["CONTENT_TYPE"] = "application/octet-stream"  # moto then keeps the bytes as sent
        statuses: list[str] = []

        def remember(status: str, *args: Any) -> Any:
            statuses.append(status)
            return start_response(status, *args)

        answer = list(self._app(environ, remember))
        plain_put = "uploadId" not in str(environ.get("QUERY_STRING", ""))
        if plain_put and statuses and statuses[0].startswith("200"):
            bucket, key = path.split("/", 1)
            stored = s3_backends[ACCOUNT_ID]["aws"].get_object(bucket, key)
            if stored is not None:
                stored.set_metadata({"Content-Type": content_type})
        return answer
