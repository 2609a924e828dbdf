"""Personal data (a payee's legal name and bank details) kept outside the metadata DB, in a vault that versions it.

Postgres keeps only a pointer, `<path>#<version>`: a version is never rewritten, so a pointer names the same record
for good (what was approved is what is paid). Embedded default: LocalPiiVault, one AES-256-GCM file per version under
MM_HOME; production: HashiCorp Vault / OpenBao KV version 2 (VaultKvPiiVault). Errors never carry a record's
contents or the vault token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

NONCE_BYTES = 12
_VERSION = re.compile(r"[1-9][0-9]*")


class PiiError(ValueError):
    """A PII record that cannot be written or read now; the message says what is wrong and how to fix it."""


class PiiVault(Protocol):
    def put(self, path: str, record: dict[str, str]) -> str:
        """Store `record` as the next version at `path` (versions start at 1); its pointer `<path>#<version>`."""

    def get(self, ref: str) -> dict[str, str]:
        """The record a pointer names, exactly as it was put."""


def pointer(path: str, version: int) -> str:
    return f"{path}#{version}"


def segments(path: str) -> list[str]:
    """A vault path's parts: non-empty, never `.` or `..`, so no path can reach outside its vault."""
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") for p in parts):
        raise PiiError(f"{path!r} is not a PII vault path: write parts separated by /, none empty, . or ..")
    return parts


def parse_ref(ref: str) -> tuple[str, int]:
    """(path, version) of a pointer; a path may itself contain `#`, the version is what follows the last one."""
    path, _, version = str(ref).rpartition("#")
    if not path or not _VERSION.fullmatch(version):
        raise PiiError(f"{ref!r} is not a PII pointer: it must be <path>#<version>, e.g. payees/pe-1#1")
    segments(path)
    return path, int(version)


def check_record(record: dict[str, str]) -> dict[str, str]:
    if not isinstance(record, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in record.items()):
        raise PiiError("a PII record must map text to text (e.g. name, iban, bic)")
    return record


def digest(key: bytes, path: str, record: dict[str, str]) -> str:
    """HMAC-SHA256 of the record at its path (canonical JSON): equal exactly when nothing changed, so an unchanged
    reload writes no new version. Keyed, because an IBAN has too few unknown digits to survive a plain hash; bound to
    the path, so two payees sharing an account do not show it in Postgres."""
    canonical = json.dumps([path, check_record(record)], sort_keys=True, separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


class LocalPiiVault:
    """The embedded vault: `<root>/<path>/@<version>.enc`, each AES-256-GCM over the record's JSON with the pointer as
    associated data, so a file edited, swapped for another version or another path's, or read under another key
    fails to decrypt. Files are 0600 and appear whole (linked into place, never overwritten)."""

    def __init__(self, root: Path, key: bytes):
        if len(key) != 32:
            raise PiiError(f"the PII vault key must be 32 bytes (AES-256), not {len(key)}")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.root = Path(root)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"LocalPiiVault({self.root})"

    def _folder(self, path: str) -> Path:
        return self.root.joinpath(*(quote(p, safe="") for p in segments(path)))

    @staticmethod
    def _file(folder: Path, version: int) -> Path:
        """`@<version>.enc`: a quoted path part never has an @, so a version never meets a deeper path's folder."""
        return folder / f"@{version}.enc"

    def _new_folder(self, folder: Path) -> bool:
        """Make the path's folder (0700); True when it did not exist, so it holds no version yet."""
        try:
            os.mkdir(folder, 0o700)
            return True
        except FileExistsError:
            return False
        except FileNotFoundError:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            return self._new_folder(folder)

    def put(self, path: str, record: dict[str, str]) -> str:
        data = json.dumps(check_record(record)).encode()
        folder = self._folder(path)
        try:
            if self._new_folder(folder):
                version = 1
            else:
                taken = (f.stem.removeprefix("@") for f in folder.glob("@*.enc"))
                version = 1 + max((int(v) for v in taken if _VERSION.fullmatch(v)), default=0)
            while True:
                ref = pointer(path, version)
                nonce = os.urandom(NONCE_BYTES)
                tmp = folder / f"@{uuid.uuid4().hex}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(nonce + self._aead.encrypt(nonce, data, ref.encode()))
                try:
                    os.link(tmp, self._file(folder, version))  # atomic, never replaces: a concurrent put took it
                    return ref
                except FileExistsError:
                    version += 1
                finally:
                    tmp.unlink()
        except PermissionError:
            raise PiiError(f"permission denied writing under {folder}: run as the user that owns {self.root}") from None

    def get(self, ref: str) -> dict[str, str]:
        path, version = parse_ref(ref)
        file = self._file(self._folder(path), version)
        try:
            blob = file.read_bytes()
        except FileNotFoundError:
            raise PiiError(
                f"no PII record {ref!r} in {self.root}: it was never written there (is MM_HOME the one it was "
                "written under?); restore the folder from backup or load the record again"
            ) from None
        except PermissionError:
            raise PiiError(f"permission denied reading {file}: run as the user that owns {self.root}") from None
        from cryptography.exceptions import InvalidTag

        try:
            data = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], ref.encode())
        except (InvalidTag, ValueError):
            raise PiiError(
                f"PII record {ref!r} is unreadable: {file} was edited or swapped, or the vault key changed; "
                "restore the file (or the key under MM_HOME/identity) from backup"
            ) from None
        return check_record(json.loads(data))


class VaultKvPiiVault:
    """HashiCorp Vault / OpenBao, KV secrets engine version 2: each put is a new version of the secret at
    `<mount>/data/<path>`, read back by number. Connections are kept (a catalog load writes thousands)."""

    def __init__(self, url: str, token: str, mount: str = "secret", timeout_s: float = 5.0):
        self.url, self.mount, self.timeout_s = url.rstrip("/"), mount.strip("/"), timeout_s
        self._token = token
        self._client = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VaultKvPiiVault({self.url}, mount={self.mount!r})"

    def _http(self):
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(headers={"X-Vault-Token": self._token}, timeout=self.timeout_s)
            return self._client

    def _call(self, method: str, path: str, what: str, **kwargs) -> tuple[int, dict]:
        import httpx

        url = f"{self.url}/v1/{self.mount}/data/" + "/".join(quote(p, safe="") for p in segments(path))
        try:
            response = self._http().request(method, url, **kwargs)
        except httpx.HTTPError as e:
            raise PiiError(
                f"PII vault unreachable at {self.url} ({type(e).__name__}) while {what}: "
                "check MM_PII_VAULT_URL and that the vault is up and unsealed, then retry"
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise PiiError(
                f"PII vault unreachable at {self.url} (it answered {response.status_code}) while {what}: "
                "check that it is up and unsealed, then retry"
            )
        if response.status_code == 403:
            raise PiiError(
                f"the PII vault at {self.url} denied {what} (403 permission denied): check that MM_PII_VAULT_TOKEN "
                f"is valid and its policy allows create, update and read on {self.mount}/data/{path.split('/')[0]}/*"
            )
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    def put(self, path: str, record: dict[str, str]) -> str:
        what = f"writing {path}"
        status, body = self._call("POST", path, what, json={"data": check_record(record)})
        version = (body.get("data") or {}).get("version") if status == 200 else None
        if status == 404:
            raise PiiError(
                f"the PII vault at {self.url} has no KV version 2 mount {self.mount!r}: "
                "check MM_PII_VAULT_MOUNT (and that the mount is `kv` with version 2)"
            )
        if not isinstance(version, int) or version < 1:
            raise PiiError(
                f"the PII vault at {self.url} did not take {path} (HTTP {status}, no version in the answer): "
                f"check that {self.mount!r} is a KV version 2 mount (MM_PII_VAULT_MOUNT)"
            )
        return pointer(path, version)

    def get(self, ref: str) -> dict[str, str]:
        path, version = parse_ref(ref)
        status, body = self._call("GET", path, f"reading {ref}", params={"version": version})
        secret = body.get("data") or {}
        if status == 404 or (status == 200 and secret.get("data") is None):
            raise PiiError(
                f"no PII record {ref!r} in the PII vault at {self.url} (mount {self.mount}): that version was "
                "deleted, destroyed or never written (KV v2 keeps max_versions per path: raise it on the mount)"
            )
        if status != 200 or (secret.get("metadata") or {}).get("version", version) != version:
            raise PiiError(
                f"the PII vault at {self.url} answered {status} reading {ref!r} with no record: "
                f"check that {self.mount!r} is a KV version 2 mount (MM_PII_VAULT_MOUNT)"
            )
        try:
            return check_record(secret["data"])
        except PiiError:
            raise PiiError(f"PII record {ref!r} in the vault is not text fields: it was not written by mm") from None
