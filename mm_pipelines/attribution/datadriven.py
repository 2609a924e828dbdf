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
SUBGAME_BLOCK = 1024  # channel sets per step of subgame_shapley_values (memory: block × coalitions floats)

Journeys = Mapping[tuple[str, ...], tuple[float, float]]


@dataclass(frozen=True)
class JourneyIndex:
    """Distinct journeys indexed once, so a window of days is a vector of counts per journey and every fit
    is array arithmetic. Channels are sorted; state 0 is `start`, channel i is state i + 1."""

    paths: list[tuple[str, ...]]
    channels: list[str]
    pair_from: np.ndarray  # one entry per transition start→c1, c1→c2, …
    pair_to: np.ndarray
    pair_path: np.ndarray
    terminal: np.ndarray  # state of each journey's last channel
    channel_sets: list[frozenset[str]]
    set_of_path: np.ndarray


def index_journeys(paths: Iterable[tuple[str, ...]]) -> JourneyIndex:
    paths = [p for p in paths if p]
    channels = sorted({c for p in paths for c in p})
    state = {c: i + 1 for i, c in enumerate(channels)}
    pair_from, pair_to, pair_path = [], [], []
    sets: dict[frozenset[str], int] = {}
    set_of_path = []
    for j, path in enumerate(paths):
        states = [0] + [state[c] for c in path]
        pair_from += states[:-1]
        pair_to += states[1:]
        pair_path += [j] * len(path)
        set_of_path.append(sets.setdefault(frozenset(path), len(sets)))
    terminal = np.array([state[p[-1]] for p in paths], dtype=np.int64)
    return JourneyIndex(
        paths,
        channels,
        np.array(pair_from, dtype=np.int64),
        np.array(pair_to, dtype=np.int64),
        np.array(pair_path, dtype=np.int64),
        terminal,
        list(sets),
        np.array(set_of_path, dtype=np.int64),
    )


def _chain(
    index: JourneyIndex, conv: np.ndarray, null: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Transition counts among `start` and the channels present in the window (sorted), and to the absorbing states.

    Counts are sums of whole journeys, exact in Float64, so any index of the same window gives the same chain."""
    size = len(index.channels) + 1
    weight = conv + null
    counts = np.bincount(index.pair_from * size + index.pair_to, weights=weight[index.pair_path], minlength=size * size)
    to_conversion = np.bincount(index.terminal, weights=conv, minlength=size)
    to_null = np.bincount(index.terminal, weights=null, minlength=size)
    return _present_chain(index.channels, counts.reshape(size, size), to_conversion, to_null)


def _present_chain(
    channels: list[str], counts: np.ndarray, to_conversion: np.ndarray, to_null: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The chain restricted to `start` and the channels some journey of the window moves into."""
    present = counts.sum(axis=0) > 0  # counts are sums of non-negative journey counts
    keep = [0] + [s for s in range(1, len(channels) + 1) if present[s]]
    return [channels[s - 1] for s in keep[1:]], counts[np.ix_(keep, keep)], to_conversion[keep], to_null[keep]


def _absorption_probabilities(
    counts: np.ndarray, to_conversion: np.ndarray, to_null: np.ndarray, removed: Iterable[int] = ()
) -> tuple[float, dict[int, float]]:
    """P(conversion) from `start` for the intact chain and with each state of `removed` taken out.

    Transient states are `start` (index 0) and the channels; the absorbing ones are `conversion` and `null`.
    Taking out a channel sends every transition into it to `null`, i.e. zeroes its column of Q.
    """
    row_sums = counts.sum(axis=1) + to_conversion + to_null
    if row_sums[0] == 0:
        return 0.0, {s: 0.0 for s in removed}
    row_sums = np.where(row_sums == 0, 1.0, row_sums)  # a state nobody leaves is never reached either
    q = counts / row_sums[:, None]
    r = to_conversion / row_sums
    identity = np.eye(len(r))

    def solve(qm: np.ndarray) -> float:
        return float(np.linalg.solve(identity - qm, r)[0])

    without = {}
    for s in removed:
        qm = q.copy()
        qm[:, s] = 0.0
        without[s] = solve(qm)
    return solve(q), without


def _counts(journeys: Journeys) -> tuple[JourneyIndex, np.ndarray, np.ndarray]:
    index = index_journeys(journeys)
    conv = np.array([journeys[p][0] for p in index.paths], dtype=float)
    null = np.array([journeys[p][1] for p in index.paths], dtype=float)
    return index, conv, null


def _removal_effects(index: JourneyIndex, conv: np.ndarray, null: np.ndarray) -> dict[str, float]:
    return _chain_removal_effects(*_chain(index, conv, null))


def _chain_removal_effects(
    channels: list[str], counts: np.ndarray, to_conversion: np.ndarray, to_null: np.ndarray
) -> dict[str, float]:
    p, without = _absorption_probabilities(counts, to_conversion, to_null, range(1, len(channels) + 1))
    if p <= 0:
        return {c: 0.0 for c in channels}
    # 0 <= P(without c) <= P in exact arithmetic; clamping keeps solver rounding from making a negative weight.
    return {c: min(1.0, max(0.0, 1.0 - without[i + 1] / p)) for i, c in enumerate(channels)}


def markov_conversion_probability(journeys: Journeys) -> float:
    """Probability of absorption in `conversion` from `start` of the first-order chain fitted on `journeys`."""
    _, counts, to_conversion, to_null = _chain(*_counts(journeys))
    return _absorption_probabilities(counts, to_conversion, to_null)[0]


def markov_removal_effects(journeys: Journeys) -> dict[str, float]:
    """RE(c) = 1 - P(without c) / P for every channel seen; all 0 when nothing converts."""
    return _removal_effects(*_counts(journeys))


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
    return _coalition_values(*_counts(journeys), value)


def _coalition_values(
    index: JourneyIndex, conv: np.ndarray, null: np.ndarray, value: str
) -> dict[frozenset[str], float]:
    n = len(index.channel_sets)
    converting = np.bincount(index.set_of_path, weights=conv, minlength=n)
    total = np.bincount(index.set_of_path, weights=conv + null, minlength=n)
    return _set_values(index.channel_sets, converting, total, value)


def _set_values(
    channel_sets: list[frozenset[str]], converting: np.ndarray, total: np.ndarray, value: str
) -> dict[frozenset[str], float]:
    if value not in ("conversions", "conversion_rate"):
        raise ValueError(f"Shapley value {value!r} must be 'conversions' or 'conversion_rate'")
    out = {}
    for i in np.flatnonzero(total > 0):
        out[channel_sets[i]] = float(converting[i]) if value == "conversions" else float(converting[i] / total[i])
    return out


def subgame_shapley_values(
    R: Mapping[frozenset[str], float], sets: Iterable[frozenset[str]]
) -> dict[frozenset[str], dict[str, float]]:
    """φ_S for each S: the Shapley values of the game v restricted to S.

    v is the sum of unanimity games with dividends R(T), so φ_S(c) = Σ_{T ⊆ S, c ∈ T} R(T) / |T| exactly
    (Harsanyi); computed over bitmasks in a canonical order, so the result does not depend on dict order.
    All sets at once, in blocks: per set and channel it cost 1.8 s of a 60-day fit at 10M events."""
    sets = list(sets)
    channels = sorted({c for t in R for c in t} | {c for s in sets for c in s})
    position = {c: i for i, c in enumerate(channels)}
    bit = {c: 1 << i for c, i in position.items()}
    items = sorted((sum(bit[c] for c in t), value / len(t)) for t, value in R.items() if t)
    masks = np.array([m for m, _ in items], dtype=np.int64)
    shares = np.array([v for _, v in items], dtype=float)
    # share_by_channel[k, j]: coalition k's share for channel j, 0 if j is not in it.
    in_coalition = ((masks[:, None] >> np.arange(len(channels))) & 1).astype(bool)
    share_by_channel = np.where(in_coalition, shares[:, None], 0.0)
    set_masks = np.array([sum(bit[c] for c in s) for s in sets], dtype=np.int64)
    out = {}
    for lo in range(0, len(sets), SUBGAME_BLOCK):
        block = set_masks[lo : lo + SUBGAME_BLOCK]
        inside = ((masks[None, :] & ~block[:, None]) == 0).astype(float)
        # einsum without optimize sums over coalitions in their canonical order: the same bits on every run.
        values = np.einsum("sk,kc->sc", inside, share_by_channel)
        for s, row in zip(sets[lo : lo + SUBGAME_BLOCK], values):
            out[s] = {c: float(row[position[c]]) for c in sorted(s)}
    return out


@dataclass
class DayFit:
    """What one conversion date's window of journeys yields for the data-driven models."""

    removal_effects: dict[str, float]
    shapley_by_set: dict[frozenset[str], dict[str, float]]
    channel_values: list[tuple[str, str, float, float]]  # (model, channel, value, attributed conversions)
    coalition_values: dict[frozenset[str], float] = field(default_factory=dict)


def fit_window(journeys: Journeys, needed_sets: Iterable[frozenset[str]], config: AttributionConfig) -> DayFit:
    """Fit Markov and Shapley on one window of journeys; φ_S for each path channel set in `needed_sets`."""
    return fit_counts(*_counts(journeys), needed_sets, config)


def fit_counts(
    index: JourneyIndex,
    conv: np.ndarray,
    null: np.ndarray,
    needed_sets: Iterable[frozenset[str]],
    config: AttributionConfig,
) -> DayFit:
    """fit_window over journeys given as an index and their counts in the window (zeros: not in the window)."""
    return _fit(
        _chain(index, conv, null),
        _coalition_values(index, conv, null, config.shapley_value),
        float(conv.sum()),
        needed_sets,
    )


@dataclass
class WindowSums:
    """A window of journeys reduced to what both fits read, all sums of journey counts (so windows add and
    subtract exactly in Float64): the transition counts among `start` (state 0) and `channels` (state i + 1)
    and into the absorbing states, and the converting and total journeys per channel set."""

    channels: list[str]
    counts: np.ndarray
    to_conversion: np.ndarray
    to_null: np.ndarray
    channel_sets: list[frozenset[str]]
    set_converting: np.ndarray
    set_total: np.ndarray

    @classmethod
    def zeros(cls, channels: list[str], channel_sets: list[frozenset[str]]) -> WindowSums:
        size, n_sets = len(channels) + 1, len(channel_sets)
        return cls(
            channels,
            np.zeros((size, size)),
            np.zeros(size),
            np.zeros(size),
            channel_sets,
            np.zeros(n_sets),
            np.zeros(n_sets),
        )

    def add(self, other: WindowSums, sign: int = 1) -> None:
        """Add (or with sign -1 take out) a window over the same channels and sets."""
        for part in ("counts", "to_conversion", "to_null", "set_converting", "set_total"):
            mine = getattr(self, part)
            mine += sign * getattr(other, part)

    def fit(self, needed_sets: Iterable[frozenset[str]], config: AttributionConfig) -> DayFit:
        chain = _present_chain(self.channels, self.counts, self.to_conversion, self.to_null)
        R = _set_values(self.channel_sets, self.set_converting, self.set_total, config.shapley_value)
        return _fit(chain, R, float(self.to_conversion.sum()), needed_sets)


def _fit(
    chain: tuple[list[str], np.ndarray, np.ndarray, np.ndarray],
    R: dict[frozenset[str], float],
    converting: float,
    needed_sets: Iterable[frozenset[str]],
) -> DayFit:
    effects = _chain_removal_effects(*chain)
    by_set = subgame_shapley_values(R, set(needed_sets))
    channels = sorted(effects)
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
            fit.shapley_by_set.update(subgame_shapley_values(fit.coalition_values, [s]))
        value = fit.shapley_by_set[s]
    else:
        raise ValueError(f"{model!r} is not a data-driven model: use markov or shapley")
    return [value.get(c, 0.0) / k[c] for c in channels_in_path]
