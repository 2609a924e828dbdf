"""The object store: a local folder (embedded) or S3 / an S3-compatible server (boto3)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from mm_pipelines.config import ConfigError

SNIFF_BYTES = 4096
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectDigest:
    """What an uploaded object really is: read back whole, never taken from the client."""

    size: int
    sha256: str
    head: bytes  # its first SNIFF_BYTES, for content sniffing
    version_id: str | None = None


def _digest(chunks, version_id: str | None = None) -> ObjectDigest:
    sha, size, head = hashlib.sha256(), 0, b""
    for chunk in chunks:
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
        sha.update(chunk)
        size += len(chunk)
    return ObjectDigest(size, sha.hexdigest(), head, version_id)


def sha256_base64(hex_digest: str) -> str:
    """S3's x-amz-checksum-sha256 form of a hex digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class ObjectStore(Protocol):
    url: str

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_bytes_locked(self, key: str, data: bytes, retain_until: datetime) -> None: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str = "") -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def presigned_url(self, key: str, expires_s: int = 3600, method: str = "get") -> str: ...

    def digest(self, key: str) -> ObjectDigest: ...


def open_object_store(url: str) -> ObjectStore:
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return LocalObjectStore(url)
    if scheme == "s3":
        return S3ObjectStore(url)
    raise ConfigError(f"MM_OBJECT_STORE={url!r}: use file:///path or s3://bucket[/prefix]")


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"Object key {key!r} must be a relative path without '..'")
    return key


class LocalObjectStore:
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.url = url
        self.root = Path(parts.netloc + parts.path)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see a half-written object

    def put_bytes_locked(self, key: str, data: bytes, retain_until: datetime) -> None:
        """A folder cannot refuse a delete: the object is written as put_bytes writes it (the embedded default)."""
        self.put_bytes(key, data)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"No object {key!r} in {self.url}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not k.rsplit("/", 1)[-1].startswith("."))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def presigned_url(self, key: str, expires_s: int = 3600, method: str = "get") -> str:
        return self._path(key).as_uri()

    def digest(self, key: str) -> ObjectDigest:
        path = self._path(key)
        if not path.is_file():
            raise KeyError(f"No object {key!r} in {self.url}")
        with path.open("rb") as f:
            return _digest(iter(lambda: f.read(CHUNK), b""))


class S3ObjectStore:
    """S3 through boto3; AWS_ENDPOINT_URL selects an S3-compatible server."""

    MULTIPART_THRESHOLD = 8 * 1024 * 1024

    def __init__(self, url: str):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(f"MM_OBJECT_STORE={url!r}: name a bucket, e.g. s3://mm-platform")
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            # A session of its own: boto3's default session resolves credentials once per process, so a store
            # opened later with other AWS_* settings would sign with the first store's keys.
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None,
                region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 5, "mode": "standard"},
                ),
            )
        return self._client

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_bytes_locked(self, key: str, data: bytes, retain_until: datetime) -> None:
        """Put a version under S3 Object Lock COMPLIANCE retention until `retain_until`: nobody, the root account
        included, can delete or overwrite that version before then (the bucket must have Object Lock enabled)."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                ChecksumSHA256=sha256_base64(hashlib.sha256(data).hexdigest()),
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain_until,
            )
        except ClientError as e:
            if e.response["Error"]["Code"] != "InvalidRequest":
                raise
            raise ConfigError(
                f"{self.url}: the server refused to put {key!r} under Object Lock "
                f"({e.response['Error'].get('Message')}): use a bucket created with Object Lock enabled"
            ) from None

    def put_file(self, key: str, path: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self.MULTIPART_THRESHOLD, multipart_chunksize=self.MULTIPART_THRESHOLD
        )
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=config)

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as e:
            if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise KeyError(f"No object {key!r} in {self.url}") from None
            raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

    def list_keys(self, prefix: str = "") -> list[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix) if prefix else self.prefix
        ):
            keys += [o["Key"][strip:] for o in page.get("Contents", [])]
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def presigned_url(self, key: str, expires_s: int = 3600, method: str = "get") -> str:
        operation = {"get": "get_object", "put": "put_object"}[method]
        return self.client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )

    def presigned_put(
        self, key: str, size: int, sha256_hex: str, content_type: str, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        """A PUT URL whose signature covers the declared length, type and SHA-256: the server refuses another file.
        Returns the URL and the headers the client must send with it."""
        checksum = sha256_base64(sha256_hex)
        url = self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ContentLength": size,
                "ContentType": content_type,
                "ChecksumSHA256": checksum,
            },
            ExpiresIn=expires_s,
        )
        headers = {"Content-Length": str(size), "Content-Type": content_type, "x-amz-checksum-sha256": checksum}
        return url, headers

    def set_legal_hold(self, key: str, version_id: str | None, on: bool) -> None:
        """S3 Object Lock legal hold on one version: while ON the server refuses to delete it (the bucket must have
        Object Lock enabled)."""
        params = {"Bucket": self.bucket, "Key": self._key(key), "LegalHold": {"Status": "ON" if on else "OFF"}}
        if version_id:
            params["VersionId"] = version_id
        self.client.put_object_legal_hold(**params)

    def digest(self, key: str) -> ObjectDigest:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise KeyError(f"No object {key!r} in {self.url}") from None
            raise
        version = response.get("VersionId")
        return _digest(response["Body"].iter_chunks(CHUNK), None if version in (None, "null") else version)
