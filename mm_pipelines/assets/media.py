"""Derivatives of uploaded media: thumbnails of images, poster frames and web MP4s of videos."""

from dagster import OpExecutionContext, job, op

from mm_pipelines.media import artifacts, derivatives
from mm_pipelines.media.records import version_row
from mm_pipelines.resources import ObjectStoreResource, PostgresResource


@op
def make_media_derivatives(
    context: OpExecutionContext, postgres: PostgresResource, object_store: ObjectStoreResource
) -> None:
    """Objects first, then their rows: a row never points at a missing object, and a re-run makes nothing twice."""
    asset_id, version = context.op_config["asset_id"], context.op_config["version"]
    with postgres.get_db().connect() as conn:
        row = version_row(conn, asset_id, version)
        done = artifacts.recorded_kinds(conn, asset_id, version)
    wanted = derivatives.kinds_for(row["sniffed_content_type"])
    if row["moderation"] in artifacts.NO_DERIVATIVES:  # blocked since the sensor asked
        context.log.info(f"{asset_id} v{version} is {row['moderation']}: no derivatives are made of it")
        return
    if row["upload_status"] != "uploaded" or set(wanted) <= done:
        context.log.info(f"{asset_id} v{version} ({row['sniffed_content_type']}): nothing to make")
        return
    store = object_store.open()
    made = [
        (kind, content_type, data)
        for kind, content_type, data in derivatives.derivatives_for(
            row["sniffed_content_type"], store.get_bytes(row["object_key"])
        )
        if kind not in done
    ]
    keys = {}
    for kind, content_type, data in made:
        keys[kind] = artifacts.artifact_key(asset_id, version, kind, content_type)
        store.put_bytes(keys[kind], data)
    with postgres.get_db().connect() as conn:
        recorded = [
            kind
            for kind, content_type, data in made
            if artifacts.record_artifact(conn, asset_id, version, kind, keys[kind], content_type, data, context.run_id)
        ]
    context.log.info(f"{asset_id} v{version}: recorded {recorded or 'nothing new'}")


@job(config={"ops": {"make_media_derivatives": {"config": {"asset_id": "", "version": 1}}}})
def media_derivatives_job():
    """The derivatives of one uploaded version (asset_id, version)."""
    make_media_derivatives()
