"""Path parameters with the bounds the database holds, so no generated value reaches it out of range."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

AssetId = Annotated[str, Path(min_length=1, max_length=64)]
VersionNumber = Annotated[int, Path(ge=1, le=1_000_000)]
BatchId = Annotated[str, Path(min_length=1, max_length=200)]
CreatorId = Annotated[str, Path(min_length=1, max_length=100)]
