"""Attribution settings: one object, read at run time, passed to dbt as vars and to Spark and Python as is."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mm_pipelines.config import TRANSFORMS, Settings, dbt_project_dir

RULE_MODELS = ("first_touch", "last_touch", "last_non_direct", "linear", "position_based", "time_decay")
DATA_DRIVEN_MODELS = ("markov", "shapley")
MODELS = RULE_MODELS + DATA_DRIVEN_MODELS
DIRECT = "direct"
UNATTRIBUTED = "unattributed"
SHARE_UNITS = 1_000_000_000  # credit shares are integer units of 1e-9


@dataclass(frozen=True)
class AttributionConfig:
    click_lookback_days: int = 30
    impression_lookback_days: int = 1
    # (channel, touch_type) -> days; the seed attribution_lookback_windows.csv in the dbt project
    lookback_overrides: dict[tuple[str, str], int] = field(default_factory=dict)
    path_transforms: tuple[str, ...] = ()
    position_first_weight: float = 0.4
    position_last_weight: float = 0.4
    half_life_days: float = 7.0
    fit_days: int = 28
    shapley_value: str = "conversions"  # or "conversion_rate"
    reporting_currency: str = "USD"

    def __post_init__(self):
        bad = [t for t in self.path_transforms if t not in TRANSFORMS]
        if bad:
            raise ValueError(f"attribution path transform {bad[0]!r} is unknown: use one of {', '.join(TRANSFORMS)}")
        if not (
            0 <= self.position_first_weight
            and 0 <= self.position_last_weight
            and 0 < self.position_first_weight + self.position_last_weight <= 1
        ):
            raise ValueError("position-based weights must be >= 0, with 0 < first + last <= 1")
        if self.half_life_days <= 0:
            raise ValueError("attribution half-life must be > 0 days")
        if self.shapley_value not in ("conversions", "conversion_rate"):
            raise ValueError("attribution Shapley value must be 'conversions' or 'conversion_rate'")
        if min(self.click_lookback_days, self.impression_lookback_days, self.fit_days) < 0:
            raise ValueError("attribution lookback and fit windows must be >= 0 days")

    def lookback_days(self, channel: str, touch_type: str) -> int:
        default = self.click_lookback_days if touch_type == "click" else self.impression_lookback_days
        return self.lookback_overrides.get((channel, touch_type), default)

    @property
    def max_lookback_days(self) -> int:
        return max([self.click_lookback_days, self.impression_lookback_days, *self.lookback_overrides.values()])

    def dbt_vars(self) -> dict:
        return {
            "attribution_click_lookback_days": self.click_lookback_days,
            "attribution_impression_lookback_days": self.impression_lookback_days,
            "attribution_path_transforms": list(self.path_transforms),
            "attribution_position_first_weight": self.position_first_weight,
            "attribution_position_last_weight": self.position_last_weight,
            "attribution_half_life_days": self.half_life_days,
            "attribution_fit_days": self.fit_days,
            "attribution_shapley_value": self.shapley_value,
            "reporting_currency": self.reporting_currency,
        }

    def describe(self) -> str:
        d = asdict(self)
        d["lookback_overrides"] = {f"{c}/{t}": v for (c, t), v in self.lookback_overrides.items()}
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_env(cls, seed_file: Path | None = None) -> AttributionConfig:
        """The MM_ATTRIBUTION_* settings of the environment; per-channel windows from the dbt seed."""
        return cls.from_settings(Settings.from_env(), seed_file)

    @classmethod
    def from_settings(cls, settings: Settings, seed_file: Path | None = None) -> AttributionConfig:
        if seed_file is None:
            seed_file = dbt_project_dir(settings) / "seeds" / "attribution_lookback_windows.csv"
        return cls(
            click_lookback_days=settings.attribution_click_lookback_days,
            impression_lookback_days=settings.attribution_impression_lookback_days,
            lookback_overrides=read_lookback_overrides(seed_file),
            path_transforms=settings.attribution_path_transforms,
            position_first_weight=settings.attribution_position_first_weight,
            position_last_weight=settings.attribution_position_last_weight,
            half_life_days=settings.attribution_half_life_days,
            fit_days=settings.attribution_fit_days,
            shapley_value=settings.attribution_shapley_value,
            reporting_currency=settings.reporting_currency,
        )


def read_lookback_overrides(path: Path) -> dict[tuple[str, str], int]:
    if not path.exists():
        return {}
    out = {}
    with path.open(newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            if row["touch_type"] not in ("click", "impression"):
                raise ValueError(f"{path}:{line}: touch_type {row['touch_type']!r} must be click or impression")
            try:
                out[(row["channel"], row["touch_type"])] = int(row["lookback_days"])
            except ValueError:
                raise ValueError(
                    f"{path}:{line}: lookback_days {row['lookback_days']!r} is not a whole number"
                ) from None
    return out
