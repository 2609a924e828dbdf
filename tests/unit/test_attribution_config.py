"""Attribution settings: read at run time, refused with a message that says what to fix."""

import pytest

from mm_pipelines.attribution.config import AttributionConfig, read_lookback_overrides

pytestmark = pytest.mark.unit


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("MM_ATTRIBUTION_HALF_LIFE_DAYS", "3.5")
    monkeypatch.setenv("MM_ATTRIBUTION_PATH_TRANSFORMS", "drop_direct, collapse_repeats")
    monkeypatch.setenv("MM_ATTRIBUTION_CLICK_LOOKBACK_DAYS", "14")
    seed = tmp_path / "windows.csv"
    seed.write_text("channel,touch_type,lookback_days\nemail,click,7\n")
    config = AttributionConfig.from_env(seed)
    assert config.half_life_days == 3.5 and config.path_transforms == ("drop_direct", "collapse_repeats")
    assert config.lookback_days("email", "click") == 7 and config.lookback_days("video", "click") == 14
    assert config.lookback_days("video", "impression") == 1 and config.max_lookback_days == 14
    assert config.dbt_vars()["attribution_path_transforms"] == ["drop_direct", "collapse_repeats"]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"MM_ATTRIBUTION_PATH_TRANSFORMS": "shuffle"}, "transform 'shuffle' is unknown"),
        ({"MM_ATTRIBUTION_HALF_LIFE_DAYS": "0"}, "half-life must be > 0"),
        ({"MM_ATTRIBUTION_HALF_LIFE_DAYS": "a week"}, "MM_ATTRIBUTION_HALF_LIFE_DAYS='a week' is not a number"),
        ({"MM_ATTRIBUTION_POSITION_FIRST_WEIGHT": "0.7"}, "first \\+ last <= 1"),
        ({"MM_ATTRIBUTION_SHAPLEY_VALUE": "revenue"}, "Shapley value must be"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(monkeypatch, tmp_path, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=message):
        AttributionConfig.from_env(tmp_path / "none.csv")


def test_a_bad_lookback_seed_row_names_file_and_line(tmp_path):
    seed = tmp_path / "w.csv"
    seed.write_text("channel,touch_type,lookback_days\nemail,click,7\nvideo,view,3\n")
    with pytest.raises(ValueError, match="w.csv:3: touch_type 'view'"):
        read_lookback_overrides(seed)
