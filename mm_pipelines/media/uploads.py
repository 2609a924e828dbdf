"""Upload targets: an S3 presigned PUT whose signature covers the declared size, type and checksum, or, on the
embedded object store, a URL of the API itself carrying an HMAC-signed grant with the same declarations."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from mm_pipelines.errors import Forbidden, Invalid, TooLarge
from mm_pipelines.identity import signed
from mm_pipelines.stores.objects import ObjectStore, S3ObjectStore

UPLOAD_URL_TTL_S = 3600


@dataclass(frozen=True)
class UploadGrant:
    asset_id: str
    version: int
    object_key: str
    size: int
    sha256: str
    content_type: str
    expires_at: int


def sign_grant(secret: bytes, grant: UploadGrant) -> str:
    return signed.sign(secret, "upload", asdict(grant), grant.expires_at)


def verify_grant(secret: bytes, token: str, now: float | None = None) -> UploadGrant:
    payload = signed.unsign(secret, "upload", token, now)
    if payload is None:
        raise Forbidden("the upload URL is not valid or has expired: ask for a new one (POST …/upload-url)")
    payload.pop("exp")
    return UploadGrant(**payload)


def upload_target(objects: ObjectStore, api_url: str, secret: bytes, grant: UploadGrant) -> dict:
    """Where and how the client uploads the file: method, URL, the headers it must send, when the URL expires."""
    ttl = max(1, grant.expires_at - int(time.time()))
    if isinstance(objects, S3ObjectStore):
        url, headers = objects.presigned_put(grant.object_key, grant.size, grant.sha256, grant.content_type, ttl)
    else:
        url = f"{api_url.rstrip('/')}/uploads/{sign_grant(secret, grant)}"
        headers = {"Content-Type": grant.content_type}
    return {"method": "PUT", "url": url, "headers": headers, "expires_at": grant.expires_at}


def receive(objects: ObjectStore, grant: UploadGrant, chunks: Iterable[bytes], spool_dir: Path | None = None) -> None:
    """Store an upload made to the API's own upload URL, refusing it as S3 would refuse a PUT that breaks its
    signature: more bytes than declared, fewer, or other bytes."""
    sha, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=spool_dir, prefix="upload-") as spool:
        for chunk in chunks:
            size += len(chunk)
            if size > grant.size:
                raise TooLarge(f"the upload is larger than the {grant.size:,} bytes declared: upload the declared file")
            sha.update(chunk)
            spool.write(chunk)
        if size != grant.size:
            raise Invalid(f"the upload has {size:,} bytes, {grant.size:,} were declared: upload the whole file")
        if sha.hexdigest() != grant.sha256:
            raise Invalid("the upload's SHA-256 is not the one declared: upload the declared file")
        spool.flush()
        objects.put_file(grant.object_key, Path(spool.name))
