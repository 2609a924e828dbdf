"""Payout exports: a bank-valid, deterministic pain.001, a content-addressed batch id, a signed manifest and
Finance's confirmations, each refusing bad input with the line and field named."""

import base64
import csv
import dataclasses
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from sepaxml.validation import try_valid_xml

from mm_pipelines.royalties import payouts
from mm_pipelines.royalties.money import add_months
from mm_pipelines.royalties.payouts import (
    CSV_NAME,
    MANIFEST_NAME,
    PAIN001_NAME,
    SIGNATURE_NAME,
    Confirmation,
    Debtor,
    PayoutError,
    PayoutLine,
    batch_id,
    generate_key_pair,
    load_signing_key,
    load_verify_key,
    manifest,
    pain001_xml,
    parse_confirmation,
    payouts_csv,
    public_key_text,
    sign_manifest,
    validate_lines,
    verify_export,
)

pytestmark = pytest.mark.unit

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}
DEBTOR = Debtor(name="Media Mill GmbH", iban="DE02120300000000202051", bic="BYLADEM1001")
EXECUTION = date(2026, 11, 2)
CREATED = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def line(payee: str, amount: str, iban: str = "DE89370400440532013000", **changes) -> PayoutLine:
    fields = dict(
        line_id=f"2026-10:{payee}",
        payee_id=payee,
        name=f"Creator {payee}",
        iban=iban,
        bic=None,
        amount=Decimal(amount),
        currency="EUR",
        reference=f"Royalties 2026-10 {payee}",
    )
    return PayoutLine(**{**fields, **changes})


LINES = [
    line("payee-7", "1234.56"),
    line("payee-2", "0.01", iban="FR1420041010050500013M02606", bic="BNPAFRPPXXX"),
    line("payee-13", "99.90", iban="NL91ABNA0417164300", name='Åsa Öberg, "Studio"'),
]
BATCH = batch_id("2026-10", "EUR", LINES)


def export_files() -> dict[str, bytes]:
    return {CSV_NAME: payouts_csv(BATCH, LINES), PAIN001_NAME: pain001_xml(BATCH, DEBTOR, LINES, EXECUTION, CREATED)}


# --- pain.001 ---------------------------------------------------------------------------------------------


def test_pain001_validates_against_the_xsd():
    try_valid_xml(pain001_xml(BATCH, DEBTOR, LINES, EXECUTION, CREATED), "pain.001.001.03")


def test_pain001_carries_the_lines_totals_and_deterministic_ids():
    root = ET.fromstring(pain001_xml(BATCH, DEBTOR, LINES, EXECUTION, CREATED))
    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", NS)
    assert header.findtext("p:MsgId", namespaces=NS) == BATCH
    assert header.findtext("p:CreDtTm", namespaces=NS) == "2026-11-01T09:30:00+00:00"
    assert header.findtext("p:NbOfTxs", namespaces=NS) == "3"
    assert Decimal(header.findtext("p:CtrlSum", namespaces=NS)) == Decimal("1334.47")
    (info,) = root.findall("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert info.findtext("p:PmtInfId", namespaces=NS) == f"{BATCH}-1"
    assert info.findtext("p:ReqdExctnDt", namespaces=NS) == "2026-11-02"
    assert info.findtext("p:DbtrAcct/p:Id/p:IBAN", namespaces=NS) == DEBTOR.iban
    transfers = {
        tx.findtext("p:PmtId/p:EndToEndId", namespaces=NS): (
            tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=NS),
            Decimal(tx.findtext("p:Amt/p:InstdAmt", namespaces=NS)),
            tx.find("p:Amt/p:InstdAmt", NS).get("Ccy"),
            tx.findtext("p:CdtrAgt/p:FinInstnId/p:BIC", namespaces=NS),
        )
        for tx in info.findall("p:CdtTrfTxInf", NS)
    }
    assert transfers == {item.line_id: (item.iban, item.amount, "EUR", item.bic) for item in LINES}


def test_pain001_is_byte_identical_for_the_same_batch_in_any_order():
    first = pain001_xml(BATCH, DEBTOR, LINES, EXECUTION, CREATED)
    assert pain001_xml(BATCH, DEBTOR, list(reversed(LINES)), EXECUTION, CREATED) == first
    assert pain001_xml(BATCH, DEBTOR, LINES, EXECUTION, CREATED) == first


def test_an_invalid_iban_is_rejected_before_any_xml_is_built(monkeypatch):
    def no_xml(*args, **kwargs):
        raise AssertionError("SepaTransfer must not be reached")

    monkeypatch.setattr(payouts, "SepaTransfer", no_xml)
    bad = [*LINES, line("payee-9", "5.00", iban="DE89370400440532013001")]
    with pytest.raises(PayoutError, match=r"payout line '2026-10:payee-9', field iban: .*mod-97"):
        pain001_xml(batch_id("2026-10", "EUR", bad), DEBTOR, bad, EXECUTION, CREATED)


def test_a_schema_violation_is_a_payout_error_with_the_validators_reason():
    huge = [line("payee-1", "123456789012345678.91")]  # 20 digits: past the XSD's totalDigits of 18
    with pytest.raises(PayoutError, match=r"does not validate .* at /Document/CstmrCdtTrfInitn/\w+/.*: .*digits"):
        pain001_xml(batch_id("2026-10", "EUR", huge), DEBTOR, huge, EXECUTION, CREATED)


def test_long_ids_are_shortened_to_35_characters_deterministically_and_still_unique():
    lines = [
        line(f"payee-{n}", "1.00", line_id=f"2026-10-supplementary-run:payee-with-a-long-id-{n}") for n in range(2)
    ]
    batch = batch_id("2026-10-supplementary-run", "EUR", lines)
    xml = pain001_xml(batch, DEBTOR, lines, EXECUTION, CREATED)
    try_valid_xml(xml, "pain.001.001.03")
    root = ET.fromstring(xml)
    ids = [element.text for element in root.iter() if element.tag.endswith(("}MsgId", "}PmtInfId", "}EndToEndId"))]
    assert len(ids) == 4 and len(set(ids)) == 4 and all(len(text) <= 35 for text in ids)
    assert xml == pain001_xml(batch, DEBTOR, lines, EXECUTION, CREATED)


def test_pain001_refuses_a_non_euro_batch_and_a_bad_debtor():
    usd = [line("payee-1", "10.00", currency="USD")]
    with pytest.raises(PayoutError, match="EUR only, this batch is in USD"):
        pain001_xml(batch_id("2026-10", "USD", usd), DEBTOR, usd, EXECUTION, CREATED)
    with pytest.raises(PayoutError, match="debtor, field iban"):
        pain001_xml(BATCH, dataclasses.replace(DEBTOR, iban="DE00120300000000202051"), LINES, EXECUTION, CREATED)


# --- validation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "FR1420041010050500013M02606",
        "BE68539007547034",
        "NO9386011117947",
    ],
)
def test_valid_ibans_pass(iban):
    validate_lines([line("payee-1", "1.00", iban=iban)])


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"iban": "DE89370400440532013001"}, "iban", "mod-97"),
        ({"iban": "DE8937040044053201300"}, "iban", "has 21 characters but a DE IBAN has 22"),
        ({"iban": "ZZ89370400440532013000"}, "iban", "no IBAN in the ISO 13616 registry"),
        ({"iban": "DE89 3704 0044 0532 0130 00"}, "iban", "electronic format"),
        ({"iban": "de89370400440532013000"}, "iban", "electronic format"),
        ({"bic": "deutdeff"}, "bic", "is not a BIC"),
        ({"amount": Decimal("0.00")}, "amount", "greater than 0"),
        ({"amount": Decimal("-5.00")}, "amount", "greater than 0"),
        ({"amount": Decimal("5")}, "amount", "exactly 2 decimal places"),
        ({"amount": Decimal("5.001")}, "amount", "exactly 2 decimal places"),
        ({"amount": 5.0}, "amount", "never a float"),
        ({"amount": Decimal("NaN")}, "amount", "not a finite Decimal"),
        ({"name": "  "}, "name", "is missing"),
        ({"reference": ""}, "reference", "is missing"),
        ({"currency": "eur"}, "currency", "ISO 4217"),
    ],
)
def test_a_bad_line_is_named_with_its_field(changes, field, message):
    bad = dataclasses.replace(line("payee-9", "5.00"), **changes)
    with pytest.raises(PayoutError, match=rf"payout line '2026-10:payee-9', field {field}: .*{re.escape(message)}"):
        validate_lines([LINES[0], bad])


def test_batch_level_errors():
    with pytest.raises(PayoutError, match="batch is empty"):
        validate_lines([])
    with pytest.raises(PayoutError, match=r"payout line '2026-10:payee-7', field line_id: appears twice"):
        validate_lines([*LINES, line("payee-7", "3.00")])
    with pytest.raises(PayoutError, match=r"payout line '2026-10:payee-9', field currency: GBP differs from EUR"):
        validate_lines([*LINES, line("payee-9", "3.00", currency="GBP")])


# --- batch id ---------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000.00"), places=2)


@given(
    st.lists(amounts, min_size=1, max_size=8).flatmap(
        lambda xs: st.tuples(st.just(xs), st.permutations(range(len(xs))))
    )
)
def test_batch_id_is_stable_under_reordering(case):
    values, order = case
    lines = [line(f"payee-{n}", str(value)) for n, value in enumerate(values)]
    shuffled = [lines[n] for n in order]
    assert batch_id("2026-10", "EUR", shuffled) == batch_id("2026-10", "EUR", lines)
    assert re.fullmatch(r"PB-2026-10-EUR-[0-9a-f]{12}", batch_id("2026-10", "EUR", lines))


@given(st.lists(amounts, min_size=1, max_size=8), st.data())
def test_batch_id_changes_when_any_amount_changes(values, data):
    lines = [line(f"payee-{n}", str(value)) for n, value in enumerate(values)]
    index = data.draw(st.integers(0, len(lines) - 1))
    new_amount = data.draw(amounts.filter(lambda amount: amount != lines[index].amount))
    changed = [*lines[:index], dataclasses.replace(lines[index], amount=new_amount), *lines[index + 1 :]]
    assert batch_id("2026-10", "EUR", changed) != batch_id("2026-10", "EUR", lines)


@pytest.mark.parametrize(
    "field, value",
    [
        ("line_id", "x"),
        ("payee_id", "x"),
        ("name", "x"),
        ("iban", "GB82WEST12345698765432"),
        ("bic", "DEUTDEFF"),
        ("currency", "GBP"),
        ("reference", "x"),
    ],
)
def test_batch_id_changes_when_any_other_field_changes(field, value):
    changed = [dataclasses.replace(LINES[0], **{field: value}), *LINES[1:]]
    assert batch_id("2026-10", "EUR", changed) != BATCH
    assert batch_id("2026-11", "EUR", LINES) != BATCH and batch_id("2026-10", "GBP", LINES) != BATCH


# --- CSV --------------------------------------------------------------------------------------------------


def test_csv_round_trips_through_dictreader():
    data = payouts_csv(BATCH, LINES)
    assert b"\r" not in data and data.endswith(b"\n")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert list(rows[0]) == [
        "batch_id",
        "line_id",
        "payee_id",
        "name",
        "iban",
        "bic",
        "amount",
        "currency",
        "reference",
    ]
    assert [row["line_id"] for row in rows] == sorted(item.line_id for item in LINES)
    by_id = {item.line_id: item for item in LINES}
    for row in rows:
        expected = by_id[row["line_id"]]
        assert (
            row["batch_id"] == BATCH
            and Decimal(row["amount"]) == expected.amount
            and row["amount"] == f"{expected.amount:f}"
        )
        assert (row["name"], row["iban"], row["bic"] or None) == (expected.name, expected.iban, expected.bic)
    assert payouts_csv(BATCH, list(reversed(LINES))) == data


# --- manifest, keys and signatures ------------------------------------------------------------------------


def test_manifest_is_canonical_json_of_the_files():
    files = export_files()
    data = manifest(BATCH, files, {"period": "2026-10", "currency": "EUR"})
    document = json.loads(data)
    assert (
        data.endswith(b"}\n") and data == json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    )
    assert (
        document["batch_id"] == BATCH
        and document["format"] == "mm-payout-manifest/1"
        and document["algorithm"] == "Ed25519"
    )
    assert document["files"][CSV_NAME]["bytes"] == len(files[CSV_NAME])
    assert set(document["files"]) == {CSV_NAME, PAIN001_NAME} and document["meta"] == {
        "period": "2026-10",
        "currency": "EUR",
    }
    with pytest.raises(PayoutError, match="cannot list itself"):
        manifest(BATCH, {**files, MANIFEST_NAME: b"{}"}, {})


@pytest.fixture
def signed():
    private, public = generate_key_pair()
    files = export_files()
    manifest_bytes = manifest(BATCH, files, {"period": "2026-10"})
    signature = sign_manifest(manifest_bytes, load_signing_key(private))
    return files, manifest_bytes, signature, load_verify_key(public)


BAD_SIGNATURE = (
    f"{SIGNATURE_NAME}: the signature does not match {MANIFEST_NAME} for this key (changed manifest, or another key)"
)


def flip(data: bytes, at: int = 10) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_a_signed_export_verifies_including_the_manifest_and_signature_files(signed):
    files, manifest_bytes, signature, key = signed
    assert verify_export(files, manifest_bytes, signature, key) == []
    everything = {**files, MANIFEST_NAME: manifest_bytes, SIGNATURE_NAME: signature}
    assert verify_export(everything, manifest_bytes, signature, key) == []


def test_a_changed_file_is_named(signed):
    files, manifest_bytes, signature, key = signed
    files[PAIN001_NAME] = flip(files[PAIN001_NAME])
    assert verify_export(files, manifest_bytes, signature, key) == [
        f"{PAIN001_NAME}: sha256 differs from {MANIFEST_NAME} (the file was changed)"
    ]


def test_a_resized_file_is_named(signed):
    files, manifest_bytes, signature, key = signed
    files[CSV_NAME] += b"x"
    size = len(files[CSV_NAME])
    assert verify_export(files, manifest_bytes, signature, key) == [
        f"{CSV_NAME}: size is {size} bytes, {MANIFEST_NAME} says {size - 1}"
    ]


def test_a_changed_manifest_fails_the_signature(signed):
    files, manifest_bytes, signature, key = signed
    problems = verify_export(files, manifest_bytes.replace(b'"period"', b'"periox"'), signature, key)
    assert problems == [BAD_SIGNATURE]
    broken = verify_export(files, flip(manifest_bytes, 1), signature, key)
    assert broken == [BAD_SIGNATURE, f"{MANIFEST_NAME}: is not a mm-payout-manifest/1 manifest; re-download the export"]


def test_a_changed_signature_fails(signed):
    files, manifest_bytes, signature, key = signed
    raw = base64.b64decode(signature)
    assert verify_export(files, manifest_bytes, base64.b64encode(flip(raw)), key) == [BAD_SIGNATURE]
    assert verify_export(files, manifest_bytes, b"not base64!", key) == [
        f"{SIGNATURE_NAME}: is not a base64 signature; re-download the export"
    ]


def test_an_extra_file_and_a_missing_file_are_named(signed):
    files, manifest_bytes, signature, key = signed
    extra = {**files, "notes.txt": b"pay me too"}
    assert verify_export(extra, manifest_bytes, signature, key) == [
        f"notes.txt: present but not listed in {MANIFEST_NAME}"
    ]
    del files[CSV_NAME]
    assert verify_export(files, manifest_bytes, signature, key) == [
        f"{CSV_NAME}: listed in {MANIFEST_NAME} but missing"
    ]


def test_another_key_does_not_verify(signed):
    files, manifest_bytes, signature, _ = signed
    other = load_verify_key(generate_key_pair()[1])
    assert verify_export(files, manifest_bytes, signature, other) == [BAD_SIGNATURE]


def test_pem_and_base64_keys_load_to_the_same_key():
    key = Ed25519PrivateKey.generate()
    no_password = serialization.NoEncryption()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, no_password).decode()
    private_raw = base64.b64encode(
        key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, no_password)
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    public_raw = public_key_text(key)
    manifest_bytes = manifest(BATCH, {"a": b"a"}, {})
    for private in (private_pem, private_raw + "\n"):
        assert public_key_text(load_signing_key(private)) == public_raw
        signature = sign_manifest(manifest_bytes, load_signing_key(private))
        for public in (public_pem, public_raw):
            assert verify_export({"a": b"a"}, manifest_bytes, signature, load_verify_key(public)) == []


SECRET_LOOKING = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="  # base64, but of 21 bytes


@pytest.mark.parametrize(
    "value",
    [
        SECRET_LOOKING,
        "hunter2 is my password",
        "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode(),
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
        )
        .decode(),
    ],
    ids=["short-base64", "text", "broken-pem", "ec-key", "encrypted-pem"],
)
def test_an_unusable_signing_key_is_explained_without_echoing_it(value):
    with pytest.raises(
        PayoutError, match="expected a PEM 'PRIVATE KEY' block or the base64 of the raw 32-byte"
    ) as caught:
        load_signing_key(value)
    message = str(caught.value)
    assert "hunter2" not in message and SECRET_LOOKING not in message and "BEGIN PRIVATE" not in message
    assert caught.value.__cause__ is None and (caught.value.__context__ is None or caught.value.__suppress_context__)


@pytest.mark.parametrize(
    "value", ["hunter2", "-----BEGIN PUBLIC KEY-----\nhunter2\n-----END PUBLIC KEY-----\n", SECRET_LOOKING]
)
def test_an_unusable_verify_key_is_explained_without_echoing_it(value):
    with pytest.raises(PayoutError, match="expected a PEM 'PUBLIC KEY' block") as caught:
        load_verify_key(value)
    assert "hunter2" not in str(caught.value) and SECRET_LOOKING not in str(caught.value)


# --- confirmations ----------------------------------------------------------------------------------------

HEADER = "batch_id,line_id,status,paid_on,reason\n"


def test_a_good_confirmation_file_parses():
    data = (
        "\ufeff" + HEADER + f"{BATCH},2026-10:payee-7,paid,2026-11-03,\n\n"
        f'{BATCH},2026-10:payee-2,failed,,"AC04, account closed"\n'
    ).encode()
    assert parse_confirmation("confirm.csv", data) == (
        BATCH,
        [
            Confirmation(line_id="2026-10:payee-7", status="paid", reason="", paid_on=date(2026, 11, 3)),
            Confirmation(line_id="2026-10:payee-2", status="failed", reason="AC04, account closed", paid_on=None),
        ],
    )


@pytest.mark.parametrize(
    "row, message",
    [
        ("PB-x,2026-10:payee-9,pending,,", "confirm.csv line 4, field status: 'pending' is not paid or failed"),
        (
            "PB-x,2026-10:payee-1,paid,2026-11-03,",
            "confirm.csv line 4, field line_id: '2026-10:payee-1' is already confirmed on line 2",
        ),
        (
            "PB-y,2026-10:payee-9,paid,2026-11-03,",
            "confirm.csv line 4, field batch_id: 'PB-y' differs from 'PB-x' on line 2",
        ),
        ("PB-x,2026-10:payee-9,paid,,", "confirm.csv line 4, field paid_on: is empty; a paid line needs the date"),
        ("PB-x,2026-10:payee-9,paid,03.11.2026,", "confirm.csv line 4, field paid_on: '03.11.2026' is not a date"),
        ("PB-x,2026-10:payee-9,paid,2026-02-30,", "confirm.csv line 4, field paid_on: '2026-02-30' is not a date"),
        (
            "PB-x,2026-10:payee-9,failed,,",
            "confirm.csv line 4, field reason: is empty; a failed line needs the bank's reason",
        ),
        (
            "PB-x,2026-10:payee-9,failed,2026-11-03,AC04",
            "confirm.csv line 4, field paid_on: '2026-11-03' is set on a failed",
        ),
        ("PB-x,,paid,2026-11-03,", "confirm.csv line 4, field line_id: is empty"),
        (",2026-10:payee-9,paid,2026-11-03,", "confirm.csv line 4, field batch_id: is empty"),
        ("PB-x,2026-10:payee-9,paid", "confirm.csv line 4: has 3 fields, expected 5"),
    ],
)
def test_confirmation_errors_name_file_line_and_field(row, message):
    data = (HEADER + "PB-x,2026-10:payee-1,paid,2026-11-03,\nPB-x,2026-10:payee-2,failed,,AC04\n" + row + "\n").encode()
    with pytest.raises(PayoutError, match=re.escape(message)):
        parse_confirmation("confirm.csv", data)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "confirm.csv line 1: the header must be batch_id,line_id,status,paid_on,reason"),
        (b"batch_id,line_id,status,paid_on\nPB-x,l,paid,2026-11-03\n", "confirm.csv line 1: the header must be"),
        (HEADER.encode(), "confirm.csv line 2: no confirmation lines"),
        (HEADER.encode() + b"PB-x,l\xff,paid,2026-11-03,\n", "confirm.csv line 2: byte 45 is not UTF-8"),
    ],
)
def test_confirmation_file_level_errors(data, message):
    with pytest.raises(PayoutError, match=re.escape(message)):
        parse_confirmation("confirm.csv", data)


# --- execution date and the paying account ------------------------------------------------------------------


@pytest.mark.parametrize(
    "year, easter",
    [
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),
        (2285, date(2285, 3, 22)),
    ],
)
def test_easter_sunday_including_its_earliest_and_latest_dates(year, easter):
    assert payouts.easter_sunday(year) == easter


@pytest.mark.parametrize(
    "day, open_",
    [
        (date(2026, 12, 1), True),
        (date(2026, 12, 5), False),  # Tuesday; Saturday
        (date(2026, 1, 1), False),
        (date(2026, 4, 3), False),
        (date(2026, 4, 6), False),  # New Year, Good Friday, Easter Monday
        (date(2026, 5, 1), False),
        (date(2026, 12, 25), False),
        (date(2029, 12, 26), False),  # 1 May, Christmas, 26 Dec
        (date(2026, 12, 24), True),
        (date(2026, 12, 31), True),
        (date(2026, 4, 2), True),
        (date(2026, 4, 7), True),
    ],
)
def test_target2_business_days(day, open_):
    assert payouts.is_target2_business_day(day) is open_


@pytest.mark.parametrize(
    "period, day, today, expected",
    [
        ("2026-10", 5, date(2026, 12, 1), date(2026, 12, 1)),  # exported late: today, never 5 November
        ("2026-10", 5, date(2026, 10, 20), date(2026, 11, 5)),  # on time: the configured day (a Thursday)
        ("2026-11", 5, date(2026, 11, 20), date(2026, 12, 7)),  # 5 December is a Saturday
        ("2026-11", 25, date(2026, 12, 1), date(2026, 12, 28)),  # Christmas, 26 Dec, a weekend
        ("2026-12", 1, date(2026, 12, 31), date(2027, 1, 4)),  # New Year's Day, then a weekend
        ("2026-03", 3, date(2026, 3, 20), date(2026, 4, 7)),  # Good Friday, the weekend, Easter Monday
        ("2026-04", 1, date(2026, 4, 30), date(2026, 5, 4)),  # 1 May, then a weekend
        ("2026-10", 5, date(2026, 12, 25), date(2026, 12, 28)),  # today is a closing day
    ],
)
def test_the_execution_date_is_the_next_business_day_on_or_after_the_configured_day_and_today(
    period, day, today, expected
):
    assert payouts.execution_date(period, day, today) == expected


@given(st.dates(date(2025, 1, 1), date(2035, 12, 1)), st.integers(1, 28), st.integers(0, 400))
def test_the_execution_date_is_the_first_business_day_not_before_either_bound(month, day, late):
    period = f"{month:%Y-%m}"
    configured = date.fromisoformat(f"{add_months(period, 1)}-{day:02d}")
    today = month + timedelta(days=late)
    chosen = payouts.execution_date(period, day, today)
    start = max(configured, today)
    assert chosen >= start and payouts.is_target2_business_day(chosen)
    assert not any(payouts.is_target2_business_day(start + timedelta(days=n)) for n in range((chosen - start).days))


def eur_batch(**changes) -> dict:
    return {
        "batch_id": BATCH,
        "period": "2026-10",
        "currency": "EUR",
        "created_at": CREATED,
        "execution_date": date(2026, 12, 1),
        **changes,
    }


def test_a_sepa_export_without_the_debtor_iban_is_refused_naming_the_setting():
    from mm_pipelines.royalties.batches import BatchError, PayoutSettings, export_files

    settings = PayoutSettings.from_env({"MM_PAYOUT_DEBTOR_NAME": "Market and Media Ltd"})
    with pytest.raises(BatchError) as info:
        export_files(eur_batch(), LINES, settings)
    assert str(info.value).startswith(
        "MM_PAYOUT_DEBTOR_IBAN is not set: set it to the IBAN of the account payouts are paid from"
    )
    assert "\n" not in str(info.value)
    usd = [line("payee-1", "10.00", currency="USD")]  # paid by hand from the CSV: no paying account in the file
    assert list(export_files(eur_batch(currency="USD", batch_id=batch_id("2026-10", "USD", usd)), usd, settings)) == [
        CSV_NAME
    ]
    with pytest.raises(
        BatchError,
        match=r"^MM_PAYOUT_DEBTOR_IBAN: 'DE00120300000000202051' fails the mod-97 check \(a typo\?\); "
        r"set it to the IBAN of the account payouts are paid from$",
    ):
        export_files(eur_batch(), LINES, PayoutSettings.from_env({"MM_PAYOUT_DEBTOR_IBAN": "DE00120300000000202051"}))


def test_a_sepa_export_asks_for_the_batch_execution_date_from_the_paying_account():
    from mm_pipelines.royalties.batches import PayoutSettings, export_files

    settings = PayoutSettings.from_env(
        {"MM_PAYOUT_DEBTOR_IBAN": "de02 1203 0000 0000 2020 51", "MM_PAYOUT_DEBTOR_NAME": "Media Mill GmbH"}
    )
    root = ET.fromstring(export_files(eur_batch(), LINES, settings)[PAIN001_NAME])
    info = root.find("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert info.findtext("p:ReqdExctnDt", namespaces=NS) == "2026-12-01"
    assert info.findtext("p:DbtrAcct/p:Id/p:IBAN", namespaces=NS) == "DE02120300000000202051"


@pytest.mark.parametrize("day", ["0", "29", "5th", ""])
def test_the_execution_day_setting_is_a_day_every_month_has(day):
    from mm_pipelines.royalties.batches import BatchError, PayoutSettings

    with pytest.raises(BatchError, match=f"^MM_PAYOUT_EXECUTION_DAY='{day}' must be a day of the month from 1 to 28"):
        PayoutSettings.from_env({"MM_PAYOUT_EXECUTION_DAY": day})
