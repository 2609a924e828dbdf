"""Data-driven attribution solvers: exact first-order Markov removal effects and exact Shapley values.

Pure functions over aggregated journeys (channel sequence -> (converting, non-converting) counts), shared by
the reference engine and the Spark backfill so that both fit the same numbers (docs/attribution.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from math import factorial

import numpy as np

from mm_pipelines.attribution.config import AttributionConfig

SHAPLEY_MAX_CHANNELS = 20  # standard formula up to 2**20 coalitions; above, the equal closed form (see shapley_values)

Journeys = Mapping[tuple[str, ...], tuple[float, float]]


def _channels(journeys: Journeys) -> list[str]:
    return sorted({c for path in journeys for c in path})


def _absorption_probabilities(journeys: Journeys, removed: Iterable[str] = ()) -> tuple[float, dict[str, float]]:
    """P(conversion) from `start` for the intact chain and with each channel of `removed` taken out.

    Transient states are `start` (index 0) and the channels; the absorbing ones are `conversion` and `null`.
    Taking out a channel sends every transition into it to `null`, i.e. zeroes its column of Q.
    """
    channels = _channels(journeys)
    index = {c: i + 1 for i, c in enumerate(channels)}
    size = len(channels) + 1
    counts = np.zeros((size, size))
    to_conversion = np.zeros(size)
    to_null = np.zeros(size)
    for path, (conv, null) in journeys.items():
        if not path or conv + null == 0:
            continue
        states = [0] + [index[c] for c in path]
        for a, b in zip(states, states[1:]):
            counts[a, b] += conv + null
        to_conversion[states[-1]] += conv
        to_null[states[-1]] += null
    row_sums = counts.sum(axis=1) + to_conversion + to_null
    if row_sums[0] == 0:
        return 0.0, {c: 0.0 for c in removed}
    row_sums[row_sums == 0] = 1.0  # a state nobody leaves is never reached either
    q = counts / row_sums[:, None]
    r = to_conversion / row_sums
    identity = np.eye(size)

    def solve(qm: np.ndarray) -> float:
        return float(np.linalg.solve(identity - qm, r)[0])

    without = {}
    for c in removed:
        qm = q.copy()
        qm[:, index[c]] = 0.0
        without[c] = solve(qm)
    return solve(q), without


def markov_conversion_probability(journeys: Journeys) -> float:
    """Probability of absorption in `conversion` from `start` of the first-order chain fitted on `journeys`."""
    return _absorption_probabilities(journeys)[0]


def markov_removal_effects(journeys: Journeys) -> dict[str, float]:
    """RE(c) = 1 - P(without c) / P for every channel seen; all 0 when nothing converts.

    Mathematically 0 <= P(without c) <= P; the result is clamped to [0, 1] so that solver rounding on a
    channel that never leads to a conversion cannot produce a negative weight.
    """
    channels = _channels(journeys)
    p, without = _absorption_probabilities(journeys, channels)
    if p <= 0:
        return {c: 0.0 for c in channels}
    return {c: min(1.0, max(0.0, 1.0 - without[c] / p)) for c in channels}


def markov_channel_conversions(journeys: Journeys) -> dict[str, float]:
    """Converting journeys credited to each channel: total × RE(c) / ΣRE (ChannelAttribution's normalisation)."""
    effects = markov_removal_effects(journeys)
    return _normalise(effects, sum(conv for path, (conv, _) in journeys.items() if path))


def _normalise(values: Mapping[str, float], total: float) -> dict[str, float]:
    denominator = sum(values.values())
    if denominator == 0:
        return {c: 0.0 for c in values}
    return {c: total * v / denominator for c, v in values.items()}


def shapley_values(R: Mapping[frozenset[str], float], players: Iterable[str]) -> dict[str, float]:
    """Exact Shapley values of the game v(S) = Σ_{T ⊆ S} R(T) restricted to `players`.

    v is built over bitmasks with a subset-sum (zeta) transform, then every player's marginal contributions
    are summed with the standard |T|!(n-|T|-1)!/n! weights: O(n·2^n) instead of enumerating subsets per set.
    """
    names = sorted(set(players))
    n = len(names)
    if n > SHAPLEY_MAX_CHANNELS:
        # v is a sum of unanimity games with dividends R(T), so φ_c = Σ_{T ∋ c, T ⊆ S} R(T) / |T| exactly
        # (Harsanyi); the standard formula would need 2**n coalitions.
        members = set(names)
        out = dict.fromkeys(names, 0.0)
        for coalition, value in R.items():
            if coalition and coalition <= members:
                for c in coalition:
                    out[c] += value / len(coalition)
        return out
    if n == 0:
        return {}
    bit = {c: 1 << i for i, c in enumerate(names)}
    v = np.zeros(1 << n)
    for coalition, value in R.items():
        if coalition and coalition <= bit.keys():
            v[sum(bit[c] for c in coalition)] += value
    for i in range(n):  # zeta transform: v[S] = Σ_{T ⊆ S} R[T]
        view = v.reshape(-1, 2, 1 << i)
        view[:, 1, :] += view[:, 0, :]
    masks = np.arange(1 << n)
    sizes = np.zeros(1 << n, dtype=np.int64)
    for i in range(n):
        sizes += (masks >> i) & 1
    weights = np.array([factorial(k) * factorial(n - k - 1) / factorial(n) for k in range(n)])
    out = {}
    for c in names:
        without = masks[(masks & bit[c]) == 0]
        out[c] = float(np.dot(weights[sizes[without]], v[without | bit[c]] - v[without]))
    return out


def coalition_values(journeys: Journeys, value: str = "conversions") -> dict[frozenset[str], float]:
    """R(T) per exact channel set T: its converting journeys, or their conversion rate."""
    conv: Counter[frozenset[str]] = Counter()
    total: Counter[frozenset[str]] = Counter()
    for path, (c, null) in journeys.items():
        if path:
            conv[frozenset(path)] += c
            total[frozenset(path)] += c + null
    if value == "conversions":
        return {s: float(conv[s]) for s in total}
    if value == "conversion_rate":
        return {s: (conv[s] / total[s] if total[s] else 0.0) for s in total}
    raise ValueError(f"Shapley value {value!r} must be 'conversions' or 'conversion_rate'")


@dataclass
class DayFit:
    """What one conversion date's window of journeys yields for the data-driven models."""

    removal_effects: dict[str, float]
    shapley_by_set: dict[frozenset[str], dict[str, float]]
    channel_values: list[tuple[str, str, float, float]]  # (model, channel, value, attributed conversions)
    coalition_values: dict[frozenset[str], float] = field(default_factory=dict)


def fit_window(journeys: Journeys, needed_sets: Iterable[frozenset[str]], config: AttributionConfig) -> DayFit:
    """Fit Markov and Shapley on one window of journeys; φ_S for each path channel set in `needed_sets`."""
    effects = markov_removal_effects(journeys)
    R = coalition_values(journeys, config.shapley_value)
    by_set = {s: shapley_values(R, s) for s in set(needed_sets)}
    channels = _channels(journeys)
    converting = sum(conv for path, (conv, _) in journeys.items() if path)
    phi = shapley_values(R, channels)
    markov_conv = _normalise(effects, converting)
    shapley_conv = _normalise(phi, converting)
    values = [("markov", c, effects[c], markov_conv[c]) for c in channels]
    values += [("shapley", c, phi[c], shapley_conv[c]) for c in channels]
    return DayFit(effects, by_set, values, R)


def touch_weights(model: str, channels_in_path: list[str], fit: DayFit) -> list[float]:
    """Raw weights value(c_i) / k(c_i); all zeros (nothing fitted) are turned linear when allocating shares."""
    k = Counter(channels_in_path)
    if model == "markov":
        value = fit.removal_effects
    elif model == "shapley":
        s = frozenset(channels_in_path)
        if s not in fit.shapley_by_set:
            fit.shapley_by_set[s] = shapley_values(fit.coalition_values, s)
        value = fit.shapley_by_set[s]
    else:
        raise ValueError(f"{model!r} is not a data-driven model: use markov or shapley")
    return [value.get(c, 0.0) / k[c] for c in channels_in_path]
