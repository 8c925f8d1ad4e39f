"""The Faust app factory: ``create_app(settings) -> faust.App``. No import-time app exists."""

from __future__ import annotations

import logging
from typing import Any

import faust

from stream import faust_guards
from stream.faust_guards import patches, restore, sensors
from stream.model_files import load_default_models, load_model_file
from stream.readmodel import projector
from stream.scoring import ModelSet
from stream.settings import Settings
from stream.web import collector
from stream.web import lead_api as leads_api
from stream.web import read_api as api
from stream.worker import native_memory, processor
from stream.worker.port import CoreEngine

log = logging.getLogger(__name__)


def faust_options(settings: Settings) -> dict[str, object]:
    """Every Faust option Leadstream sets, passed explicitly."""
    return {
        "id": settings.app_id,
        "broker": settings.broker_url,
        "store": f"{settings.store}://",
        "datadir": str(settings.data_dir),
        "autodiscover": False,
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication,
        "processing_guarantee": settings.processing_guarantee,
        "table_standby_replicas": settings.standby_replicas,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.session_timeout_s / 3),
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": settings.web_enabled,
        "web_host": settings.web_host,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "web_in_thread": False,
        "producer_linger_ms": 5,
        "consumer_max_fetch_size": settings.consumer_fetch_mb * 1024 * 1024,
        "broker_commit_every": 1000,
        "broker_commit_interval": 2.0,
        "stream_wait_empty": True,
        "table_cleanup_interval": 30.0,
        **({"canonical_url": settings.advertised_url} if settings.advertised_url else {}),
    }


def create_app(settings: Settings) -> faust.App:
    """Build a fresh Leadstream Faust app with its topics, tables and agents."""
    faust_guards.install()
    app = faust.App(**faust_options(settings))
    sensors.quiet_monitor(app)
    patches.set_fetch_batching(
        app,
        settings.consumer_fetch_min_kb * 1024,
        settings.consumer_fetch_wait_ms,
        settings.consumer_idle_wait_ms,
    )
    patches.set_producer_idempotence(app, settings.producer_idempotence)
    if settings.bulk_restore:
        restore.enable(app, settings, fetch_bytes=settings.consumer_fetch_mb * 1024 * 1024)
    models = (
        load_model_file(settings.models_path) if settings.models_path else load_default_models()
    )
    if not settings.accounts_enabled and models.accounts is not None:
        models = ModelSet(format=models.format, models=models.models)
    announce_standbys(app)
    lead_processor = processor.register(app, settings, CoreEngine(models))
    leads_api.register(app, settings, lead_processor, models)
    collector.register(app, settings)
    projector.register(app, settings)
    api.register(app, settings, models=models)

    @app.timer(interval=native_memory.TRIM_EVERY_S)
    async def trim_native_heap() -> None:
        native_memory.trim()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        """Liveness: the worker's event loop answers."""
        return web.json({"status": "ok", "app": settings.app_id})

    return app


def announce_standbys(app: faust.App) -> None:
    """Log, once per assignment, when this worker's standby replicas have read their changelogs
    up to the end offsets taken when they started: from then on it can take over their
    partitions without a long restore. (Faust flags "standbys ready" as soon as it starts
    reading them, so the flag cannot tell.)"""
    announced: dict[str, int] = {}

    @app.timer(interval=1.0)
    async def standbys_ready() -> None:
        recovery: Any = app.tables.recovery
        standby = set(recovery.standby_tps)
        generation = app.consumer_generation_id
        if not standby or announced.get("generation") == generation or app.rebalancing:
            return
        if not standby <= set(recovery.standby_highwaters):
            return  # their end offsets are not known yet
        if recovery.standby_remaining_total() == 0:
            announced["generation"] = generation
            log.info("standby replicas ready: %d changelog partition(s) caught up", len(standby))
