"""The royalty statement engine against docs/royalty_statements.md: hand-computed rules, published
worked examples re-derived, and properties (conservation to the cent) over random multi-period runs."""

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_pipelines.royalties.money import CENT, add_months, allocate, convert, round_money, validate_period
from mm_pipelines.royalties.statements import (
    AccountActivity,
    AccountState,
    AccountTerms,
    PayeeTerms,
    Statement,
    StatementError,
    next_state,
    period_statement,
    run_periods,
)

pytestmark = pytest.mark.unit

D = Decimal
USD = {"USD": D(1)}


def payee(threshold="0", withholding="0", currency="USD"):
    return PayeeTerms("payee-1", currency, D(threshold), D(withholding))


def earned(amount, currency="USD"):
    return AccountActivity(earnings={currency: D(amount)})


def run(months, terms=(AccountTerms("a"),), who=None, rates=USD, start="2025-01", state=None):
    """One statement per month; `months` is a list of {account_id: AccountActivity} (or a bare activity for 'a')."""
    activities = {add_months(start, i): m if isinstance(m, dict) else {"a": m} for i, m in enumerate(months)}
    return run_periods(
        who or payee(), {t.account_id: t for t in terms}, activities, {p: rates for p in activities}, state
    )


def conserves(line) -> bool:
    inflow = line.opening + line.returned + line.earnings + line.reserve_released + line.mg_topup
    return inflow == line.paid + line.held + line.withheld + line.carried_out + line.reserve_held + line.recouped


def column(statements, name, account=0):
    return [getattr(s.lines[account], name) for s in statements]


def amounts(*values):
    return [D(v) for v in values]


# --- money -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount, rounded",
    [("0.005", "0.01"), ("-0.005", "-0.01"), ("0.025", "0.03"), ("-0.025", "-0.03"), ("2.344999", "2.34")],
)
def test_round_money_is_half_away_from_zero(amount, rounded):
    assert round_money(D(amount)) == D(rounded)


def test_allocate_gives_leftover_cents_to_largest_remainders_then_earlier_index():
    assert allocate(D("0.05"), amounts(1, 1, 1)) == amounts("0.02", "0.02", "0.01")
    assert allocate(D("-0.05"), amounts(1, 1, 1)) == amounts("-0.02", "-0.02", "-0.01")
    assert allocate(D("1.00"), amounts(1, 2, 0)) == amounts("0.33", "0.67", "0.00")
    assert allocate(D("0.10"), amounts("0.3", "0.3", "0.4")) == amounts("0.03", "0.03", "0.04")
    assert allocate(D("0.00"), amounts(1, 1)) == amounts("0.00", "0.00")
    assert allocate(D("5"), amounts(1, 1), quantum=D(1)) == amounts(3, 2)


@pytest.mark.parametrize(
    "total, weights, message",
    [("1.00", [0, 0], "at least one weight"), ("1.005", [1], "not a multiple"), ("1.00", [1, -1], ">= 0")],
)
def test_allocate_refuses_what_it_cannot_split(total, weights, message):
    with pytest.raises(ValueError, match=message):
        allocate(D(total), amounts(*weights))


def test_periods_are_months():
    assert add_months("2024-11", 3) == "2025-02"
    assert add_months("2024-01", -1) == "2023-12"
    assert add_months("2024-12", 0) == "2024-12"
    assert validate_period("2025-07") == "2025-07"
    for bad in ("2025-13", "2025-1", "25-01", "2025-00", 202501):
        with pytest.raises(ValueError, match="is not a month written 'YYYY-MM'"):
            validate_period(bad)


def test_convert_is_exact_to_40_digits_and_not_rounded():
    third = convert(D(1), D(1), D(3))
    assert len(third.as_tuple().digits) == 40 and str(third).startswith("0.3333333333")
    assert convert(D("10.00"), D(1), D("1.25")) == D(8)
    with pytest.raises(ValueError, match="must be > 0"):
        convert(D(1), D(0), D(1))


# --- the rules, hand-computed --------------------------------------------------------------------------


def test_an_advance_is_recouped_across_periods_then_earnings_are_paid():
    months = [AccountActivity(earnings={"USD": D(300)}, advances=D("1000.00")), earned(900), earned(50)]
    s = run(months)
    assert column(s, "unrecouped_in") == amounts(1000, 700, 0)
    assert column(s, "recouped") == amounts(300, 700, 0)
    assert column(s, "unrecouped_out") == amounts(700, 0, 0)
    assert [x.paid for x in s] == amounts(0, 200, 50)
    assert column(s, "balance") == amounts(0, 200, 50) and column(s, "carried_out") == amounts(0, 0, 0)


def test_minimum_guarantee_tops_up_and_the_top_up_is_recouped_later():
    s = run([earned(60), earned(170), earned(80)], terms=[AccountTerms("a", minimum_guarantee=D(100))])
    assert column(s, "mg_topup") == amounts(40, 0, 20)
    assert column(s, "recouped") == amounts(0, 40, 0)  # only what exceeds the guarantee: 170 - 100 >= 40
    assert [x.paid for x in s] == amounts(100, 130, 100)
    assert column(s, "unrecouped_out") == amounts(40, 0, 20)


def test_recoupment_never_takes_the_balance_below_the_guarantee():
    terms = [AccountTerms("a", minimum_guarantee=D(100))]
    s = run([AccountActivity(earnings={"USD": D(130)}, advances=D(500))], terms=terms)
    assert s[0].lines[0].recouped == D(30) and s[0].paid == D(100) and s[0].lines[0].unrecouped_out == D(470)


def test_reserve_is_held_on_positive_earnings_and_released_in_installments():
    terms = [AccountTerms("a", reserve_rate=D("0.25"), reserve_release_after=2, reserve_installments=3)]
    s = run([earned("100.01"), earned(0), earned(0), earned(0), earned(0), earned(0)], terms=terms)
    assert s[0].lines[0].reserve_held == D("25.00")  # 25.0025 rounded once
    assert s[0].lines[0].reserves_out == (("2025-03", D("8.34")), ("2025-04", D("8.33")), ("2025-05", D("8.33")))
    assert [x.paid for x in s] == amounts("75.01", 0, "8.34", "8.33", "8.33", 0)
    assert s[-1].lines[0].reserves_out == ()
    negative = run([earned(-10)], terms=terms)[0].lines[0]
    assert negative.reserve_held == 0 and negative.carried_out == D(-10)


def test_reserves_falling_due_in_the_same_period_are_merged_and_overdue_ones_released():
    terms = [AccountTerms("a", reserve_rate=D("0.5"), reserve_release_after=1, reserve_installments=2)]
    s = run([earned(10), earned(20)], terms=terms)
    assert s[1].lines[0].reserve_released == D("2.50")
    assert s[1].lines[0].reserves_out == (("2025-03", D("7.50")), ("2025-04", D("5.00")))
    overdue = AccountState(reserves=(("2024-11", D(3)), ("2025-01", D(4)), ("2025-02", D(5))))
    line = period_statement("2025-01", payee(), [(AccountTerms("a"), overdue, AccountActivity())], USD).lines[0]
    assert line.reserve_released == D(7) and line.reserves_out == (("2025-02", D(5)),)


def test_a_total_below_threshold_is_carried_forward_then_paid_when_crossed():
    s = run([earned(30), earned(25)], who=payee(threshold="50"))
    assert (s[0].paid, s[0].carried_out, s[0].carried_reason) == (0, D(30), "below threshold")
    assert (s[1].lines[0].opening, s[1].paid, s[1].carried_out, s[1].carried_reason) == (D(30), D(55), 0, "")


def test_a_negative_account_is_carried_and_never_netted_against_another():
    terms = [AccountTerms("a"), AccountTerms("b")]
    s = run([{"a": earned(-40), "b": earned(100)}, {"a": earned(30)}, {"a": earned(25)}], terms=terms)
    assert [x.payable_gross for x in s] == amounts(100, 0, 15)
    assert [x.paid for x in s] == amounts(100, 0, 15)
    assert column(s, "carried_out") == amounts(-40, -10, 0)
    assert column(s, "paid", account=1) == amounts(100, 0, 0)
    assert [x.carried_reason for x in s] == ["negative balance", "negative balance", ""]


def test_withholding_is_rounded_once_on_the_total_and_split_back_to_accounts():
    """Rate as Songtrust applies without a tax treaty: "If your home country does not have a tax treaty with
    the U.S., Songtrust is required to withhold 30% from your royalties."
    (https://help.songtrust.com/knowledge/what-is-tax-withholding-and-will-it-affect-me)"""
    terms = [AccountTerms("a"), AccountTerms("b")]
    s = run([{"a": earned(100), "b": earned("23.35")}], terms=terms, who=payee(withholding="0.30"))[0]
    assert (s.payable_gross, s.withheld, s.paid) == (D("123.35"), D("37.01"), D("86.34"))  # 37.005 half up
    assert [(x.withheld, x.paid) for x in s.lines] == [(D("30.00"), D("70.00")), (D("7.01"), D("16.34"))]


def test_fx_converts_every_currency_exactly_and_rounds_the_sum_once():
    rates = {"USD": D(1), "CAD": D("0.75"), "AUD": D("0.65")}
    line = run([AccountActivity(earnings={"CAD": D("0.006"), "AUD": D("0.006")})], rates=rates)[0].lines[0]
    # 0.0045 + 0.0039 = 0.0084 -> 0.01; rounding each currency first would give 0.00 + 0.00
    assert line.earnings == D("0.01")
    eur_payee = payee(currency="EUR")
    eur = run([earned("10.00")], who=eur_payee, rates={"USD": D(1), "EUR": D("1.25")})[0]
    assert eur.earnings == D("8.00") and eur.currency == "EUR"


def test_a_missing_rate_names_the_currency_and_period():
    with pytest.raises(StatementError, match="no exchange rate for GBP in period 2025-01"):
        run([earned(1, "GBP")])
    with pytest.raises(StatementError, match="no exchange rate for EUR in period 2025-01"):
        run([earned(1)], who=payee(currency="EUR"))


PAYMENTS = AccountTerms("payments", already_withheld=True)


def test_a_returned_payout_goes_back_on_the_balance_and_is_not_withheld_again():
    taxed = payee(withholding="0.15")
    s = run(
        [earned(80), {"a": earned(5), "payments": AccountActivity(returned=D("68.00"))}],
        terms=[AccountTerms("a"), PAYMENTS],
        who=taxed,
    )
    assert [(x.paid, x.withheld) for x in s] == [(D(68), D(12)), (D("72.25"), D("0.75"))]  # 0.75 is 15% of 5, not of 73
    bounced = AccountActivity(returned=D("80.00"))
    held = period_statement("2025-02", payee(threshold="100"), [(PAYMENTS, AccountState(), bounced)], USD)
    assert (held.paid, held.carried_out, held.carried_reason) == (0, D(80), "below threshold")
    later = period_statement(
        "2025-03",
        replace(taxed, threshold=D(100)),
        [(PAYMENTS, next_state(held.lines[0]), AccountActivity()), (AccountTerms("a"), AccountState(), earned(20))],
        USD,
    )
    assert (later.paid, later.withheld) == (D(97), D(3))  # the carried 80 is still net: 15% of the 20 only


def test_a_held_payout_shows_as_held_with_its_withholding_taken_once():
    kyc = "KYC pending: verify the payee's KYC before paying"
    s = period_statement(
        "2025-01", replace(payee(withholding="0.15"), hold=kyc), [(AccountTerms("a"), AccountState(), earned(100))], USD
    )
    assert (s.paid, s.held, s.withheld, s.held_reason, s.carried_out) == (0, D(85), D(15), kyc, 0)
    assert (s.lines[0].paid, s.lines[0].held) == (0, D(85)) and conserves(s.lines[0])
    below = period_statement(
        "2025-01", replace(payee(threshold="500"), hold=kyc), [(AccountTerms("a"), AccountState(), earned(100))], USD
    )
    assert (below.held, below.held_reason, below.carried_out) == (0, "", D(100))  # nothing payable, nothing held


@pytest.mark.parametrize(
    "terms, state, activity, message",
    [
        (
            AccountTerms("a"),
            AccountState(),
            AccountActivity(returned=D(1)),
            "a: activity.returned is already net of withholding",
        ),
        (
            PAYMENTS,
            AccountState(),
            earned(1),
            "payments: activity.earnings must be empty on an already_withheld account",
        ),
        (PAYMENTS, AccountState(), AccountActivity(advances=D(1)), "payments: activity.advances must be empty"),
        (
            replace(PAYMENTS, minimum_guarantee=D(1)),
            AccountState(),
            AccountActivity(),
            "payments: minimum_guarantee must be empty",
        ),
        (
            replace(PAYMENTS, reserve_rate=D("0.1")),
            AccountState(),
            AccountActivity(),
            "payments: reserve_rate must be empty",
        ),
        (PAYMENTS, AccountState(unrecouped=D(1)), AccountActivity(), "payments: state.unrecouped must be empty"),
    ],
)
def test_returned_payouts_live_on_an_account_that_is_never_withheld_again(terms, state, activity, message):
    with pytest.raises(StatementError, match=message):
        period_statement("2025-01", payee(), [(terms, state, activity)], USD)


def test_next_state_carries_the_line_forward():
    line = run([AccountActivity(earnings={"USD": D(-5)}, advances=D(7))], terms=[AccountTerms("a", reserve_rate=D(1))])[
        0
    ].lines[0]
    assert next_state(line) == AccountState(carried=D(-5), unrecouped=D(7), reserves=())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"period": "2025-13"}, "period: period '2025-13' is not a month"),
        ({"who": payee(withholding="1.5")}, "payee.withholding_rate must be a fraction between 0 and 1"),
        ({"who": PayeeTerms("p", "USD", 10.0)}, "payee.threshold must be a finite Decimal"),
        ({"who": payee(currency="usd")}, "payee.currency 'usd' is not an ISO 4217"),
        ({"who": PayeeTerms("p", "USD", hold=None)}, "payee.hold must be text"),
        ({"terms": AccountTerms("a", reserve_rate=D("-0.1"))}, "a: reserve_rate must be >= 0"),
        ({"terms": AccountTerms("a", reserve_installments=0)}, "a: reserve_installments must be an integer >= 1"),
        ({"terms": AccountTerms("a", minimum_guarantee=D("1.005"))}, "a: minimum_guarantee must be a whole"),
        ({"activity": AccountActivity(advances=D("10.001"))}, "a: activity.advances must be a whole number"),
        ({"activity": AccountActivity(earnings={"USD": 1.5})}, r"a: activity.earnings\['USD'\] must be a finite"),
        ({"state": AccountState(unrecouped=D(-1))}, "a: state.unrecouped must be >= 0"),
        ({"state": AccountState(reserves=(("2025-03", D(1)), ("2025-02", D(1))))}, "must be sorted"),
        ({"rates": {"USD": D(0)}, "activity": earned(1)}, r"rates\['USD'\] must be > 0"),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(change, message):
    args = {
        "period": "2025-01",
        "who": payee(),
        "terms": AccountTerms("a"),
        "state": AccountState(),
        "activity": AccountActivity(),
        "rates": USD,
    } | change
    with pytest.raises(StatementError, match=message):
        period_statement(args["period"], args["who"], [(args["terms"], args["state"], args["activity"])], args["rates"])


def test_account_ids_are_unique_and_run_periods_knows_every_account():
    twice = [(AccountTerms("a"), AccountState(), AccountActivity())] * 2
    with pytest.raises(StatementError, match="unique"):
        period_statement("2025-01", payee(), twice, USD)
    with pytest.raises(StatementError, match=r"names unknown accounts \['b'\]"):
        run([{"b": earned(1)}])


def test_run_periods_fills_months_without_activity():
    s = run_periods(payee(), {"a": AccountTerms("a")}, {"2025-01": {"a": earned(1)}, "2025-03": {}}, {"2025-01": USD})
    assert [x.period for x in s] == ["2025-01", "2025-02", "2025-03"]


# --- published worked examples, re-derived -------------------------------------------------------------


def test_published_reprtoir_recoupment():
    """Reprtoir, "Royalty Recoupments" (https://docs.reprtoir.com/docs/about-royalty-recoupments):
    "The Organization spent $10,000 to record Max's new single. On the first Royalty Statement, Max earned
    $15,000. The Organization then keeps $10,000 to recoup its Expenses and pays Max $5,000 in Royalties."
    Mapping: recoupable recording costs are an advance (activity.advances) of the same period."""
    s = run([AccountActivity(earnings={"USD": D(15000)}, advances=D(10000))])[0]
    assert (s.lines[0].recouped, s.paid, s.lines[0].unrecouped_out) == (D(10000), D(5000), 0)


def test_published_easy_royalties_reserve_for_returns():
    """Easy Royalties, "Reserve for Returns" (http://easyroyaltiesusa.com/2015/03/reserve-for-returns-2/):
    "Period 1: 10% Reserve is withheld": royalty expense $1,000, royalties payable $900, reserve $100.
    "Period 2: 10% Reserve is withheld and Period 1 reserve is released": expense $2,000, payable $1800
    plus the released $100, reserve withheld $200. Released in the next period: release_after 1, one
    installment; a third period with no sales releases the $200."""
    terms = [AccountTerms("a", reserve_rate=D("0.10"))]
    s = run([earned(1000), earned(2000), earned(0)], terms=terms)
    assert column(s, "reserve_held") == amounts(100, 200, 0)
    assert column(s, "reserve_released") == amounts(0, 100, 200)
    assert [x.paid for x in s] == amounts(900, 1900, 200)


def test_published_curve_reserve_on_the_royalty_released_fifty_fifty():
    """Curve Royalty Systems, "Using Reserves to Delay Royalties"
    (https://help.curveroyaltysystems.com/article/55-using-reserves-to-delay-royalties): "a 25% royalty rate
    for all Physical sales and apply a 20% Reserve. If, for example, there are £100 in Physical sales, the
    artist is due £25 in royalties but we will take a £5 ( = 20% of £25) Reserve. Meaning the artist will
    earn £20 in their upcoming statement, with £5 to be added in a later statement." Release schedule
    "50 & 50": "50% of reserves are released in the next royalty period & the remaining 50% in the 2nd
    period". "reserves will only be taken on positive sales".
    Mapping: our reserve is on the payee's royalty (Curve's default "Post-Calculation"). Curve's
    "Pre-Calculation" reserve, "£20 ( = 20% of £100)" of sales, is our reserve_rate = 20% × £100 / £25 = 0.8."""
    gbp = {"GBP": D(1)}
    royalty = AccountActivity(earnings={"GBP": D(100) * D("0.25")})
    post = [AccountTerms("a", reserve_rate=D("0.20"), reserve_installments=2)]
    s = run([royalty, AccountActivity(), AccountActivity()], terms=post, who=payee(currency="GBP"), rates=gbp)
    assert s[0].lines[0].reserve_held == D(5) and [x.paid for x in s] == amounts(20, "2.50", "2.50")
    pre = [AccountTerms("a", reserve_rate=D(20) / D(25), reserve_installments=2)]
    s = run([royalty], terms=pre, who=payee(currency="GBP"), rates=gbp)[0]
    assert (s.lines[0].reserve_held, s.paid) == (D(20), D(5))
    returns = run([earned(-25, "GBP")], terms=post, who=payee(currency="GBP"), rates=gbp)[0].lines[0]
    assert returns.reserve_held == 0


def test_published_details_threshold_and_negative_carryover():
    """DETAILS, "Opening balances and Period Result Carryovers"
    (https://www.details.eu/helpdesk/opening-balances-and-period-result-carryovers/): "if the overall period
    result is -1000 EUR or +30 EUR, both would be automatically carried over as an opening balance to the
    next period if the minimum payment threshold is set to 50 EUR. Conversely, total period results equal to
    or higher than the minimum payment threshold would not be carried over"."""
    who, eur = payee(threshold="50", currency="EUR"), {"EUR": D(1)}
    negative = run([earned(-1000, "EUR")], who=who, rates=eur)[0]
    assert (negative.paid, negative.carried_out, negative.carried_reason) == (0, D(-1000), "negative balance")
    small = run([earned(30, "EUR"), earned(20, "EUR")], who=who, rates=eur)
    assert (small[0].paid, small[0].carried_out, small[0].carried_reason) == (0, D(30), "below threshold")
    assert (small[1].lines[0].opening, small[1].paid, small[1].carried_out) == (D(30), D(50), 0)  # equal: paid


def test_published_getty_fifty_dollar_minimum_rolls_over():
    """Getty Images Music, "Minimum Payment Amount" (http://musicfaq.gettyimages.com/minimum-payment-amount/):
    "a $50 minimum payment threshold. If the royalties reported on your monthly royalty statement is under
    the threshold, the total amount will roll over to the next month until additional placements of tracks
    generate royalties, that when added to amount rolled over, meet or exceed the minimum pay out amount of
    $50." Monthly statements, as ours."""
    s = run([earned(20), earned(15), earned("14.99"), earned("0.01")], who=payee(threshold="50"))
    assert [x.carried_out for x in s] == amounts(20, 35, "49.99", 0)
    assert [x.paid for x in s] == amounts(0, 0, 0, 50)


def test_published_partridge_threshold_that_must_be_exceeded():
    """Partridge Publishing, "Minimum Threshold for Payments"
    (https://partridgepublishing.com/en-sg/faq/pricing-and-royalty/minimum-threshold-for-payments): "If your
    quarterly determination of royalties in any calendar year exceeds seventy-five USD ($75), the payment
    shall be issued ... If the quarterly royalties due are equal to or less than seventy-five USD ($75), the
    quarterly royalty amount will be carried forward and added to the subsequent quarterly royalty amount".
    Mapping: our threshold is met when reached; "exceeds $75" in whole cents is a threshold of $75.01.
    Each engine period stands for one quarter."""
    s = run([earned(75), earned("0.01")], who=payee(threshold="75.01"))
    assert (s[0].paid, s[0].carried_out) == (0, D(75)) and s[1].paid == D("75.01")


def test_published_easy_royalties_minimum_guarantee_top_up():
    """Easy Royalties, "Minimum Guaranteed Royalties"
    (http://easyroyaltiesusa.com/2011/07/minimum-guaranteed-royalties/): "Contract promises a minimum royalty
    of $10,000 per year. If the royalty earned is $8,000, an additional amount of $2,000 is owed to bring
    earnings up to the minimum promised." One engine period stands for the year. The page does not say
    whether the $2,000 is recoupable; ours is (unrecouped_out), as in the short-workings example below."""
    s = run([earned(8000)], terms=[AccountTerms("a", minimum_guarantee=D(10000))])[0]
    assert (s.lines[0].mg_topup, s.paid, s.lines[0].unrecouped_out) == (D(2000), D(10000), D(2000))


def test_published_short_workings_recouped_from_surplus_over_the_minimum():
    """financenumericals, "Recoupment of Short Workings of Royalty with examples"
    (https://financenumericals.blogspot.com/2018/08/recoupment-of-short-workings-of-royalty.html): minimum
    rent Rs. 900, 1,200, 1,800, 2,500, 3,000 for years 1-5, royalty Rs. 0.60 per ton on outputs 1,200,
    1,800, 2,600, 4,900, 5,700 tons (royalty 720, 1,080, 1,560, 2,940, 3,420), short workings recoupable
    over the whole lease. Published table: short working 180, 120, 240; surplus 440 and 420 in years 4-5;
    short working recouped 440 and 100; payment to landlord 900, 1,200, 1,800, 2,500, 3,320.
    Mapping: landlord = payee, minimum rent = minimum_guarantee (varying by year, so each year is one
    `period_statement` call with that year's terms), short working = mg_topup, recoupment = recouped, payment
    = paid. Recouping only from the surplus over the minimum rent is exactly our step 6."""
    minimum_rent = amounts(900, 1200, 1800, 2500, 3000)
    tons = [1200, 1800, 2600, 4900, 5700]
    state, period, lines = AccountState(), "2025-01", []
    for mg, output in zip(minimum_rent, tons):
        activity = AccountActivity(earnings={"INR": output * D("0.60")})
        s = period_statement(period, payee(currency="INR"), [(AccountTerms("a", mg), state, activity)], {"INR": D(1)})
        lines.append(s.lines[0])
        state, period = next_state(s.lines[0]), add_months(period, 1)
    assert [x.earnings for x in lines] == amounts(720, 1080, 1560, 2940, 3420)
    assert [x.mg_topup for x in lines] == amounts(180, 120, 240, 0, 0)
    assert [x.recouped for x in lines] == amounts(0, 0, 0, 440, 100)
    assert [x.paid for x in lines] == amounts(900, 1200, 1800, 2500, 3320)
    assert [x.unrecouped_out for x in lines] == amounts(180, 300, 540, 100, 0)


def test_published_anime_news_network_guarantee_paid_upfront():
    """Anime News Network, "Minimum Guarantee" (https://www.animenewsnetwork.com/encyclopedia/lexicon.php?id=124):
    "if the royalty rate on an anime is "50% of net revenue, with a minimum guaranty of $100,000," ... The
    initial $100,000 covers the first $100,000 of royalties (on the first $200,000 of net revenue). Once net
    revenue goes over $200,000, the licensee will have to start paying 50% of all subsequent revenue".
    Mapping: a guarantee paid upfront is an advance here (activity.advances), recouped from the royalty;
    AccountTerms.minimum_guarantee is a per-period floor, a different thing. $150,000 then $90,000 of net
    revenue: nothing until $200,000, then 50% of the $40,000 above it."""
    rate = D("0.50")
    s = run([AccountActivity(earnings={"USD": D(150000) * rate}, advances=D(100000)), earned(D(90000) * rate)])
    assert column(s, "recouped") == amounts(75000, 25000)
    assert [x.paid for x in s] == amounts(0, 20000)


def test_published_cross_collateralised_versus_separate_albums():
    """Learning Guitar-Making Your Own Music, "Royalties And Recoupment Part Two"
    (https://mainekick-musicmaking.blogspot.com/2011_06_08_archive.html): "you get $200,000 for your first
    album. plus another $200,000 for the second album ... you make $20,000 in royalties on album number one,
    and album number two earns $220,000 in royalties. If the two albums are not cross-collateralized, you
    would get nothing for album number one earned only earned back $20,000 of the $200,000 advance, so it's
    $180,000 unrecouped."
    Separate contracts are two accounts: album one pays nothing ($180,000 unrecouped), album two recoups its
    $200,000 and pays $20,000. Cross-collateralised they are one account: $240,000 against $400,000 pays
    nothing and leaves $160,000 unrecouped."""
    advance = D(200000)
    separate = run(
        [
            {
                "one": AccountActivity(earnings={"USD": D(20000)}, advances=advance),
                "two": AccountActivity(earnings={"USD": D(220000)}, advances=advance),
            }
        ],
        terms=[AccountTerms("one"), AccountTerms("two")],
    )[0]
    assert [(x.paid, x.unrecouped_out) for x in separate.lines] == [(0, D(180000)), (D(20000), 0)]
    assert separate.paid == D(20000)
    crossed = run([AccountActivity(earnings={"USD": D(240000)}, advances=2 * advance)])[0]
    assert (crossed.paid, crossed.lines[0].unrecouped_out) == (0, D(160000))


def test_published_oracle_fx_conversion():
    """Oracle JD Edwards, "Example: Realized Gain/Loss on Foreign Currency Invoices and Receipts"
    (https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/example-realized-gain-loss-on-foreign-currency-invoices-and.html):
    "The foreign currency invoice on January 1 is 500.00 USD, which is 303.60 GBP in the domestic currency.
    500.00 USD × 0.6072 = 303.60 GBP" ("1 USD = 0.6072 GBP").
    Mapping: with GBP as reporting currency, USD's rate_to_reporting is 0.6072. With USD as reporting
    currency GBP's rate is 1 / 0.6072 (a repeating decimal): the 40-digit conversion still gives 303.60."""
    gbp = payee(currency="GBP")
    assert run([earned("500.00")], who=gbp, rates={"GBP": D(1), "USD": D("0.6072")})[0].earnings == D("303.60")
    usd_reporting = {"USD": D(1), "GBP": D(1) / D("0.6072")}
    assert run([earned("500.00")], who=gbp, rates=usd_reporting)[0].earnings == D("303.60")


def test_published_details_reserve_liquidated_over_four_periods():
    """DETAILS, "How to set Return Reserves" (https://www.details.eu/helpdesk/how-to-set-return-reserves/),
    contract clause: "a royalty reserve ... of up to twenty (20%) percent of the royalty earnings ... Each
    royalty reserve shall be liquidated equally and in full over the four (4) semi-annual accounting periods
    following the accounting period during which the applicable reserve is originally established."
    Mapping: reserve_rate 0.20, release_after 1, four installments; each engine period stands for one
    accounting period. 20% of 1,000.15 is 200.03: equal installments of cents put the odd cents first."""
    terms = [AccountTerms("a", reserve_rate=D("0.20"), reserve_installments=4)]
    s = run([earned("1000.15")] + [AccountActivity()] * 4, terms=terms)
    assert column(s, "reserve_held")[0] == D("200.03")
    assert column(s, "reserve_released") == amounts(0, "50.01", "50.01", "50.01", "50.00")


def test_published_easy_royalties_statement_is_one_cent_off_and_ours_conserves():
    """Easy Royalties, "Reserves for Returns" (http://easyroyaltiesusa.com/2013/09/reserves-for-returns/):
    "Royalty Expense $1106.89 / Royalties Payable $932.36 / Royalty Reserves $174.54 (the net of $221.38
    withheld and $46.84 recovered)" (dot leaders dropped). $221.38 is 20% of $1,106.89 (221.378); the
    $46.84 recovered is an earlier reserve falling due. We reproduce the withheld and recovered figures
    exactly; the payable that conserves is $932.35: the page's own payable and net reserve sum to
    $1,106.90, a cent over the expense."""
    due = AccountState(reserves=(("2025-01", D("46.84")),))
    terms = AccountTerms("a", reserve_rate=D("0.20"), reserve_installments=1)
    line = period_statement("2025-01", payee(), [(terms, due, earned("1106.89"))], USD).lines[0]
    assert (line.reserve_held, line.reserve_released, line.paid) == (D("221.38"), D("46.84"), D("932.35"))
    assert conserves(line)


# --- properties ----------------------------------------------------------------------------------------

cents = st.integers(-50_000, 500_000).map(lambda n: D(n) * CENT)
positive_cents = st.integers(0, 200_000).map(lambda n: D(n) * CENT)
fractions_of_one = st.integers(0, 10_000).map(lambda n: D(n).scaleb(-4))
ledger_amounts = st.integers(-5 * 10**12, 5 * 10**13).map(lambda n: D(n).scaleb(-10))  # 10 dp, as the ledger
CURRENCIES = ("USD", "EUR", "GBP")


@st.composite
def scenarios(draw):
    """A payee with 1-3 accounts, random terms, opening states and 1-8 months of activity."""
    ids = [f"acct-{i}" for i in range(draw(st.integers(1, 3)))]
    who = PayeeTerms(
        "p", draw(st.sampled_from(CURRENCIES)), draw(st.sampled_from(amounts(0, 10, 50, 500))), draw(fractions_of_one)
    )
    terms = {
        a: AccountTerms(
            a,
            minimum_guarantee=draw(st.one_of(st.just(D(0)), positive_cents)),
            reserve_rate=draw(fractions_of_one),
            reserve_release_after=draw(st.integers(1, 3)),
            reserve_installments=draw(st.integers(1, 4)),
        )
        for a in ids
    }
    first = {a: AccountState(carried=draw(cents), unrecouped=draw(positive_cents)) for a in ids}
    activity = st.builds(
        AccountActivity,
        earnings=st.dictionaries(st.sampled_from(CURRENCIES), ledger_amounts, max_size=3),
        advances=st.one_of(st.just(D(0)), positive_cents),
    )
    terms["payments"] = AccountTerms("payments", already_withheld=True)
    first["payments"] = AccountState(carried=draw(positive_cents))
    months = draw(st.integers(1, 8))
    periods = [add_months("2025-01", i) for i in range(months)]
    activities = {p: draw(st.dictionaries(st.sampled_from(ids), activity)) for p in periods}
    for p in periods:
        if returned := draw(st.one_of(st.just(D(0)), positive_cents)):
            activities[p]["payments"] = AccountActivity(returned=returned)
    rate = st.integers(500_000, 2_000_000).map(lambda n: D(n).scaleb(-6))
    rates = {p: {"USD": D(1), "EUR": draw(rate), "GBP": draw(rate)} for p in periods}
    return who, terms, activities, rates, first


def check_statement(s: Statement, who: PayeeTerms, terms) -> None:
    for line in s.lines:
        assert conserves(line), line
        assert line.paid >= 0 and line.withheld >= 0 and line.held >= 0
        assert line.held == 0 if not who.hold else line.paid == 0
        assert line.withheld == 0 or not terms[line.account_id].already_withheld
        assert line.unrecouped_in >= 0 and line.unrecouped_out >= 0
        guarantee = terms[line.account_id].minimum_guarantee
        assert guarantee == 0 or line.balance >= guarantee
        for value in (line.earnings, line.reserve_held, line.balance, line.paid, line.withheld, line.carried_out):
            assert value == round_money(value)
    total = sum(x.opening + x.returned + x.earnings + x.reserve_released + x.mg_topup for x in s.lines)
    assert total == s.paid + s.held + s.withheld + s.carried_out + sum(x.reserve_held + x.recouped for x in s.lines)
    assert s.paid == sum(x.paid for x in s.lines) and s.withheld == sum(x.withheld for x in s.lines)
    assert s.carried_out == sum(x.carried_out for x in s.lines)
    assert s.payable_gross == sum(max(x.balance, 0) for x in s.lines)
    assert s.paid >= 0
    if s.payable_gross < who.threshold or s.payable_gross == 0:
        assert s.paid == 0 and s.held == 0 and s.withheld == 0
    else:
        assert s.paid + s.held + s.withheld == s.payable_gross
        taxable = sum(max(x.balance, 0) for x in s.lines if not terms[x.account_id].already_withheld)
        assert s.withheld == round_money(taxable * who.withholding_rate)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_statement_conserves_to_the_cent_and_never_pays_below_threshold(scenario):
    who, terms, activities, rates, first = scenario
    statements = run_periods(who, terms, activities, rates, first)
    assert [s.period for s in statements] == sorted(activities)
    for before, after in zip(statements, statements[1:]):
        assert [x.opening for x in after.lines] == [x.carried_out for x in before.lines]
    for s in statements:
        check_statement(s, who, terms)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(ledger_amounts, min_size=1, max_size=4),
    fractions_of_one,
    st.integers(1, 4),
    st.integers(1, 5),
)
def test_reserve_released_over_time_equals_reserve_held(earnings, rate, after, installments):
    terms = [AccountTerms("a", reserve_rate=rate, reserve_release_after=after, reserve_installments=installments)]
    quiet = [AccountActivity()] * (after + installments)
    s = run([earned(e) for e in earnings] + quiet, terms=terms)
    assert sum(column(s, "reserve_held")) == sum(column(s, "reserve_released"))
    assert s[-1].lines[0].reserves_out == ()


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-(10**7), 10**7),
    st.lists(st.integers(0, 10**6).map(lambda n: D(n).scaleb(-3)), min_size=1, max_size=8).filter(any),
    st.sampled_from(amounts("0.01", "0.05", 1)),
)
def test_allocate_sums_exactly_is_deterministic_and_each_part_within_one_quantum(units, weights, quantum):
    total = D(units) * quantum
    parts = allocate(total, weights, quantum)
    assert sum(parts) == total and parts == allocate(total, weights, quantum) and len(parts) == len(weights)
    weight_sum = sum(Fraction(w) for w in weights)
    for part, weight in zip(parts, weights):
        assert part % quantum == 0
        assert abs(Fraction(part) - Fraction(total) * Fraction(weight) / weight_sum) < Fraction(quantum)


HOLD = "KYC pending: verify the payee's KYC before paying"


@st.composite
def payout_histories(draw):
    """A payee with 1-2 contract accounts over 1-8 months; each month's payout is paid, held (KYC) or fails at
    the bank."""
    who = PayeeTerms("p", "USD", draw(st.sampled_from(amounts(0, 10, 50))), draw(fractions_of_one))
    ids = [f"acct-{i}" for i in range(draw(st.integers(1, 2)))]
    month = st.tuples(
        st.dictionaries(st.sampled_from(ids), cents.map(lambda e: earned(e))),
        st.sampled_from(("paid", "held", "failed")),
    )
    return who, ids, draw(st.lists(month, min_size=1, max_size=8))


@settings(max_examples=300, deadline=None)
@given(payout_histories())
def test_withholding_is_taken_once_per_earning_and_nothing_is_paid_twice_however_payouts_are_held_or_fail(history):
    """Hypothesis, over any sequence of months, holds, releases and bank confirmations (paid / failed), run the way
    statement_run and batches do: a held or failed payout returns next month on the payments account.

    Rounding rule: each statement withholds round_money(rate × its taxable payable) — half away from zero, once per
    payee and month — where taxable is the payable of the contract accounts only. So the total withheld is
    rate × the total taxable earnings to within half a cent per statement, and returned money adds nothing to it."""
    who, ids, months = history
    terms = {a: AccountTerms(a) for a in ids} | {"payments": PAYMENTS}
    states = {a: AccountState() for a in terms}
    returned = transferred = withheld = expected = taxable_total = returned_total = sent_back = D(0)
    for i, (activities, outcome) in enumerate(months):
        accounts = [(t, states[a], activities.get(a, AccountActivity())) for a, t in terms.items() if a != "payments"]
        accounts.append((PAYMENTS, states["payments"], AccountActivity(returned=returned)))
        month_terms = replace(who, hold=HOLD if outcome == "held" else "")
        s = period_statement(add_months("2025-01", i), month_terms, accounts, USD)
        check_statement(s, month_terms, terms)
        states = {line.account_id: next_state(line) for line in s.lines}
        taxable = sum(x.paid + x.held + x.withheld for x in s.lines if x.account_id != "payments")
        expected += round_money(taxable * who.withholding_rate)
        taxable_total += taxable
        withheld += s.withheld
        returned_total += returned
        transferred += s.paid if outcome == "paid" else 0
        returned = s.held + (s.paid if outcome == "failed" else 0)
        sent_back += returned
    earnings = sum(e.earnings["USD"] for activities, _ in months for e in activities.values())
    contracts_carried = sum(states[a].carried for a in ids)
    assert taxable_total == earnings - contracts_carried  # taxable is exactly what the contract accounts paid out
    assert withheld == expected
    assert abs(withheld - taxable_total * who.withholding_rate) <= D("0.005") * len(months)
    # every cent earned is paid once, withheld once, or still owed (carried, or held / failed and due back next month)
    assert transferred + withheld + contracts_carried + states["payments"].carried + returned == earnings
    assert returned_total == sent_back - returned  # each hold or failure came back exactly once
