"""Payout batches for Finance: FinanceViewer and FinanceApprover see them; a FinanceApprover, signed in with a
second factor, approves one (four eyes: never the batch's creator, two distinct approvers above the threshold) and
recalls an exported one before its execution date."""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from mm_pipelines.api.auth import Caller, allow
from mm_pipelines.api.params import BatchId
from mm_pipelines.api.service import Service, service
from mm_pipelines.errors import Conflict, NotFound
from mm_pipelines.identity.roles import Role
from mm_pipelines.royalties import batches

router = APIRouter(tags=["payouts"])
VIEWERS = (Role.FINANCE_VIEWER, Role.FINANCE_APPROVER)


def _money(row: dict) -> dict:
    """Amounts as decimal strings to the cent: JSON numbers would pass through a float."""
    return {k: f"{v:.2f}" if isinstance(v, Decimal) else v for k, v in row.items()}


def batch_rows(conn, batch_id: str | None = None) -> list[dict]:
    rows = conn.execute(
        f"""SELECT b.batch_id, b.period, b.currency, b.total, b.line_count, b.status, b.created_by, b.created_at,
                   coalesce(array_agg(a.approver ORDER BY a.approved_at) FILTER (WHERE a.approver IS NOT NULL), '{{}}')
            FROM payout_batches b LEFT JOIN payout_approvals a USING (batch_id)
            {"WHERE b.batch_id = %s" if batch_id else ""}
            GROUP BY b.batch_id ORDER BY b.created_at DESC, b.batch_id""",
        (batch_id,) if batch_id else (),
    ).fetchall()
    keys = ("batch_id", "period", "currency", "total", "lines", "status", "created_by", "created_at", "approved_by")
    return [_money(dict(zip(keys, row))) for row in rows]


@router.get("/payouts/batches")
def list_batches(caller: Caller = allow(*VIEWERS), svc: Service = Depends(service)) -> dict:
    with svc.transaction() as conn:
        return {"items": batch_rows(conn)}


@router.get("/payouts/batches/{batch_id}")
def batch_detail(batch_id: BatchId, caller: Caller = allow(*VIEWERS), svc: Service = Depends(service)) -> dict:
    with svc.transaction() as conn:
        found = batch_rows(conn, batch_id)
        if not found:
            raise NotFound(f"no payout batch {batch_id!r}: list them with GET /payouts/batches")
        lines = [
            _money(dict(zip(("payee_id", "amount", "currency", "status"), row)))
            for row in conn.execute(
                "SELECT payee_id, amount, currency, status FROM payout_lines WHERE batch_id = %s ORDER BY line_id",
                (batch_id,),
            )
        ]
    return {**found[0], "payout_lines": lines}


@contextmanager
def _batch_problems():
    """A lifecycle step's BatchError as a problem document: 404 for an unknown batch, 409 for any other refusal."""
    try:
        yield
    except batches.BatchError as e:
        if str(e).startswith("no payout batch"):
            raise NotFound(str(e)) from None
        raise Conflict(str(e)) from None


@router.post("/payouts/batches/{batch_id}/approvals", status_code=201)
def approve_batch(
    batch_id: BatchId,
    caller: Caller = allow(Role.FINANCE_APPROVER, second_factor=True),
    svc: Service = Depends(service),
) -> dict:
    with _batch_problems(), svc.transaction() as conn:
        status, count, needed = batches.approve(
            conn, batch_id, caller.subject, svc.payout_settings, role=caller.role.value, via="api"
        )
    return {"batch_id": batch_id, "status": status, "approvals": count, "approvals_needed": needed}


class Recall(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Why the batch is recalled (audited)")


@router.post("/payouts/batches/{batch_id}/recall")
def recall_batch(
    batch_id: BatchId,
    body: Recall,
    caller: Caller = allow(Role.FINANCE_APPROVER, second_factor=True),
    svc: Service = Depends(service),
) -> dict:
    """Take an exported batch back before its execution date; its lines return to the balance once."""
    with _batch_problems(), svc.transaction() as conn:
        back = batches.recall(
            conn, batch_id, caller.subject, body.reason, svc.payout_settings, role=caller.role.value, via="api"
        )
    return {"batch_id": batch_id, "status": "recalled", "returned_period": back}
