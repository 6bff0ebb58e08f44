"""The InfluxDB telemetry store: v2 line-protocol writes, InfluxQL reads.

Writes go through influxdb-client's async v2 write API; its errors are sorted the way
Telegraf's influxdb_v2 output sorts them: 413 splits the batch in halves, 400/422 is the
data's fault (``PointsRejected``), everything else (429/503 with Retry-After, auth
failures, other 5xx, refused connections, timeouts) is ``StoreUnavailable`` so the ingest
keeps the batch in its spool and retries. Reads are InfluxQL over ``GET /query``, which
InfluxDB 1.x, 2.x (v1 compatibility API) and 3.x all answer.

With ``rollups`` (``sealscope.storage.rollups``), a query whose ``every_s`` is a multiple
of a rollup's width reads that rollup's per-bucket sums and counts instead of the raw
samples; the edges of the range that are not whole rollup buckets, and the tail the
rollup has not reached yet (newer than its last point for that device), are read raw and
merged bucket by bucket, so the means are the raw means.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from influxdb_client import WritePrecision
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api_async import WriteApiAsync

from sealscope.errors import ConfigError, PointsRejected, StoreError, StoreUnavailable
from sealscope.storage import VITAL_FIELDS, Latest, Point, TelemetryQuery
from sealscope.storage.influxql import quote_ident, quote_literal
from sealscope.storage.lineprotocol import encode_points

# how far back latest() looks: a device silent for longer reads as never reported
LATEST_WINDOW = "400d"

if TYPE_CHECKING:
    from sealscope.config import Settings
    from sealscope.storage.rollups import Rollup

__all__ = ["InfluxStore", "quote_ident", "quote_literal"]

log = logging.getLogger(__name__)

_REJECTED_STATUSES = frozenset({400, 422})


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After is delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _TooLarge(Exception):
    """The store refused the request body as too large (413)."""


class InfluxStore:
    """``TelemetryStore`` on InfluxDB; ``token`` is sent as ``Authorization: Token ...``."""

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        org: str,
        bucket: str,
        database: str | None = None,
        timeout_s: float = 10.0,
        rollups: Sequence[Rollup] = (),
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("influx_url", f"{url!r} is not an http(s) URL")
        if not bucket:
            raise ConfigError("influx_bucket", "must not be empty")
        if timeout_s <= 0:
            raise ConfigError("influx_timeout_s", "must be positive")
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self.database = database or bucket
        self.timeout_s = timeout_s
        # widest first: the first that divides a query's bucket width serves it
        self.rollups = tuple(sorted(rollups, key=lambda r: -r.every_s))
        self._token = token
        # both are built on first use: the async client insists on a running event loop
        self._client: InfluxDBClientAsync | None = None
        self._write_api: WriteApiAsync | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxStore:
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        return cls(
            url=settings.influx_url,
            token=token,
            org=settings.influx_org,
            bucket=settings.influx_bucket,
            database=settings.influx_database,
            timeout_s=settings.influx_timeout_s,
        )

    def __repr__(self) -> str:
        return f"InfluxStore(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r})"

    async def write(self, points: Sequence[Point]) -> None:
        if points:
            await self._write_splitting(points)

    async def query(self, q: TelemetryQuery) -> list[tuple[int, float]]:
        if q.start_ns >= q.stop_ns or q.limit < 1:
            return []
        rollup = self._rollup_for(q)
        if rollup is not None:
            return await self._query_rollup(q, rollup)
        body = await self._get_query(self._influxql(q))
        rows: list[tuple[int, float]] = []
        n_series = 0
        for result in body.get("results", []):
            if "error" in result:
                raise StoreError(f"InfluxQL error: {result['error']}")
            for series in result.get("series", []):
                n_series += 1
                rows.extend((int(t), float(v)) for t, v in series["values"] if v is not None)
        if n_series > 1:
            rows.sort()
        return rows

    async def latest(self) -> dict[str, Latest]:
        """Each device's newest point (over ``LATEST_WINDOW``) and newest vitals: one
        ``last()`` per wire field grouped by device, all in one request (last() reads the
        newest block of each series, not the window)."""
        from sealscope.wire import SAMPLE_FIELDS

        source = ", ".join(quote_ident(m) for m in ("valve", "pump"))
        statements = ";".join(
            f"SELECT last({quote_ident(f)}) FROM {source}"
            f" WHERE time > now() - {LATEST_WINDOW} GROUP BY {quote_ident('device_id')}"
            for f in SAMPLE_FIELDS
        )
        body = await self._get_query(statements)
        out: dict[str, Latest] = {}
        for f, result in zip(SAMPLE_FIELDS, body.get("results", []), strict=False):
            if "error" in result:
                raise StoreError(f"InfluxQL error: {result['error']}")
            for series in result.get("series", []):
                device_id = (series.get("tags") or {}).get("device_id", "")
                for t, value in series["values"]:
                    if value is None or not device_id:
                        continue
                    was = out.get(device_id, Latest(0, {}))
                    if f in VITAL_FIELDS:
                        was.values[f] = (int(t), float(value))
                    out[device_id] = Latest(max(was.t_ns, int(t)), was.values)
        return out

    async def execute(self, influxql: str, *, missing_ok: bool = False) -> dict[str, Any]:
        """POST a statement that changes the database (retention policies, continuous
        queries, ``SELECT ... INTO``); ``missing_ok`` ignores a "not found" on DROP."""
        body = await self._get_query(influxql, method="POST")
        for result in body.get("results", []):
            error = result.get("error")
            if error and not (missing_ok and "not found" in error):
                raise StoreError(f"InfluxQL error: {error}")
        return body

    async def ping(self) -> bool:
        """True when the store answers ``/ping`` with 2xx."""
        try:
            async with self._http().get(f"{self.url}/ping") as resp:
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        client, self._client, self._write_api = self._client, None, None
        session, self._session = self._session, None
        if client is not None:
            await client.close()
        if session is not None:
            await session.close()

    async def _write_splitting(self, points: Sequence[Point]) -> None:
        try:
            await self._send(encode_points(points))
        except _TooLarge as exc:
            if len(points) == 1:
                raise PointsRejected(
                    "a single point exceeds the store's request size limit", status=413
                ) from exc
            # writes are idempotent, so a half that lands before the other fails is harmless
            half = len(points) // 2
            log.debug("request too large for %d points; writing halves", len(points))
            await self._write_splitting(points[:half])
            await self._write_splitting(points[half:])

    async def _send(self, body: str) -> None:
        try:
            await self._writer().write(
                bucket=self.bucket,
                org=self.org,
                record=body,
                # the client declares its own constant WritePrecision.NS a plain str
                write_precision=WritePrecision.NS,  # type: ignore[arg-type]
            )
        except InfluxDBError as exc:
            status = getattr(exc, "status", None)
            if status is None and exc.response is not None:
                status = exc.response.status
            message = exc.message
            if isinstance(message, bytes):  # the client hands back bodies that are not JSON
                message = message.decode("utf-8", "replace")
            reason = f"InfluxDB write failed ({status}): {message}"
            if status == 413:
                raise _TooLarge from exc
            if status in _REJECTED_STATUSES:
                raise PointsRejected(reason, status=status) from exc
            raise StoreUnavailable(reason, retry_after_s=_retry_after_s(exc.retry_after)) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {exc}") from exc

    async def _get_query(self, influxql: str, method: str = "GET") -> dict[str, Any]:
        params = {"db": self.database, "q": influxql, "epoch": "ns"}
        try:
            async with self._http().request(method, f"{self.url}/query", params=params) as resp:
                if resp.status >= 500 or resp.status in (401, 403, 429):
                    raise StoreUnavailable(
                        f"InfluxDB query failed ({resp.status}): {await resp.text()}",
                        retry_after_s=_retry_after_s(resp.headers.get("Retry-After")),
                    )
                if resp.status >= 400:
                    raise StoreError(f"InfluxDB query failed ({resp.status}): {await resp.text()}")
                body: dict[str, Any] = await resp.json(content_type=None)
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        except ValueError as exc:
            raise StoreError(f"InfluxDB answered a query with invalid JSON: {exc}") from exc

    def _influxql(self, q: TelemetryQuery) -> str:
        where = (
            f"WHERE {quote_ident('device_id')} = {quote_literal(q.device_id)}"
            f" AND time >= {int(q.start_ns)} AND time < {int(q.stop_ns)}"
        )
        source = quote_ident(q.measurement)
        field = quote_ident(q.field)
        if not q.every_s:
            return f"SELECT {field} FROM {source} {where} LIMIT {int(q.limit)}"
        if q.every_s < 0:
            raise ValueError(f"every_s={q.every_s}: must be a positive number of seconds")
        return (
            f"SELECT mean({field}) FROM {source} {where}"
            f" GROUP BY time({int(q.every_s)}s) fill(none) LIMIT {int(q.limit)}"
        )

    def _rollup_for(self, q: TelemetryQuery) -> Rollup | None:
        if not q.every_s or q.every_s < 0:
            return None
        for rollup in self.rollups:
            if q.every_s % rollup.every_s == 0:
                return rollup
        return None

    async def _query_rollup(self, q: TelemetryQuery, rollup: Rollup) -> list[tuple[int, float]]:
        width_ns = rollup.every_s * 1_000_000_000
        first = -(-q.start_ns // width_ns) * width_ns  # whole rollup buckets: [first, last)
        last = q.stop_ns // width_ns * width_ns
        if first >= last:
            return await self._sum_count_means(q, [self._raw_sum_count(q, q.start_ns, q.stop_ns)])
        device = f"{quote_ident('device_id')} = {quote_literal(q.device_id)}"
        source = ".".join(map(quote_ident, (self.database, rollup.policy, q.measurement)))
        total, count = quote_ident("sum_" + q.field), quote_ident("count_" + q.field)
        if q.every_s == rollup.every_s:
            # the rollup's own buckets: read them as stored; the first `limit` buckets lie
            # before first + limit widths (a raw head edge is the bucket before `first`)
            last = min(last, first + q.limit * width_ns)
            where = f"WHERE {device} AND time >= {first} AND time < {last}"
            body = await self._get_query(f"SELECT {total} AS s, {count} AS n FROM {source} {where}")
            buckets = self._sum_count(body.get("results", []))
            newest = max(buckets, default=None)
        else:
            where = f"WHERE {device} AND time >= {first} AND time < {last}"
            body = await self._get_query(
                f"SELECT sum({total}) AS s, sum({count}) AS n FROM {source} {where}"
                f" GROUP BY time({int(q.every_s or rollup.every_s)}s) fill(none)"
                f" LIMIT {int(q.limit)}; SELECT last({count}) FROM {source} {where}"
            )
            results = body.get("results", [])
            buckets = self._sum_count(results[:1])
            newest = next((row[0] for row in self._values(results[1:2])), None)
        # the rollup has this device up to its newest bucket; later samples are read raw
        covered = newest + width_ns if newest is not None else first
        edges = [self._raw_sum_count(q, q.start_ns, first)] if q.start_ns < first else []
        if covered < q.stop_ns and len(buckets) < q.limit:
            edges.append(self._raw_sum_count(q, covered, q.stop_ns))
        return await self._sum_count_means(q, edges, buckets)

    def _raw_sum_count(self, q: TelemetryQuery, start_ns: int, stop_ns: int) -> str:
        field = quote_ident(q.field)
        return (
            f"SELECT sum({field}) AS s, count({field}) AS n FROM {quote_ident(q.measurement)}"
            f" WHERE {quote_ident('device_id')} = {quote_literal(q.device_id)}"
            f" AND time >= {int(start_ns)} AND time < {int(stop_ns)}"
            f" GROUP BY time({int(q.every_s or 1)}s) fill(none) LIMIT {int(q.limit)}"
        )

    async def _sum_count_means(
        self,
        q: TelemetryQuery,
        statements: list[str],
        buckets: dict[int, list[float]] | None = None,
    ) -> list[tuple[int, float]]:
        """Add the buckets of ``statements`` (sum ``s``, count ``n``) and divide."""
        buckets = buckets if buckets is not None else {}
        if statements:
            body = await self._get_query("; ".join(statements))
            for t, (s, n) in self._sum_count(body.get("results", [])).items():
                bucket = buckets.setdefault(t, [0.0, 0.0])
                bucket[0] += s
                bucket[1] += n
        rows = [(t, s / n) for t, (s, n) in sorted(buckets.items()) if n]
        return rows[: q.limit]

    def _sum_count(self, results: list[dict[str, Any]]) -> dict[int, list[float]]:
        buckets: dict[int, list[float]] = {}
        for t, s, n in self._values(results):
            if s is not None and n:
                bucket = buckets.setdefault(int(t), [0.0, 0.0])
                bucket[0] += float(s)
                bucket[1] += float(n)
        return buckets

    @staticmethod
    def _values(results: list[dict[str, Any]]) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for result in results:
            if "error" in result:
                raise StoreError(f"InfluxQL error: {result['error']}")
            for series in result.get("series", []):
                rows.extend(series["values"])
        return rows

    def _writer(self) -> WriteApiAsync:
        if self._write_api is None:
            self._client = InfluxDBClientAsync(
                url=self.url,
                token=self._token,
                org=self.org,
                timeout=int(self.timeout_s * 1000),
            )
            self._write_api = self._client.write_api()
        return self._write_api

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": f"Token {self._token}"} if self._token else None
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session
