"""Signal receivers: the narrow rollups follow the ledger's daily rollup."""

from __future__ import annotations

import datetime as dt
import logging

from apps.dashboards import services

logger = logging.getLogger(__name__)


def refresh_narrow_rollups(sender, *, organisation_id: int, days: list[dt.date], **kwargs) -> None:
    """After the daily rollups of some days commit: rebuild the same days of the narrow rollups.

    Synchronous, so a dashboard shows an ingestion's rows as soon as it finishes. A failure must not fail
    the ingestion, whose rows are committed (nor stop the other receivers): it is logged, and
    `manage.py refresh_dashboard_rollups` rebuilds from the ledger's rollups.
    """
    try:
        services.refresh_narrow_rollups(organisation_id=organisation_id, days=days)
    except Exception:
        logger.exception("dashboard rollup refresh failed for organisation %s", organisation_id)
