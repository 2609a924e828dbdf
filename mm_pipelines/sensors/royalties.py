"""Royalty automation: the monthly run, Finance's confirmation files, and expiring licenses."""

import json
from datetime import UTC, date, datetime

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    schedule,
    sensor,
)

from mm_pipelines.config import Settings
from mm_pipelines.jobs import royalties_job
from mm_pipelines.resources import ObjectStoreResource, PostgresResource
from mm_pipelines.royalties import batches, kyc, store
from mm_pipelines.royalties.money import add_months


@schedule(
    job=royalties_job, cron_schedule="0 6 3 * *", execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING
)
def royalties_monthly_schedule(context: ScheduleEvaluationContext):
    """On the 3rd, the month just ended: late sales reports for it have usually arrived by then."""
    period = add_months(context.scheduled_execution_time.strftime("%Y-%m"), -1)
    return RunRequest(run_key=f"royalties:{period}", partition_key=f"{period}-01")


@op
def post_payout_confirmation(
    context: OpExecutionContext, postgres: PostgresResource, object_store: ObjectStoreResource
) -> None:
    key = context.op_config["file_key"]
    data = object_store.open().get_bytes(key)
    with postgres.get_db().connect() as conn:
        result = batches.post_confirmation(conn, key, data, actor="payout_confirmation_sensor")
    context.log.info(f"{key}: {result}")


@job(config={"ops": {"post_payout_confirmation": {"config": {"file_key": ""}}}})
def payout_confirmation_job():
    """Post one confirmation file from Finance (paid / failed per line)."""
    post_payout_confirmation()


@sensor(job=payout_confirmation_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
def payout_confirmation_sensor(context: SensorEvaluationContext, object_store: ObjectStoreResource):
    """One run per new file under finance/confirmations/; the run key makes a re-read file a no-op."""
    seen = set(json.loads(context.cursor or "[]"))
    keys = [
        k
        for k in object_store.open().list_keys(f"{batches.CONFIRMATION_PREFIX}/")
        if k.endswith(".csv") and k not in seen
    ]
    if not keys:
        return SkipReason(f"No new confirmation files under {batches.CONFIRMATION_PREFIX}/")
    context.update_cursor(json.dumps(sorted(seen | set(keys))))
    return [
        RunRequest(
            run_key=f"confirmation:{k}", run_config={"ops": {"post_payout_confirmation": {"config": {"file_key": k}}}}
        )
        for k in sorted(keys)
    ]


@op
def request_license_action(context: OpExecutionContext, postgres: PostgresResource) -> None:
    """Start the takedown or renewal workflow: recorded once per license expiry, with an audit record."""
    cfg = context.op_config
    with postgres.get_db().connect() as conn:
        started = store.record_license_workflow(
            conn, cfg["asset_id"], cfg["licensor"], date.fromisoformat(cfg["expires_on"]), cfg["action"], context.run_id
        )
    context.log.info(
        f"{cfg['action']} of {cfg['asset_id']} ({cfg['licensor']}, expires {cfg['expires_on']}): "
        f"{'requested' if started else 'already requested'}"
    )


@job(
    config={
        "ops": {
            "request_license_action": {
                "config": {"asset_id": "", "licensor": "", "expires_on": "1970-01-01", "action": "renew"}
            }
        }
    }
)
def license_workflow_job():
    """The takedown or renewal workflow for one expiring license."""
    request_license_action()


@sensor(job=license_workflow_job, minimum_interval_seconds=3600, default_status=DefaultSensorStatus.RUNNING)
def license_expiry_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    """Licenses expiring within MM_LICENSE_EXPIRY_DAYS (default 30) get their workflow once per expiry date."""
    within = Settings.from_env().license_expiry_days
    with postgres.get_db().connect() as conn:
        expiring = store.expiring_licenses(conn, date.today(), within)
    if not expiring:
        return SkipReason(f"No license expires within {within} days without a workflow")
    return [
        RunRequest(
            run_key=f"license:{asset}:{licensor}:{expires}",
            run_config={
                "ops": {
                    "request_license_action": {
                        "config": {
                            "asset_id": asset,
                            "licensor": licensor,
                            "expires_on": expires.isoformat(),
                            "action": action,
                        }
                    }
                }
            },
            tags={"mm/asset": asset, "mm/license_action": action},
        )
        for asset, licensor, expires, action in expiring
    ]


@op
def sync_kyc_checks(context: OpExecutionContext, postgres: PostgresResource) -> None:
    provider = kyc.provider_for(Settings.from_env())
    with postgres.get_db().connect() as conn:
        counts = kyc.sync(conn, provider)
    context.log.info(f"KYC checks: {counts}")


@job
def kyc_sync_job():
    """Submit KYC checks that are due (again, after an outage) and collect the provider's verdicts."""
    sync_kyc_checks()


@sensor(job=kyc_sync_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
def kyc_checks_sensor(context: SensorEvaluationContext, postgres: PostgresResource):
    """A sync whenever checks are due; one run key per minute, so a slow run is not started twice."""
    with postgres.get_db().connect() as conn:
        waiting = kyc.due(conn)
    if not waiting:
        return SkipReason("No KYC check is due")
    minute = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")
    return RunRequest(run_key=f"kyc-sync:{minute}", tags={"mm/kyc-due": str(waiting)})
