"""Money display rules: integer nano-dollars in the ledger, decimal strings at the edges."""

from decimal import Decimal

NANOS = Decimal(1_000_000_000)


def nanos_to_usd(nanos: int | None) -> Decimal | None:
    return None if nanos is None else Decimal(nanos) / NANOS


def usd_text(nanos: int | None) -> str | None:
    """Exact, nine decimals: what the API and CLI print (e.g. "12.345678000")."""
    return None if nanos is None else f"{Decimal(nanos).scaleb(-9):.9f}"
