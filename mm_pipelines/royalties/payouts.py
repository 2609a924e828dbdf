"""Payout batches for Finance: a CSV, a SEPA pain.001 file and a signed manifest, plus Finance's confirmations.

Everything here is a pure function over in-memory values so that the same batch always exports to the same
bytes: Finance can re-download an export and compare it, and the Ed25519 signature over the manifest shows
that nothing was changed between the platform and the bank upload.
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sepaxml
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from lxml import etree as lxml_etree
from sepaxml import SepaTransfer

from mm_pipelines.royalties.money import add_months

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
CSV_NAME = "payouts.csv"
PAIN001_NAME = "pain.001.xml"

MANIFEST_FORMAT = "mm-payout-manifest/1"
PAIN001_SCHEMA = "pain.001.001.03"
CSV_COLUMNS = ("batch_id", "line_id", "payee_id", "name", "iban", "bic", "amount", "currency", "reference")
CONFIRMATION_COLUMNS = ("batch_id", "line_id", "status", "paid_on", "reason")
SEPA_ID_MAX = 35  # Max35Text: MsgId, PmtInfId and EndToEndId in pain.001

# IBAN length per country, from the SWIFT IBAN registry (ISO 13616).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
IBAN_FORMAT = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+")
BIC_FORMAT = re.compile(r"[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?")  # the pain.001.001.03 BICIdentifier
CURRENCY_FORMAT = re.compile(r"[A-Z]{3}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

KEY_FORMATS = "a PEM '{kind}' block or the base64 of the raw 32-byte Ed25519 {raw} (as printed by generate_key_pair)"


class PayoutError(ValueError):
    """One clear line naming what is wrong and how to fix it."""


@dataclass(frozen=True)
class PayoutLine:
    """One transfer to one payee; `line_id` ("<period>:<payee>") is what Finance confirms against."""

    line_id: str
    payee_id: str
    name: str
    iban: str
    bic: str | None
    amount: Decimal
    currency: str
    reference: str


@dataclass(frozen=True)
class Debtor:
    """The company account the payouts are paid from."""

    name: str
    iban: str
    bic: str | None


@dataclass(frozen=True)
class Confirmation:
    """Finance's word on one line: "paid" (with the date) or "failed" (with the bank's reason)."""

    line_id: str
    status: str
    reason: str
    paid_on: date | None


def _line_record(line: PayoutLine) -> dict[str, str | None]:
    return {
        "line_id": line.line_id,
        "payee_id": line.payee_id,
        "name": line.name,
        "iban": line.iban,
        "bic": line.bic,
        "amount": f"{line.amount:f}",
        "currency": line.currency,
        "reference": line.reference,
    }


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sorted(lines: Sequence[PayoutLine]) -> list[PayoutLine]:
    """Order by line_id (ties by content) so the exports do not depend on the order lines were computed in."""
    return sorted(lines, key=lambda line: (line.line_id, _canonical_json(_line_record(line))))


def batch_id(period: str, currency: str, lines: Sequence[PayoutLine]) -> str:
    """A content address for the batch, so a re-run of the same period yields the same id and any edit a new one."""
    content = {"period": period, "currency": currency, "lines": [_line_record(line) for line in _sorted(lines)]}
    return f"PB-{period}-{currency}-{hashlib.sha256(_canonical_json(content)).hexdigest()[:12]}"


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Meeus/Jones/Butcher algorithm): Good Friday and Easter
    Monday move with it."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    w = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * w) // 451
    month, day = divmod(h + w - 7 * m + 114, 31)
    return date(year, month, day + 1)


def is_target2_business_day(day: date) -> bool:
    """Mon–Fri except TARGET2's closing days (1 Jan, Good Friday, Easter Monday, 1 May, 25 and 26 Dec):
    SEPA settles on these only."""
    easter = easter_sunday(day.year)
    closed = {
        date(day.year, 1, 1),
        easter - timedelta(days=2),
        easter + timedelta(days=1),
        date(day.year, 5, 1),
        date(day.year, 12, 25),
        date(day.year, 12, 26),
    }
    return day.weekday() < 5 and day not in closed


def execution_date(period: str, day_of_month: int, today: date) -> date:
    """The transfer date asked of the bank: the configured day of the month after the period, or today if that has
    passed, moved on to the next TARGET2 business day (a bank rejects a past date and shifts a closed one)."""
    wanted = max(date.fromisoformat(f"{add_months(period, 1)}-{day_of_month:02d}"), today)
    while not is_target2_business_day(wanted):
        wanted += timedelta(days=1)
    return wanted


def iban_problem(iban: str) -> str | None:
    """Why `iban` is not a valid ISO 13616 IBAN in electronic format, or None."""
    if not isinstance(iban, str) or not IBAN_FORMAT.fullmatch(iban):
        return (
            f"{iban!r} is not an IBAN in electronic format "
            "(country code, 2 check digits, then letters and digits; no spaces, upper case)"
        )
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is None:
        return f"{iban!r} has country code {iban[:2]!r}, which has no IBAN in the ISO 13616 registry"
    if len(iban) != expected:
        return f"{iban!r} has {len(iban)} characters but a {iban[:2]} IBAN has {expected}"
    if int("".join(str(int(char, 36)) for char in iban[4:] + iban[:4])) % 97 != 1:
        return f"{iban!r} fails the mod-97 check (a typo?); copy the IBAN again from the payee's bank details"
    return None


def _line_problem(line: PayoutLine) -> tuple[str, str] | None:
    """The first (field, problem) of a line on its own, or None."""
    for field in ("line_id", "payee_id", "name", "reference"):
        if not isinstance(getattr(line, field), str) or not getattr(line, field).strip():
            return field, "is missing; every payout line needs it"
    if (problem := iban_problem(line.iban)) is not None:
        return "iban", problem
    if line.bic is not None and not (isinstance(line.bic, str) and BIC_FORMAT.fullmatch(line.bic)):
        return "bic", f"{line.bic!r} is not a BIC (8 or 11 upper-case letters and digits); use None when unknown"
    amount = line.amount
    if not isinstance(amount, Decimal) or not amount.is_finite():
        return "amount", f"{amount!r} is not a finite Decimal; money is never a float"
    if amount.as_tuple().exponent != -2:
        return (
            "amount",
            f"{amount} must have exactly 2 decimal places, e.g. Decimal('{amount.quantize(Decimal('0.01'))}')",
        )
    if amount <= 0:
        return "amount", f"{amount} must be greater than 0; leave zero and negative balances out of the batch"
    if not isinstance(line.currency, str) or not CURRENCY_FORMAT.fullmatch(line.currency):
        return "currency", f"{line.currency!r} is not an ISO 4217 code such as 'EUR'"
    return None


def validate_lines(lines: Sequence[PayoutLine]) -> None:
    """Refuse a batch the bank would reject (or that would pay the wrong person) before any file is written."""
    if not lines:
        raise PayoutError("the payout batch is empty; a batch needs at least one line with an amount to pay")
    seen: set[str] = set()
    first = lines[0]
    for line in lines:
        if (problem := _line_problem(line)) is not None:
            raise PayoutError(f"payout line {line.line_id!r}, field {problem[0]}: {problem[1]}")
        if line.line_id in seen:
            raise PayoutError(
                f"payout line {line.line_id!r}, field line_id: appears twice; line ids must be unique within a batch"
            )
        seen.add(line.line_id)
        if line.currency != first.currency:
            raise PayoutError(
                f"payout line {line.line_id!r}, field currency: {line.currency} differs from {first.currency} of line "
                f"{first.line_id!r}; make one batch per currency"
            )


def payouts_csv(batch: str, lines: Sequence[PayoutLine]) -> bytes:
    """The human-readable twin of the pain.001 file, for Finance's review and bookkeeping."""
    validate_lines(lines)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in _sorted(lines):
        record = _line_record(line)
        writer.writerow([batch] + [record[column] or "" for column in CSV_COLUMNS[1:]])
    return out.getvalue().encode("utf-8")


def _sepa_id(text: str) -> str:
    """Fit an id into Max35Text; a longer one keeps its start and gains a hash of the whole, so it stays unique."""
    if len(text) <= SEPA_ID_MAX:
        return text
    return f"{text[:22]}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


def _cents(amount: Decimal) -> int:
    return int(amount.scaleb(2))


def pain001_xml(
    batch: str, debtor: Debtor, lines: Sequence[PayoutLine], execution_date: date, created_at: datetime
) -> bytes:
    """The SEPA credit-transfer file for the bank; byte-identical for the same inputs (sepaxml alone is random)."""
    validate_lines(lines)
    if (problem := iban_problem(debtor.iban)) is not None:
        raise PayoutError(f"debtor, field iban: {problem}")
    if not isinstance(debtor.name, str) or not debtor.name.strip():
        raise PayoutError("debtor, field name: is missing; set the account holder name of the paying account")
    if debtor.bic is not None and not (isinstance(debtor.bic, str) and BIC_FORMAT.fullmatch(debtor.bic)):
        raise PayoutError(f"debtor, field bic: {debtor.bic!r} is not a BIC (8 or 11 upper-case letters and digits)")
    if isinstance(execution_date, datetime) or not isinstance(execution_date, date):
        raise PayoutError(f"execution_date {execution_date!r} must be a date (a bank books transfers per day)")
    ordered = _sorted(lines)
    currency = ordered[0].currency
    if currency != "EUR":
        raise PayoutError(
            f"batch {batch}: SEPA credit transfers are in EUR only, this batch is in {currency}; pay it from the CSV"
        )

    config = {"name": debtor.name, "IBAN": debtor.iban, "currency": currency, "batch": True}
    if debtor.bic is not None:
        config["BIC"] = debtor.bic
    transfer = SepaTransfer(config, schema=PAIN001_SCHEMA)
    for line in ordered:
        payment = {
            "name": line.name,
            "IBAN": line.iban,
            "amount": _cents(line.amount),
            "description": line.reference,
            "execution_date": execution_date,
            "endtoend_id": _sepa_id(line.line_id),
        }
        if line.bic is not None:
            payment["BIC"] = line.bic
        transfer.add_payment(payment)
    return _deterministic(transfer.export(validate=False), batch, ordered, created_at)


def _deterministic(generated: bytes, batch: str, lines: Sequence[PayoutLine], created_at: datetime) -> bytes:
    """Replace sepaxml's random and clock-based ids, check the totals, re-serialize and validate."""
    document = ET.fromstring(generated)
    namespace = document.tag[1 : document.tag.index("}")]
    for element in document.iter():  # serialize as sepaxml does: a default namespace, no prefixes
        element.tag = element.tag.rpartition("}")[2]
    document.attrib = {"xmlns": namespace}
    header = document.find("CstmrCdtTrfInitn/GrpHdr")
    header.find("MsgId").text = _sepa_id(batch)
    header.find("CreDtTm").text = created_at.isoformat(timespec="seconds")
    for number, payment_info_id in enumerate(document.iterfind("CstmrCdtTrfInitn/PmtInf/PmtInfId"), start=1):
        payment_info_id.text = _sepa_id(f"{batch}-{number}")

    total = sum((line.amount for line in lines), Decimal(0))
    if Decimal(header.find("CtrlSum").text) != total or int(header.find("NbOfTxs").text) != len(lines):
        raise PayoutError(
            f"batch {batch}: pain.001 header says {header.find('NbOfTxs').text} transfers totalling "
            f"{header.find('CtrlSum').text}, the lines are {len(lines)} totalling {total}; report this as a bug"
        )
    xml = b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(document, encoding="utf-8")
    schema = _pain001_schema()
    parsed = lxml_etree.fromstring(xml)
    if not schema.validate(parsed):
        invalid = schema.error_log.last_error
        found = parsed.xpath(invalid.path) if invalid.path else []
        path = (
            "/" + "/".join(lxml_etree.QName(e).localname for e in [*reversed(list(found[0].iterancestors())), found[0]])
            if found
            else "?"
        )
        raise PayoutError(
            f"batch {batch}: pain.001 does not validate against {PAIN001_SCHEMA}.xsd at {path}: "
            f"{' '.join(invalid.message.split())}; correct that value in the payout lines or the debtor"
        )
    return xml


@functools.cache
def _pain001_schema():
    """sepaxml's copy of the ISO 20022 XSD, compiled once by libxml2: xmlschema took 20 s on a 60,000-line batch."""
    return lxml_etree.XMLSchema(
        lxml_etree.parse(str(Path(sepaxml.__file__).parent / "schemas" / f"{PAIN001_SCHEMA}.xsd"))
    )


def manifest(batch: str, files: Mapping[str, bytes], meta: Mapping[str, str]) -> bytes:
    """What the signature covers: the name, size and sha256 of every exported file, in canonical JSON."""
    for reserved in (MANIFEST_NAME, SIGNATURE_NAME):
        if reserved in files:
            raise PayoutError(f"batch {batch}: {reserved} cannot list itself; leave it out of the manifest's files")
    document = {
        "batch_id": batch,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in files.items()
        },
        "meta": dict(meta),
        "algorithm": "Ed25519",
        "format": MANIFEST_FORMAT,
    }
    return _canonical_json(document) + b"\n"


def _key_bytes(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def load_signing_key(value: str) -> Ed25519PrivateKey:
    """Read the export signing key from a secret; the message never repeats the secret."""
    formats = KEY_FORMATS.format(kind="PRIVATE KEY", raw="private key seed")
    error = PayoutError(f"the signing key is not usable: expected {formats}")
    if not isinstance(value, str):
        raise error
    if value.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(value.strip().encode("utf-8"), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise error from None
        if not isinstance(key, Ed25519PrivateKey):
            raise error
        return key
    raw = _key_bytes(value)
    if raw is None or len(raw) != 32:
        raise error
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_verify_key(value: str) -> Ed25519PublicKey:
    """Read the public key Finance verifies exports with."""
    formats = KEY_FORMATS.format(kind="PUBLIC KEY", raw="public key")
    error = PayoutError(f"the verify key is not usable: expected {formats}")
    if not isinstance(value, str):
        raise error
    if value.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(value.strip().encode("utf-8"))
        except (ValueError, UnsupportedAlgorithm):
            raise error from None
        if not isinstance(key, Ed25519PublicKey):
            raise error
        return key
    raw = _key_bytes(value)
    if raw is None or len(raw) != 32:
        raise error
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The base64 public key to hand to Finance for verification."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def generate_key_pair() -> tuple[str, str]:
    """A fresh (private, public) pair as base64 raw keys: the private one for the secret store, the public
    one for Finance."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.b64encode(raw).decode("ascii"), public_key_text(key)


def sign_manifest(manifest_bytes: bytes, key: Ed25519PrivateKey) -> bytes:
    """The detached signature file: base64 of the Ed25519 signature over the manifest bytes."""
    return base64.b64encode(key.sign(manifest_bytes)) + b"\n"


def verify_export(
    files: Mapping[str, bytes], manifest_bytes: bytes, signature: bytes, key: Ed25519PublicKey
) -> list[str]:
    """Every reason the export cannot be trusted as signed (empty when it can), so Finance sees all of them at once."""
    problems = []
    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), manifest_bytes)
    except (binascii.Error, ValueError):
        problems.append(f"{SIGNATURE_NAME}: is not a base64 signature; re-download the export")
    except InvalidSignature:
        problems.append(
            f"{SIGNATURE_NAME}: the signature does not match {MANIFEST_NAME} for this key "
            "(changed manifest, or another key)"
        )
    try:
        document = json.loads(manifest_bytes)
        listed = document["files"]
        readable = document["format"] == MANIFEST_FORMAT and all(isinstance(entry, dict) for entry in listed.values())
    except (ValueError, KeyError, TypeError, AttributeError):
        readable = False
    if not readable:
        return problems + [f"{MANIFEST_NAME}: is not a {MANIFEST_FORMAT} manifest; re-download the export"]
    for name, entry in sorted(listed.items()):
        if name not in files:
            problems.append(f"{name}: listed in {MANIFEST_NAME} but missing")
        elif len(files[name]) != entry.get("bytes"):
            problems.append(f"{name}: size is {len(files[name])} bytes, {MANIFEST_NAME} says {entry.get('bytes')}")
        elif hashlib.sha256(files[name]).hexdigest() != entry.get("sha256"):
            problems.append(f"{name}: sha256 differs from {MANIFEST_NAME} (the file was changed)")
    for name in sorted(set(files) - set(listed) - {MANIFEST_NAME, SIGNATURE_NAME}):
        problems.append(f"{name}: present but not listed in {MANIFEST_NAME}")
    return problems


def _field_error(where: str, field: str, problem: str) -> PayoutError:
    return PayoutError(f"{where}, field {field}: {problem}")


def _confirmation(record: dict[str, str], where: str) -> Confirmation:
    """One data row of a confirmation file; `where` ("<file> line <n>") starts every error."""
    status = record["status"]
    if status not in ("paid", "failed"):
        raise _field_error(where, "status", f"{status!r} is not paid or failed")
    if status == "failed":
        if record["paid_on"]:
            raise _field_error(where, "paid_on", f"{record['paid_on']!r} is set on a failed line; leave it empty")
        if not record["reason"]:
            raise _field_error(where, "reason", "is empty; a failed line needs the bank's reason")
        return Confirmation(line_id=record["line_id"], status=status, reason=record["reason"], paid_on=None)
    if not record["paid_on"]:
        raise _field_error(where, "paid_on", "is empty; a paid line needs the date it was paid (YYYY-MM-DD)")
    try:
        if not ISO_DATE.fullmatch(record["paid_on"]):  # fromisoformat alone also takes 20261001 and week dates
            raise ValueError
        paid_on = date.fromisoformat(record["paid_on"])
    except ValueError:
        raise _field_error(where, "paid_on", f"{record['paid_on']!r} is not a date (YYYY-MM-DD)") from None
    return Confirmation(line_id=record["line_id"], status=status, reason=record["reason"], paid_on=paid_on)


def parse_confirmation(name: str, data: bytes) -> tuple[str, list[Confirmation]]:
    """Read Finance's paid/failed file for one batch; any doubt is an error, since it decides what counts as paid."""
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's UTF-8 export starts with a BOM
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise PayoutError(f"{name} line {line}: byte {error.start} is not UTF-8; save the file as CSV UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or [column.strip() for column in header] != list(CONFIRMATION_COLUMNS):
        raise PayoutError(f"{name} line 1: the header must be {','.join(CONFIRMATION_COLUMNS)}")
    batch, batch_line = None, 0
    seen: dict[str, int] = {}
    confirmations = []
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(CONFIRMATION_COLUMNS):
            raise PayoutError(
                f"{name} line {number}: has {len(row)} fields, expected {len(CONFIRMATION_COLUMNS)} "
                f"({','.join(CONFIRMATION_COLUMNS)})"
            )
        record = dict(zip(CONFIRMATION_COLUMNS, (cell.strip() for cell in row)))
        where = f"{name} line {number}"
        if not record["batch_id"]:
            raise _field_error(where, "batch_id", "is empty; every line names the batch it confirms")
        if batch is None:
            batch, batch_line = record["batch_id"], number
        elif record["batch_id"] != batch:
            problem = f"{record['batch_id']!r} differs from {batch!r} on line {batch_line}; one batch per file"
            raise _field_error(where, "batch_id", problem)
        if not record["line_id"]:
            raise _field_error(where, "line_id", "is empty; copy the line_id from payouts.csv")
        if record["line_id"] in seen:
            problem = (
                f"{record['line_id']!r} is already confirmed on line {seen[record['line_id']]}; confirm each line once"
            )
            raise _field_error(where, "line_id", problem)
        seen[record["line_id"]] = number
        confirmations.append(_confirmation(record, where))
    if batch is None:
        raise PayoutError(
            f"{name} line 2: no confirmation lines after the header; add one line per paid or failed payout"
        )
    return batch, confirmations
