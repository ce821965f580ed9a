"""Re-pricing stored facts, set-wise in SQL, after a change of overrides, mappings or price data.

1. One aggregate over the facts in scope finds the groups one price covers: (model, batch, current price
   reference - which carries the service tier -, price period start) and the days they fall on.
2. Each group is priced once in Python (apps.catalog.prices.OrganisationPrices, the code ingestion uses),
   at the start of its own price period: a fact keeps the price of its own day, never today's.
3. The rates of every group (one row per tier segment: whole nano-dollars and femto-dollar rests per
   token kind, list and net) go to a temporary table, and one UPDATE ... FROM joins it to the facts and
   computes both costs with integer arithmetic and half-even rounding - the same arithmetic as
   `Pricer.cost` (tests hold them equal to the nano-dollar). Only rows whose list or net cost, price
   reference or overrides change are written.
4. Rows SQL cannot price exactly (a count of 2^36 tokens or more, rates finer than a femto-dollar) are
   read and priced one by one in Python, then written back the same way.
5. The rollups of the days touched are refreshed.

Scope: the organisation's facts that are not billed (an invoice line is its own cost) and not failed (a
failed request costs what its source says), optionally from a UTC date on and for some models only.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection

from apps.catalog.models import AIModel, PriceRef
from apps.catalog.prices import EXACT_TOKEN_LIMIT, GroupPrice, OrganisationPrices, Segment
from apps.catalog.pricing import FEMTOS_PER_NANO, PriceMatch, Pricer
from apps.usage.columns import TOKEN_COLUMNS
from apps.usage.reconcile import Layer, source_layers

logger = logging.getLogger(__name__)
RATES = "catalog_reprice_rates"
RESULTS = "catalog_reprice_results"
_SQL_MODE, _PYTHON_MODE, _UNPRICED_MODE = 0, 1, 2
_NO_REF = -1  # stands for NULL in join keys
_DAY_SECONDS, _SLOT_SECONDS = 86_400, 900
_FOREVER = 2**62  # the upper bound of an open last segment


@dataclass
class Totals:
    rows: int = 0
    list_nanos: int = 0
    net_nanos: int = 0
    unpriced: int = 0


@dataclass
class RepriceResult:
    before: Totals
    after: Totals
    rows_changed: int
    days: set[dt.date] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)  # per step, for the benchmark and the logs


_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def _slot_start(slot_model_ids: list[int]) -> str:
    """SQL: the start of a fact's price period (its UTC day, or its time-of-day slot), as a key to join on.

    PostgreSQL: a timestamptz from date_bin (integer arithmetic on the timestamp); SQLite: epoch seconds.
    """
    ids = ", ".join(str(int(model_id)) for model_id in slot_model_ids)
    if connection.vendor == "postgresql":
        day = f"date_bin('1 day', f.ts, {_ORIGIN})"
        slot = f"date_bin('{_SLOT_SECONDS} seconds', f.ts, {_ORIGIN})"
    else:
        # Django's SQLite text cut to whole seconds; %% because statements go through parameter formatting.
        epoch = "CAST(strftime('%%s', substr(f.ts, 1, 19)) AS INTEGER)"
        day = f"({epoch} / {_DAY_SECONDS}) * {_DAY_SECONDS}"
        slot = f"({epoch} / {_SLOT_SECONDS}) * {_SLOT_SECONDS}"
    return f"CASE WHEN f.model_id IN ({ids}) THEN {slot} ELSE {day} END" if ids else day


def _slot_seconds(value) -> int:
    """A slot key as read back (a datetime on PostgreSQL, epoch seconds on SQLite) -> epoch seconds."""
    return int(value.timestamp()) if isinstance(value, dt.datetime) else int(value)


def _slot_key(seconds: int):
    """Epoch seconds -> the slot key as the database compares it."""
    if connection.vendor == "postgresql":
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return seconds


def _scope(organisation_id: int, since: dt.date | None, model_ids: Iterable[int] | None) -> tuple[str, list]:
    billing = sorted(
        source for source, layer in source_layers(organisation_id).items() if layer == Layer.BILLING
    )
    clauses, params = ["f.organisation_id = %s", "NOT f.failed"], [organisation_id]
    if billing:
        clauses.append(f"f.source_id NOT IN ({', '.join(['%s'] * len(billing))})")
        params.extend(billing)
    if model_ids is not None:
        ids = sorted(set(model_ids))
        if not ids:
            clauses.append("1 = 0")
        else:
            clauses.append(f"f.model_id IN ({', '.join(['%s'] * len(ids))})")
            params.extend(ids)
    if since is not None:
        start = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC)
        # The day column is indexed; a local day starts at most 14 hours before or after its UTC day.
        clauses.append("f.day >= %s AND f.ts >= %s")
        params.extend(
            [since - dt.timedelta(days=1), start if connection.vendor == "postgresql" else _sqlite_ts(start)]
        )
    return " AND ".join(clauses), params


def _sqlite_ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")


def _totals(cursor, where: str, params: list) -> Totals:
    cursor.execute(
        "SELECT COUNT(*), COALESCE(SUM(f.list_cost_nanos), 0), COALESCE(SUM(f.cost_nanos), 0), "  # noqa: S608
        f"SUM(CASE WHEN f.cost_nanos IS NULL THEN 1 ELSE 0 END) FROM usage_usagefact f WHERE {where}",
        params,
    )
    rows, list_nanos, net_nanos, unpriced = cursor.fetchone()
    return Totals(int(rows), int(list_nanos), int(net_nanos), int(unpriced or 0))


def _tier_of(context: str) -> str | None:
    for part in context.split(","):
        key, _, value = part.partition("=")
        if key == "service_tier":
            return value or None
    return None


def _split(rate: int) -> tuple[int, int]:
    return divmod(rate, FEMTOS_PER_NANO)


def _cost_sql(prefix: str) -> str:
    """SQL: nano-dollars of f's tokens at the rates r.{prefix}w0..5 (whole nanos) and r.{prefix}r0..5 (rests).

    Exactly `round_to_nanos(sum(tokens x femto rate))`: the whole parts are exact, the rests' sum is
    divided by 1e6 and rounded half-even. With counts below EXACT_TOKEN_LIMIT every product fits 64 bits.
    Most prices are whole nano-dollars per token (r.{prefix}exact = 1): then the cost is the whole part.
    """
    whole = " + ".join(f"f.{column} * r.{prefix}w{k}" for k, column in enumerate(TOKEN_COLUMNS))
    rest = " + ".join(f"f.{column} * r.{prefix}r{k}" for k, column in enumerate(TOKEN_COLUMNS))
    quotient = f"(({whole}) + ({rest}) / {FEMTOS_PER_NANO})"
    remainder = f"(({rest}) %% {FEMTOS_PER_NANO})"  # %%: the statement goes through parameter formatting
    half = FEMTOS_PER_NANO // 2
    return (
        f"(CASE WHEN r.{prefix}exact = 1 THEN {whole} ELSE {quotient} + CASE WHEN {remainder} > {half} "
        f"OR ({remainder} = {half} AND {quotient} %% 2 = 1) THEN 1 ELSE 0 END END)"
    )


def _input_total_sql() -> str:
    """SQL: the row's input total, or -2 when a count is too large for the SQL path (no segment matches)."""
    small = " AND ".join(f"f.{column} < {EXACT_TOKEN_LIMIT}" for column in TOKEN_COLUMNS)
    total = " + ".join(f"f.{column}" for column in TOKEN_COLUMNS[:4])
    return f"(CASE WHEN {small} THEN {total} ELSE -2 END)"


_RATE_COLUMNS = (
    "model_id BIGINT, batch BOOLEAN, old_ref BIGINT, slot_start {slot_type}, segment INTEGER, "
    "seg_lo BIGINT, seg_hi BIGINT, mode INTEGER, group_no INTEGER, new_ref BIGINT, override_set BIGINT, "
    "lexact INTEGER, nexact INTEGER, "
    + ", ".join(f"l{kind}{k} BIGINT" for kind in "wr" for k in range(6))
    + ", "
    + ", ".join(f"n{kind}{k} BIGINT" for kind in "wr" for k in range(6))
)
_RATE_NAMES = (
    "model_id, batch, old_ref, slot_start, segment, seg_lo, seg_hi, mode, group_no, new_ref, override_set, "
    "lexact, nexact, "
    + ", ".join(f"l{kind}{k}" for kind in "wr" for k in range(6))
    + ", "
    + ", ".join(f"n{kind}{k}" for kind in "wr" for k in range(6))
)


def _segment_values(segment: Segment) -> list[int]:
    whole, rest = zip(*(_split(rate) for rate in segment.rates), strict=True)
    return [*whole, *rest]


class Repricer:
    """One re-pricing of one organisation's facts (see the module docstring). Runs inside a transaction."""

    def __init__(self, organisation_id: int, pricer: Pricer | None = None) -> None:
        self.organisation_id = organisation_id
        self.prices = OrganisationPrices(organisation_id, pricer or Pricer())
        self._refs: dict[PriceMatch, int] = {}
        self._sets: dict[tuple[int, ...], int] = {}

    def run(self, *, since: dt.date | None = None, model_ids: Iterable[int] | None = None) -> RepriceResult:
        from apps.usage.services import refresh_rollups

        where, params = _scope(self.organisation_id, since, model_ids)
        seconds: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[step] = round(now - clock, 3)
            clock = now

        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # The same lock as a rollup refresh: the facts and their rollups move together.
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7001, self.organisation_id])
            before = _totals(cursor, where, params)
            slot_models = self._time_of_day_models(cursor, where, params)
            slot = _slot_start(slot_models)
            lap("totals_before")
            cursor.execute(
                f"SELECT f.model_id, f.batch, COALESCE(f.price_ref_id, {_NO_REF}), {slot}, f.day "  # noqa: S608
                f"FROM usage_usagefact f WHERE {where} GROUP BY f.model_id, f.batch, f.price_ref_id, {slot}, f.day",
                params,
            )
            keys: dict[tuple[int, bool, int, int], None] = {}
            days: set[dt.date] = set()
            for model_id, batch, old_ref, slot_start, day in cursor.fetchall():
                keys[(int(model_id), bool(batch), int(old_ref), _slot_seconds(slot_start))] = None
                days.add(day if isinstance(day, dt.date) else dt.date.fromisoformat(day))
            lap("groups")
            groups = self._price_groups(list(keys))
            self._stage_rates(cursor, groups)
            lap("rates")
            changed = self._update_in_sql(cursor, where, params, slot)
            lap("update_sql")
            changed += self._update_in_python(cursor, where, params, slot, groups)
            lap("update_python")
            cursor.execute(f"DROP TABLE IF EXISTS {RATES}")
            cursor.execute(f"DROP TABLE IF EXISTS {RESULTS}")
            after = _totals(cursor, where, params)
            lap("totals_after")
        if days:
            refresh_rollups(organisation_id=self.organisation_id, days=days)
        lap("rollups")
        logger.info("re-priced organisation %s: %s rows changed, %s", self.organisation_id, changed, seconds)
        return RepriceResult(before, after, changed, days, seconds)

    # --- groups ---------------------------------------------------------------------------------------

    def _time_of_day_models(self, cursor, where: str, params: list) -> list[int]:
        cursor.execute(f"SELECT DISTINCT f.model_id FROM usage_usagefact f WHERE {where}", params)  # noqa: S608
        ids = [int(model_id) for (model_id,) in cursor.fetchall()]
        self._models = {
            model.pk: (model.provider.slug, model.name)
            for model in AIModel.objects.filter(pk__in=ids).select_related("provider")
        }
        return sorted(
            pk
            for pk, (provider, name) in self._models.items()
            if self.prices.pricer.period_seconds(provider, name) == _SLOT_SECONDS
        )

    def _price_groups(self, keys: list[tuple[int, bool, int, int]]) -> list[tuple[tuple, GroupPrice]]:
        contexts = dict(
            PriceRef.objects.filter(
                pk__in={old_ref for _, _, old_ref, _ in keys if old_ref != _NO_REF}
            ).values_list("pk", "context")
        )
        groups = []
        for key in keys:
            model_id, batch, old_ref, slot_start = key
            provider, name = self._models[model_id]
            price = self.prices.group_price(
                provider=provider,
                model=name,
                at=dt.datetime.fromtimestamp(slot_start, tz=dt.UTC),
                batch=batch,
                service_tier=_tier_of(contexts.get(old_ref, "")),
            )
            groups.append((key, price))
        return groups

    def _ref_id(self, match: PriceMatch) -> int:
        if match not in self._refs:
            ref, _ = PriceRef.objects.get_or_create(
                source=match.source,
                provider_ref=match.provider_ref,
                model_ref=match.model_ref,
                context=match.context,
            )
            self._refs[match] = ref.pk
        return self._refs[match]

    def _set_id(self, override_ids: tuple[int, ...]) -> int | None:
        if not override_ids:
            return None
        if override_ids not in self._sets:
            from apps.catalog.services import override_set_get_or_create

            self._sets[override_ids] = override_set_get_or_create(override_ids)
        return self._sets[override_ids]

    def _stage_rates(self, cursor, groups: list[tuple[tuple, GroupPrice]]) -> None:
        keep = " ON COMMIT DROP" if connection.vendor == "postgresql" else ""
        cursor.execute(f"DROP TABLE IF EXISTS {RATES}")
        slot_type = "TIMESTAMPTZ" if connection.vendor == "postgresql" else "BIGINT"
        cursor.execute(f"CREATE TEMP TABLE {RATES} ({_RATE_COLUMNS.format(slot_type=slot_type)}){keep}")
        rows = []
        zeros = [0] * 12
        for number, ((model_id, batch, old_ref, slot_start), price) in enumerate(groups):
            head = [model_id, batch, old_ref, _slot_key(slot_start)]
            if not price.priced:
                rows.append(
                    [*head, 0, -1, _FOREVER, _UNPRICED_MODE, number, None, None, 1, 1, *zeros, *zeros]
                )
                continue
            new_ref, override_set = self._ref_id(price.match), self._set_id(price.override_ids)
            net = price.net_segments if price.net_segments is not None else price.list_segments
            if price.list_segments is None or net is None or len(net) != len(price.list_segments):
                rows.append(
                    [
                        *head,
                        0,
                        -1,
                        _FOREVER,
                        _PYTHON_MODE,
                        number,
                        new_ref,
                        override_set,
                        1,
                        1,
                        *zeros,
                        *zeros,
                    ]
                )
                continue
            lower = -1
            for index, (list_segment, net_segment) in enumerate(zip(price.list_segments, net, strict=True)):
                upper = _FOREVER if list_segment.upper is None else list_segment.upper
                rows.append(
                    [
                        *head,
                        index,
                        lower,
                        upper,
                        _SQL_MODE,
                        number,
                        new_ref,
                        override_set,
                        int(all(rate % FEMTOS_PER_NANO == 0 for rate in list_segment.rates)),
                        int(all(rate % FEMTOS_PER_NANO == 0 for rate in net_segment.rates)),
                        *_segment_values(list_segment),
                        *_segment_values(net_segment),
                    ]
                )
                lower = upper
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {RATES} ({_RATE_NAMES}) FROM STDIN") as copy:  # noqa: S608
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(rows[0])) if rows else ""
            if rows:
                cursor.executemany(f"INSERT INTO {RATES} ({_RATE_NAMES}) VALUES ({marks})", rows)  # noqa: S608

    # --- updates --------------------------------------------------------------------------------------

    def _join(self, slot: str) -> str:
        return (
            f"f.model_id = r.model_id AND f.batch = r.batch AND COALESCE(f.price_ref_id, {_NO_REF}) = r.old_ref "
            f"AND {slot} = r.slot_start"
        )

    def _update_in_sql(self, cursor, where: str, params: list, slot: str) -> int:
        list_cost, net_cost, total = _cost_sql("l"), _cost_sql("n"), _input_total_sql()
        target = "usage_usagefact AS f"
        differs = (
            f"(f.list_cost_nanos IS NULL OR f.cost_nanos IS NULL OR f.list_cost_nanos <> {list_cost} "
            f"OR f.cost_nanos <> {net_cost} OR COALESCE(f.price_ref_id, {_NO_REF}) <> r.new_ref "
            f"OR COALESCE(f.override_set_id, {_NO_REF}) <> COALESCE(r.override_set, {_NO_REF}))"
        )
        cursor.execute(
            f"UPDATE {target} SET list_cost_nanos = {list_cost}, cost_nanos = {net_cost}, "  # noqa: S608
            f"price_ref_id = r.new_ref, override_set_id = r.override_set FROM {RATES} r "
            f"WHERE {where} AND r.mode = {_SQL_MODE} AND {self._join(slot)} "
            f"AND {total} > r.seg_lo AND {total} <= r.seg_hi AND {differs}",
            params,
        )
        changed = cursor.rowcount
        cursor.execute(
            f"UPDATE {target} SET list_cost_nanos = NULL, cost_nanos = NULL, price_ref_id = NULL, "  # noqa: S608
            f"override_set_id = NULL FROM {RATES} r WHERE {where} AND r.mode = {_UNPRICED_MODE} "
            f"AND {self._join(slot)} AND (f.cost_nanos IS NOT NULL OR f.list_cost_nanos IS NOT NULL "
            f"OR f.price_ref_id IS NOT NULL OR f.override_set_id IS NOT NULL)",
            params,
        )
        return changed + cursor.rowcount

    def _update_in_python(
        self, cursor, where: str, params: list, slot: str, groups: list[tuple[tuple, GroupPrice]]
    ) -> int:
        """Rows the SQL left alone: huge counts, or a price SQL cannot carry. Few; priced one by one."""
        large = " OR ".join(f"f.{column} >= {EXACT_TOKEN_LIMIT}" for column in TOKEN_COLUMNS)
        columns = ", ".join(f"f.{column}" for column in TOKEN_COLUMNS)
        cursor.execute(
            f"SELECT f.id, r.group_no, f.list_cost_nanos, f.cost_nanos, f.price_ref_id, f.override_set_id, "  # noqa: S608
            f"{columns} FROM usage_usagefact f JOIN {RATES} r ON {self._join(slot)} "
            f"WHERE {where} AND r.segment = 0 AND r.mode <> {_UNPRICED_MODE} AND (r.mode = {_PYTHON_MODE} OR {large})",
            params,
        )
        results = []
        for fact_id, group_no, old_list, old_net, old_ref, old_set, *counts in cursor.fetchall():
            price = groups[group_no][1]
            counts = [int(count) for count in counts]
            row = (
                int(fact_id),
                price.list_cost(counts),
                price.net_cost(counts),
                self._ref_id(price.match),
                self._set_id(price.override_ids),
            )
            if (old_list, old_net, old_ref, old_set) != row[1:]:
                results.append(row)
        if not results:
            return 0
        keep = " ON COMMIT DROP" if connection.vendor == "postgresql" else ""
        cursor.execute(f"DROP TABLE IF EXISTS {RESULTS}")
        cursor.execute(
            f"CREATE TEMP TABLE {RESULTS} (id BIGINT PRIMARY KEY, list_cost BIGINT, net_cost BIGINT, "
            f"new_ref BIGINT, override_set BIGINT){keep}"
        )
        cursor.executemany(f"INSERT INTO {RESULTS} VALUES (%s, %s, %s, %s, %s)", results)  # noqa: S608
        cursor.execute(
            "UPDATE usage_usagefact AS f SET list_cost_nanos = x.list_cost, cost_nanos = x.net_cost, "  # noqa: S608
            f"price_ref_id = x.new_ref, override_set_id = x.override_set FROM {RESULTS} x WHERE f.id = x.id"
        )
        return len(results)


def remap_model(*, organisation_id: int, from_model_id: int, to_model_id: int) -> set[dt.date]:
    """Move an organisation's facts from one model to another (a new mapping); returns the days moved."""
    target = AIModel.objects.get(pk=to_model_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT day FROM usage_usagefact WHERE organisation_id = %s AND model_id = %s",
            [organisation_id, from_model_id],
        )
        days = {
            day if isinstance(day, dt.date) else dt.date.fromisoformat(day) for (day,) in cursor.fetchall()
        }
        cursor.execute(
            "UPDATE usage_usagefact SET model_id = %s, provider_id = %s WHERE organisation_id = %s AND model_id = %s",
            [target.pk, target.provider_id, organisation_id, from_model_id],
        )
    return days
