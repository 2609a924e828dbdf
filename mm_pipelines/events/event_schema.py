"""The canonical analytics event, and its validation as ClickHouse SQL.

Validation runs inside ClickHouse over a whole batch of raw messages (ClickHouse parses JSON at
millions of rows per CPU-second), so no Python object is built per event. Each message is parsed
once, and the same pass yields its verdict and its typed columns. The same expressions validate
Kafka batches and files loaded with `mm events load`.
"""

from __future__ import annotations

EVENT_TYPES = ("impression", "click", "conversion")
SCHEMA_VERSION = 1

KNOWN_FIELDS = (
    "event_id",
    "event_type",
    "occurred_at",
    "user_id",
    "channel",
    "campaign_id",
    "creative_id",
    "asset_id",
    "order_id",
    "revenue",
    "currency",
    "sku",
    "schema_version",
)

# Amounts: never read through a float.
MONEY_FIELDS = ("revenue",)

# Every field an event of any type must carry; touches also need their ad, conversions their order.
REQUIRED_FIELDS = ("event_id", "event_type", "occurred_at", "user_id", "channel")
REQUIRED_FOR_TOUCHES = ("campaign_id", "creative_id")
REQUIRED_FOR_CONVERSIONS = ("order_id", "revenue", "currency")

# Active ISO 4217 codes.
CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
    KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD
    SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD
    XOF XPF YER ZAR ZMW ZWG""".split()
)

# How far in the future an occurred_at may be (clock skew between producers and us).
FUTURE_TOLERANCE_S = 300

# The largest message the pipeline reads, Kafka's own default limit (message.max.bytes): an event is a
# few hundred bytes, and anything bigger is dead-lettered rather than parsed.
MAX_MESSAGE_BYTES = 1024 * 1024

# What raw.events.revenue, Decimal(38, 10), holds: an amount with more digits is refused, never rounded.
REVENUE_INTEGER_DIGITS = 28
REVENUE_SCALE = 10

_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
# International (+CC …) or North-American ((555) 123-4567) phone numbers inside a JSON string.
_PHONE_NUMBER = r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}|\(\d{3}\) ?\d{3}-\d{4}"
_PHONE = rf"\"[^\"]*(?:{_PHONE_NUMBER})[^\"]*\""
# Card numbers: 13–19 digits, optionally grouped by spaces or dashes, standing alone inside a JSON
# string (digits next to letters, as in hex ids, are not a card number).
_STRING_TOKENS = r'"([^"]*)"'
_CARD_CANDIDATES = r"(?:^|[^0-9A-Za-z])((?:\d[ -]?){12,18}\d)(?:[^0-9A-Za-z]|$)"
# A decimal number as ClickHouse's toDecimal parsers read it: integer digits, fraction digits, exponent.
_DECIMAL_PARTS = r"^[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$"


def sql_string(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _luhn_valid_sql(digits: str) -> str:
    """ClickHouse expression: does the digit string `digits` pass the Luhn check?"""
    rev = f"arrayMap(c -> toUInt8OrZero(c), reverse(splitByString('', {digits})))"
    summed = (
        f"arraySum(arrayMap((d, i) -> if(i % 2 = 0, if(d * 2 > 9, d * 2 - 9, d * 2), d), {rev}, arrayEnumerate({rev})))"
    )
    return f"({summed} % 10 = 0)"


def _text(name: str) -> str:
    return f"f_{name}"


def _has(name: str) -> str:
    return f"h_{name}"


def parsed_sql(source: str) -> str:
    """SELECT every column of `source` (which has a `raw` column) plus each message parsed once:
    `fields` (every top-level field as raw JSON text), per known field `f_<name>` (strings
    unquoted, numbers as written, never through a float; '' if absent or null) and `h_<name>`
    (present and not null), and `ts` (occurred_at as a timestamp, or NULL)."""
    per_field = []
    for name in KNOWN_FIELDS:
        v = f"fields[{sql_string(name)}]"
        number = v
        if name in MONEY_FIELDS:
            # ClickHouse re-prints a JSON number through a float, so take its digits as written; the
            # text scanner may find a nested field of the same name, hence the check on the value.
            literal = f"trimBoth(simpleJSONExtractRaw(raw, {sql_string(name)}))"
            number = f"if(toFloat64OrNull({literal}) = toFloat64OrNull({v}), {literal}, '')"
        per_field.append(
            f"multiIf(startsWith({v}, '\"'), JSONExtractString({v}), {v} = 'null', '', {number}) AS {_text(name)}"
        )
        per_field.append(f"({v} NOT IN ('', 'null')) AS {_has(name)}")
    return f"""SELECT *, parseDateTime64BestEffortOrNull({_text("occurred_at")}, 3, 'UTC') AS ts FROM (
        SELECT *, {", ".join(per_field)} FROM (
            SELECT *, CAST(JSONExtractKeysAndValuesRaw(raw), 'Map(String, String)') AS fields FROM {source}))"""


# Every kind of PII needs one of these, so the exact (costlier) checks run only where one appears.
_PII_HINT = r"@|\+\d|\(\d{3}\)|(?:\d[ -]?){12,18}\d"


def _card_numbers_sql(text: str, tokens: bool) -> str:
    """The Luhn-valid 13–19 digit card numbers in `text` (as written, separators included): inside its
    JSON string tokens, or with `tokens` False anywhere in it."""
    within = (
        f"arrayFlatten(arrayMap(t -> extractAll(t, {sql_string(_CARD_CANDIDATES)}), "
        f"extractAll({text}, {sql_string(_STRING_TOKENS)})))"
    )
    candidates = within if tokens else f"extractAll({text}, {sql_string(_CARD_CANDIDATES)})"
    digits = "replaceRegexpAll(m, '[^0-9]', '')"
    return f"arrayFilter(m -> length({digits}) BETWEEN 13 AND 19 AND {_luhn_valid_sql(digits)}, {candidates})"


# Each kind of personal data: its name in reasons, and its test of a piece of JSON text.
_PII_KINDS = (
    ("an e-mail address", lambda x: f"match({x}, {sql_string(_EMAIL)})"),
    ("a phone number", lambda x: f"match({x}, {sql_string(_PHONE)})"),
    ("a payment card number", lambda x: f"notEmpty({_card_numbers_sql(x, tokens=True)})"),
)


def _pii_reason_sql(kind: str, test) -> str:
    """'PII: <kind> appears in field <name>': the first top-level field whose value (or name) holds it. A
    name that itself looks like personal data is not repeated; unparsed messages say "the message"."""
    quoted = "concat('\"', pk, '\"')"  # names are unquoted; the tests read JSON text
    field = f"arrayFirst((pk, pv) -> {test('pv')} OR {test(quoted)}, mapKeys(fields), mapValues(fields))"
    where = (
        f"multiIf({field} = '', 'the message', match({field}, {sql_string(_PII_HINT)}), 'a field name', "
        f"concat('field ', {field}))"
    )
    return f"concat({sql_string(f'PII: {kind} appears in ')}, {where})"


def stored_raw_sql(raw: str = "raw", error: str = "error") -> str:
    """What a dead letter keeps of its message: the message as it came, except that one rejected for PII
    has every e-mail address, phone number and card number in it replaced by a marker (its topic,
    partition and offset, or file and line, find the original). Evaluated on dead letters only."""
    redacted = f"replaceRegexpAll({raw}, {sql_string(_EMAIL)}, '[redacted e-mail]')"
    redacted = f"replaceRegexpAll({redacted}, {sql_string(_PHONE_NUMBER)}, '[redacted phone]')"
    redacted = (
        "arrayFold((acc, card) -> replaceAll(acc, card, '[redacted card]'), "
        f"{_card_numbers_sql(redacted, tokens=False)}, {redacted})"
    )
    return f"if(startsWith({error}, 'PII'), {redacted}, {raw})"


def _exceeds_decimal_sql(text: str) -> str:
    """ClickHouse expression: does the decimal number `text` have more significant digits before or after
    the point than Decimal(38, 10) holds? (Trailing zeros of a fraction and leading zeros are not digits
    lost.) toDecimal128 would silently drop the extra fraction digits, or return NULL for a big integer."""
    parts = f"extractGroups({text}, {sql_string(_DECIMAL_PARTS)})"
    digits = f"concat({parts}[1], {parts}[2])"
    exponent = f"toInt32OrNull(if({parts}[3] = '', '0', {parts}[3]))"
    point = f"(length({parts}[1]) + {exponent})"  # where the decimal point falls in `digits`
    leading = f"(length({digits}) - length(trimLeft({digits}, '0')))"
    significant = f"(length(trimRight({digits}, '0')))"
    return (
        f"(notEmpty({parts}) AND notEmpty(trimLeft({digits}, '0')) AND ({exponent} IS NULL "
        f"OR {point} - {leading} > {REVENUE_INTEGER_DIGITS} OR {significant} - {point} > {REVENUE_SCALE}))"
    )


def error_sql(now: str = "now64(3, 'UTC')") -> str:
    """Over `parsed_sql`: '' for a valid event, else the first reason it is invalid. A message's
    `problem` (what the bus said is wrong with it, e.g. a null value) is such a reason too."""
    f, has = _text, _has
    present = lambda name: f"({has(name)} AND {f(name)} != '')"  # noqa: E731
    types = ", ".join(sql_string(t) for t in EVENT_TYPES)
    currencies = ", ".join(sql_string(c) for c in sorted(CURRENCIES))
    revenue = f"toDecimal128OrNull({f('revenue')}, {REVENUE_SCALE})"
    hint = f"match(raw, {sql_string(_PII_HINT)})"
    # PII first: a message carrying personal data is recognised as such whatever else is wrong with it,
    # so that its stored copy is redacted (stored_raw_sql).
    clauses: list[tuple[str, str]] = [
        (f"{hint} AND {test('raw')}", _pii_reason_sql(kind, test)) for kind, test in _PII_KINDS
    ]
    clauses += [
        ("problem != ''", "problem"),
        (
            f"length(raw) > {MAX_MESSAGE_BYTES}",
            "concat('the message is ', toString(length(raw)), "
            f"' bytes, more than the {MAX_MESSAGE_BYTES} (1 MiB) an event may have')",
        ),
        ("NOT isValidJSON(raw)", "'malformed JSON: the message is not a JSON document'"),
        ("JSONType(raw) != 'Object'", "'malformed event: the message is JSON but not an object'"),
        (
            f"{has('revenue')} AND NOT startsWith(fields['revenue'], '\"') AND {f('revenue')} = ''",
            "'revenue is a JSON number whose digits could not be read exactly: send it as a string, e.g. \"19.99\"'",
        ),
    ]
    for name in REQUIRED_FIELDS:
        clauses.append((f"NOT {present(name)}", sql_string(f"missing required field {name}")))
    clauses += [
        (
            f"{f('event_type')} NOT IN ({types})",
            f"concat('event_type ', {f('event_type')}, ' is not one of {', '.join(EVENT_TYPES)}')",
        ),
        (
            f"NOT match({f('occurred_at')}, {sql_string(_RFC3339)}) OR ts IS NULL",
            f"concat('occurred_at ', {f('occurred_at')}, ' is not an RFC 3339 timestamp with a time zone')",
        ),
        (
            f"ts > {now} + INTERVAL {FUTURE_TOLERANCE_S} SECOND",
            f"concat('occurred_at ', {f('occurred_at')}, ' is in the future')",
        ),
    ]
    for name in REQUIRED_FOR_TOUCHES:
        clauses.append(
            (
                f"{f('event_type')} != 'conversion' AND NOT {present(name)}",
                sql_string(f"missing required field {name} for a touch event"),
            )
        )
    for name in REQUIRED_FOR_CONVERSIONS:
        clauses.append(
            (
                f"{f('event_type')} = 'conversion' AND NOT {present(name)}",
                sql_string(f"missing required field {name} for a conversion"),
            )
        )
    clauses += [
        (
            f"{has('revenue')} AND {_exceeds_decimal_sql(f('revenue'))}",
            f"concat('revenue ', {f('revenue')}, ' has more precision than supported: at most "
            f"{REVENUE_INTEGER_DIGITS} digits before the decimal point and {REVENUE_SCALE} after it')",
        ),
        (
            f"{has('revenue')} AND ({revenue} IS NULL OR {revenue} < 0)",
            f"concat('revenue ', {f('revenue')}, ' is not a non-negative decimal amount')",
        ),
        (
            f"{present('currency')} AND {f('currency')} NOT IN ({currencies})",
            f"concat('currency ', {f('currency')}, ' is not an ISO 4217 code')",
        ),
        (
            f"{has('schema_version')} AND toUInt16OrNull({f('schema_version')}) IS NULL",
            f"concat('schema_version ', {f('schema_version')}, ' is not a whole number')",
        ),
    ]
    parts = []
    for cond, reason in clauses:
        parts += [cond, reason]
    return f"multiIf({', '.join(parts)}, '')"


EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "occurred_at",
    "user_id",
    "channel",
    "campaign_id",
    "creative_id",
    "asset_id",
    "order_id",
    "revenue",
    "currency",
    "sku",
    "schema_version",
    "extra",
)


def validated_sql(source: str, now: str = "now64(3, 'UTC')") -> str:
    """SELECT over `source` (columns partition, offset, raw, problem — '' unless the bus found the
    message unreadable): partition, offset, raw, `error` ('' if valid) and the typed columns of
    raw.events (meaningful where the event is valid).

    Read `error` together with the typed columns: alone, the parsed fields are needed only inside
    multiIf's lazy branches, and ClickHouse re-parses them there clause by clause (10x slower)."""
    f, has = _text, _has
    opt = lambda name: f"if({has(name)}, {f(name)}, NULL)"  # noqa: E731
    known = ", ".join(sql_string(k) for k in KNOWN_FIELDS)
    columns = [
        "partition",
        "offset",
        "raw",
        f"{error_sql(now)} AS error",
        f"{f('event_id')} AS event_id",
        f"{f('event_type')} AS event_type",
        "ifNull(ts, toDateTime64(0, 3, 'UTC')) AS occurred_at",
        f"{f('user_id')} AS user_id",
        f"{f('channel')} AS channel",
        f"{f('campaign_id')} AS campaign_id",
        f"{f('creative_id')} AS creative_id",
        f"{f('asset_id')} AS asset_id",
        f"{opt('order_id')} AS order_id",
        f"toDecimal128OrNull({opt('revenue')}, {REVENUE_SCALE}) AS revenue",
        f"{opt('currency')} AS currency",
        f"{opt('sku')} AS sku",
        f"toUInt16OrDefault({f('schema_version')}, toUInt16({SCHEMA_VERSION})) AS schema_version",
        # Unknown fields are kept, each as its raw JSON text.
        f"mapFilter((k, v) -> k NOT IN ({known}), fields) AS extra",
    ]
    return f"SELECT {', '.join(columns)} FROM ({parsed_sql(source)})"
