"""Signal receivers: budgets follow the ledger."""

from __future__ import annotations

import datetime as dt
import logging

from apps.budgets import services

logger = logging.getLogger(__name__)


def refresh_budget_states(sender, *, organisation_id: int, days: list[dt.date], **kwargs) -> None:
    """After rollups commit: refresh the budget states of those days, in the ingesting process.

    Synchronous on purpose: when an ingestion finishes, the check API already answers with its spend.
    A failure here must not fail the ingestion, whose rows are committed: it is logged, and the scheduled
    refresh (or `manage.py refresh_budgets`) catches up.
    """
    try:
        services.state_refresh(organisation_id=organisation_id, days=days)
    except Exception:
        logger.exception("budget state refresh failed for organisation %s", organisation_id)
