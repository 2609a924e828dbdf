"""What a client declares when it creates an asset or a version: validated whole, each problem naming its field."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from mm_pipelines.media.sniff import SUPPORTED

USAGES = ("organic", "paid", "editorial", "broadcast", "print")
# ISO 3166-1 alpha-2 codes, or WW for worldwide.
Territory = Annotated[str, StringConstraints(pattern=r"^(WW|[A-Z]{2})$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FileDeclaration(Strict):
    """The file the client is about to upload: the service checks the upload against every field."""

    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    size: int = Field(gt=0, description="Bytes; at most MM_UPLOAD_MAX_BYTES")
    sha256: Sha256 = Field(description="Hex SHA-256 of the file")
    content_type: str = Field(description="One of the supported media types")

    @field_validator("filename")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if "/" in name or "\\" in name or name in (".", "..") or any(ord(c) < 32 for c in name):
            raise ValueError("must be a plain file name, without folders or control characters")
        return name

    @field_validator("content_type")
    @classmethod
    def _supported(cls, content_type: str) -> str:
        content_type = content_type.split(";")[0].strip().lower()
        if content_type not in SUPPORTED:
            raise ValueError(f"is not supported: use one of {', '.join(SUPPORTED)}")
        return content_type


class License(Strict):
    licensor: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    territories: list[Territory] = Field(min_length=1, description="ISO 3166-1 alpha-2 codes, or WW for worldwide")
    starts_on: date
    ends_on: date
    usage: list[Literal[USAGES]] = Field(min_length=1)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _period(self) -> License:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on: a license must end on or after the day it starts")
        return self


class AssetCreate(Strict):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    creator_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,100}$")] | None = None
    license: License
    legal_sensitive: bool = Field(False, description="Publishing needs Legal's sign-off")
    file: FileDeclaration


SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def object_name(filename: str) -> str:
    """A file name safe in an object key (the original is kept in the record)."""
    return SAFE_NAME.sub("_", filename).strip("._") or "file"
