from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_pipelines.attribution.config import AttributionConfig
from mm_pipelines.attribution.datadriven import (
    SHAPLEY_MAX_CHANNELS,
    coalition_values,
    fit_window,
    markov_channel_conversions,
    markov_conversion_probability,
    markov_removal_effects,
    shapley_values,
    touch_weights,
)

pytestmark = pytest.mark.unit


def subsets(players):
    players = sorted(players)
    return [frozenset(c) for k in range(len(players) + 1) for c in combinations(players, k)]


# --- Markov: published examples -------------------------------------------------------------------------------


def test_markov_analyzecore_three_paths():
    """Sergey Bryl', "Marketing Multi-Channel Attribution model with R (part 1: Markov chains concept)",
    https://analyzecore.com/2016/08/03/attribution-model-r-part-1/ — journeys C1>C2>C3 (converts), C1 (null),
    C2>C3 (null). Published: P = 1/3, P without C1 = 1/6, removal effects C1 0.5, C2 1, C3 1, and 1 conversion
    split 0.2 / 0.4 / 0.4 (the same numbers are the test suite of github.com/JesseCastro/markovattribution,
    which cites that article). Note: C1's removal effect is 0.5, not 1 — C2>C3 still reaches conversion.

    Re-derived: start->C1 2/3, start->C2 1/3, C1->C2 1/2, C1->null 1/2, C2->C3 1, C3->conv 1/2.
    P = 2/3·1/2·1/2 + 1/3·1/2 = 1/3; without C1 only the second term stays: 1/6.
    """
    journeys = {("C1", "C2", "C3"): (1, 0), ("C1",): (0, 1), ("C2", "C3"): (0, 1)}
    assert markov_conversion_probability(journeys) == pytest.approx(1 / 3)
    assert markov_removal_effects(journeys) == pytest.approx({"C1": 0.5, "C2": 1.0, "C3": 1.0})
    assert markov_channel_conversions(journeys) == pytest.approx({"C1": 0.2, "C2": 0.4, "C3": 0.4})


def test_markov_puzyrov_google_ads_and_mailing():
    """Serhii Puzyrov, "Markov Chain Attribution – Simple Explanation Of Removal Effect",
    https://serhiipuzyrov.com/2019/07/markov-chain-attribution-simple-explanation-of-removal-effect/ —
    paths: google ads (2 conversions), mailing (1), google ads > mailing (1), google ads (0 conversions, 1 null).
    Published transition table: start->google 0.8, start->mailing 0.2, google->conv 0.5, google->mailing 0.25,
    google->null 0.25, mailing->conv 1.

    Re-derived from that table: P = 0.8·(0.5 + 0.25·1) + 0.2·1 = 0.8. Without google ads: 0.2, RE = 0.75.
    Without mailing: 0.8·0.5 = 0.4, RE = 0.5. Normalised over 4 conversions: 4·0.75/1.25 = 2.4 and 1.6.
    """
    journeys = {("google ads",): (2, 1), ("mailing",): (1, 0), ("google ads", "mailing"): (1, 0)}
    assert markov_conversion_probability(journeys) == pytest.approx(0.8)
    assert markov_removal_effects(journeys) == pytest.approx({"google ads": 0.75, "mailing": 0.5})
    assert markov_channel_conversions(journeys) == pytest.approx({"google ads": 2.4, "mailing": 1.6})


# --- Markov: hand-computed ------------------------------------------------------------------------------------


def test_markov_repeats_are_self_loops():
    # a->a, a->conv (from a>a converting) and start->a twice, a->null once (from a null):
    # a: self 1/3, conv 1/3, null 1/3 -> P(conv from a) = (1/3) / (1 - 1/3) = 1/2
    journeys = {("a", "a"): (1, 0), ("a",): (0, 1)}
    assert markov_conversion_probability(journeys) == pytest.approx(0.5)
    assert markov_removal_effects(journeys) == pytest.approx({"a": 1.0})


def test_markov_nothing_converts_gives_zero_effects():
    journeys = {("a", "b"): (0, 3), ("b",): (0, 1)}
    assert markov_conversion_probability(journeys) == 0
    assert markov_removal_effects(journeys) == {"a": 0.0, "b": 0.0}
    assert markov_channel_conversions(journeys) == {"a": 0.0, "b": 0.0}
    assert markov_removal_effects({}) == {}


def test_markov_channel_only_in_non_converting_journeys_has_no_effect():
    journeys = {("a",): (3, 1), ("z",): (0, 5)}
    assert markov_removal_effects(journeys) == {"a": 1.0, "z": 0.0}


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.lists(st.sampled_from("abcde"), min_size=1, max_size=6).map(tuple),
        st.tuples(st.integers(0, 20), st.integers(0, 20)),
        max_size=12,
    )
)
def test_markov_removal_effects_are_in_unit_interval(journeys):
    effects = markov_removal_effects(journeys)
    assert set(effects) == {c for path, (conv, null) in journeys.items() if conv + null for c in path}
    assert all(0.0 <= e <= 1.0 for e in effects.values())
    p = markov_conversion_probability(journeys)
    assert -1e-12 <= p <= 1 + 1e-12
    total = sum(conv for conv, _ in journeys.values())
    if sum(effects.values()) > 0:
        assert sum(markov_channel_conversions(journeys).values()) == pytest.approx(total)


# --- Shapley: published examples ------------------------------------------------------------------------------


def test_shapley_towards_data_science_facebook_organic_linkedin():
    """ "Data Driven Marketing Attribution" (Towards Data Science,
    https://towardsdatascience.com/data-driven-marketing-attribution-1a28d2e613a0), as reproduced in the notebook
    https://github.com/tomgorb/misc/blob/master/Data%20Driven%20Attribution.ipynb — channels Facebook, Organic,
    LinkedIn; share of conversions per exact channel set F 0.2, O 0.1, L 0.17, F+O 0.17, F+L 0.3, L+O 0,
    F+L+O 0.06. Published worth v: F 0.2, O 0.1, L 0.17, F+O 0.47, F+L 0.67, L+O 0.27, F+L+O 1.0 (the same
    v(S) = Σ_{T⊆S} R(T) as our spec) and Shapley values F 0.455, O 0.205, L 0.34.

    Re-derived with the Harsanyi form Σ_{T∋c} R(T)/|T|: F = 0.2 + 0.17/2 + 0.3/2 + 0.06/3 = 0.455.
    """
    R = {
        frozenset("F"): 0.2,
        frozenset("O"): 0.1,
        frozenset("L"): 0.17,
        frozenset("FO"): 0.17,
        frozenset("FL"): 0.3,
        frozenset("LO"): 0.0,
        frozenset("FLO"): 0.06,
    }
    assert shapley_values(R, "FOL") == pytest.approx({"F": 0.455, "O": 0.205, "L": 0.34})
    # restricted games: v on a smaller channel set, e.g. {F, O} with v(F+O) = 0.47
    phi = shapley_values(R, "FO")
    assert sum(phi.values()) == pytest.approx(0.47)
    assert phi == pytest.approx({"F": 0.2 + 0.17 / 2, "O": 0.1 + 0.17 / 2})


def test_shapley_airport_runway_game():
    """Runway cost game from "Understanding Marginal Contribution and Shapley Values",
    https://stand--sure.blogspot.com/2015/12/understanding-marginal-contribution-and-shapley-values.html —
    aircraft A, B, C, D need runways of 8, 11, 13 and 18 units, v(S) = longest runway in S. Published
    allocation: A 2, B 2+1 = 3, C 2+1+1 = 4, D 2+1+1+5 = 9 (total 18).

    Our games are given by R(T) with v(S) = Σ_{T⊆S} R(T), so R is the Möbius transform of v
    (R(T) = Σ_{U⊆T} (-1)^{|T|-|U|} v(U)); it has negative terms, which the solver must handle as well.
    """
    need = {"A": 8, "B": 11, "C": 13, "D": 18}

    def v(s):
        return max((need[p] for p in s), default=0)

    R = {t: sum((-1) ** (len(t) - len(u)) * v(u) for u in subsets(t)) for t in subsets(need) if t}
    assert shapley_values(R, need) == pytest.approx({"A": 2, "B": 3, "C": 4, "D": 9})


# --- Shapley: limits and properties ---------------------------------------------------------------------------


def test_shapley_beyond_the_standard_formula_limit_uses_the_equal_closed_form():
    players = [f"c{i:02d}" for i in range(SHAPLEY_MAX_CHANNELS + 5)]
    R = {frozenset(players[i : i + 3]): float(i + 1) for i in range(22)}
    phi = shapley_values(R, players)
    assert sum(phi.values()) == pytest.approx(sum(R.values()))  # efficiency
    assert phi["c00"] == pytest.approx(1 / 3) and phi["c02"] == pytest.approx((1 + 2 + 3) / 3)
    # and it agrees with the standard formula where both apply
    small = players[:SHAPLEY_MAX_CHANNELS]
    closed = {c: sum(v / len(t) for t, v in R.items() if c in t and t <= set(small)) for c in small}
    assert shapley_values(R, small) == pytest.approx(closed)


def test_shapley_twenty_channels_is_exact_and_fast():
    players = [f"c{i:02d}" for i in range(SHAPLEY_MAX_CHANNELS)]
    R = {frozenset(players[i : i + 3]): float(i + 1) for i in range(18)}
    phi = shapley_values(R, players)
    assert sum(phi.values()) == pytest.approx(sum(R.values()))
    assert phi["c00"] == pytest.approx(1 / 3)


def test_shapley_ignores_sets_outside_the_players():
    R = {frozenset("a"): 2.0, frozenset("ab"): 4.0, frozenset("z"): 100.0}
    assert shapley_values(R, "ab") == pytest.approx({"a": 4.0, "b": 2.0})
    assert shapley_values(R, []) == {}


R_GAMES = st.dictionaries(
    st.frozensets(st.sampled_from("abcdef"), min_size=1, max_size=6),
    st.floats(0, 1000, allow_nan=False),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(R_GAMES, st.frozensets(st.sampled_from("abcdef"), min_size=1))
def test_shapley_efficiency_and_harsanyi_closed_form(R, players):
    phi = shapley_values(R, players)
    inside = {t: r for t, r in R.items() if t <= players}
    assert sum(phi.values()) == pytest.approx(sum(inside.values()), abs=1e-6)  # Σφ = v(S)
    for c in players:  # Zhao, Mahboobi & Bagheri (arXiv:1804.05327) simplified formula
        assert phi[c] == pytest.approx(sum(r / len(t) for t, r in inside.items() if c in t), abs=1e-6)
        assert phi[c] >= -1e-9


@settings(max_examples=100, deadline=None)
@given(R_GAMES)
def test_shapley_symmetry(R):
    swap = {"a": "b", "b": "a"}
    symmetric = dict(R)
    for t, r in R.items():  # make R invariant under exchanging a and b
        mirrored = frozenset(swap.get(c, c) for c in t)
        symmetric[mirrored] = symmetric.get(mirrored, 0.0) + r
    phi = shapley_values(symmetric, "abcdef")
    assert phi["a"] == pytest.approx(phi["b"], abs=1e-6)


# --- coalition values, window fits, touch weights -------------------------------------------------------------


def test_coalition_values_by_exact_channel_set():
    journeys = {("a", "b"): (2, 1), ("b", "a", "a"): (1, 4), ("a",): (0, 3), (): (5, 5)}
    assert coalition_values(journeys) == {frozenset("ab"): 3.0, frozenset("a"): 0.0}
    assert coalition_values(journeys, "conversion_rate") == {frozenset("ab"): 3 / 8, frozenset("a"): 0.0}
    with pytest.raises(ValueError):
        coalition_values(journeys, "odds")


def test_fit_window_and_touch_weights():
    journeys = {("C1", "C2", "C3"): (1, 0), ("C1",): (0, 1), ("C2", "C3"): (0, 1)}
    fit = fit_window(journeys, [frozenset({"C1", "C2", "C3"}), frozenset({"C2", "C3"})], AttributionConfig())
    assert fit.removal_effects == pytest.approx({"C1": 0.5, "C2": 1.0, "C3": 1.0})
    # the only converting set is {C1, C2, C3}: its value is split evenly, and it is not inside {C2, C3}
    assert fit.shapley_by_set[frozenset({"C1", "C2", "C3"})] == pytest.approx({"C1": 1 / 3, "C2": 1 / 3, "C3": 1 / 3})
    assert fit.shapley_by_set[frozenset({"C2", "C3"})] == {"C2": 0.0, "C3": 0.0}
    values = {(m, c): (v, a) for m, c, v, a in fit.channel_values}
    assert values[("markov", "C1")] == pytest.approx((0.5, 0.2))
    assert values[("markov", "C3")] == pytest.approx((1.0, 0.4))
    assert values[("shapley", "C2")] == pytest.approx((1 / 3, 1 / 3))

    assert touch_weights("markov", ["C1", "C2", "C1"], fit) == pytest.approx([0.25, 1.0, 0.25])
    assert touch_weights("shapley", ["C2", "C3", "C3"], fit) == [0.0, 0.0, 0.0]
    # a set nobody asked for is solved on demand
    assert touch_weights("shapley", ["C3", "C1", "C2", "C3"], fit) == pytest.approx([1 / 6, 1 / 3, 1 / 3, 1 / 6])
    assert touch_weights("markov", ["unseen"], fit) == [0.0]
    with pytest.raises(ValueError):
        touch_weights("linear", ["C1"], fit)


def test_fit_window_conversion_rate_value():
    journeys = {("a",): (1, 1), ("a", "b"): (3, 1)}
    fit = fit_window(journeys, [frozenset("ab")], AttributionConfig(shapley_value="conversion_rate"))
    # R(a) = 1/2, R(ab) = 3/4: φ(a) = 1/2 + 3/8, φ(b) = 3/8
    assert fit.shapley_by_set[frozenset("ab")] == pytest.approx({"a": 0.875, "b": 0.375})
    values = {(m, c): (v, a) for m, c, v, a in fit.channel_values}
    assert values[("shapley", "a")] == pytest.approx((0.875, 4 * 0.875 / 1.25))


# --- The daily fit over window sums computed in ClickHouse ----------------------------------------------------

DAY_JOURNEYS = st.dictionaries(
    st.integers(0, 9),  # day offset
    st.dictionaries(
        st.lists(st.sampled_from(["direct", "email", "search", "social"]), min_size=0, max_size=4).map(tuple),
        st.tuples(st.integers(0, 3), st.integers(0, 3)).filter(lambda cn: sum(cn) > 0),
        max_size=6,
    ),
    max_size=10,
)


@pytest.fixture(scope="module")
def journeys_warehouse(tmp_path_factory):
    from mm_pipelines.stores.clickhouse import Warehouse

    with Warehouse(f"chdb://{tmp_path_factory.mktemp('fit')}/wh").session() as s:
        s.command("CREATE DATABASE IF NOT EXISTS intermediate")
        s.command("""CREATE TABLE intermediate.int_attribution_journeys
                     (journey_date Date, channels Array(String), converting UInt64, non_converting UInt64)
                     ENGINE = MergeTree ORDER BY (journey_date, channels)""")
        yield s


@settings(max_examples=40, deadline=None)
@given(DAY_JOURNEYS, st.integers(1, 4))
def test_the_daily_fit_from_clickhouse_sums_equals_the_reference_fit_of_each_window(
    journeys_warehouse, by_offset, fit_days
):
    """refit() reduces each day to sums in ClickHouse and slides a window over them; each day's rows must be
    exactly fit_window() over the window's journeys merged in Python."""
    from datetime import date, timedelta

    from mm_pipelines.assets.attribution import refit

    s = journeys_warehouse
    s.command("TRUNCATE TABLE intermediate.int_attribution_journeys")
    s.command("DROP TABLE IF EXISTS intermediate.attribution_fit")
    day0 = date(2026, 3, 1)
    rows = [
        (day0 + timedelta(days=k), list(p), c, n) for k, by_path in by_offset.items() for p, (c, n) in by_path.items()
    ]
    if rows:
        s.command(
            "INSERT INTO intermediate.int_attribution_journeys VALUES "
            + ", ".join(f"('{d}', [{', '.join(repr(x) for x in p)}], {c}, {n})" for d, p, c, n in rows)
        )
    config = AttributionConfig(fit_days=fit_days)
    first, end = day0 + timedelta(days=3), day0 + timedelta(days=10)
    got = sorted(
        (
            r["fit_date"],
            r["model"],
            r["scope"],
            tuple(r["channel_set"]),
            r["channel"],
            r["value"],
            r["attributed_conversions"],
            r["journeys"],
            r["converting_journeys"],
        )
        for r in refit(s, first, end, config)
    )
    expected = []
    for k in range(3, 10):
        window: dict[tuple[str, ...], tuple[int, int]] = {}
        for j in range(k - fit_days + 1, k + 1):
            for p, (c, n) in by_offset.get(j, {}).items():
                if p:
                    window[p] = (window.get(p, (0, 0))[0] + c, window.get(p, (0, 0))[1] + n)
        if not window:
            continue
        needed = {frozenset(p) for p, (c, _) in by_offset.get(k, {}).items() if c and p}
        fit = fit_window(window, needed, config)
        conv, total = sum(c for c, _ in window.values()), sum(c + n for c, n in window.values())
        d = day0 + timedelta(days=k)
        expected += [(d, m, "channel", (), ch, v, a, total, conv) for m, ch, v, a in fit.channel_values]
        expected += [
            (d, "shapley", "set", tuple(sorted(cs)), ch, v, 0.0, total, conv)
            for cs, values in fit.shapley_by_set.items()
            for ch, v in values.items()
        ]
    assert got == sorted(expected)
