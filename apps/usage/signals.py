"""Signals other apps listen to, so the ledger does not import its readers."""

from django.dispatch import Signal

# Sent after the daily rollups of some days were recomputed and committed.
# Arguments: organisation_id (int), days (list[datetime.date]).
rollups_refreshed = Signal()
