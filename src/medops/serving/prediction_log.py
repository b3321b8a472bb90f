"""The prediction log: what every served answer is kept as, and how it is stored and read back.

A server appends records to its spool (medops.serving.spool), which drains them into the
``predictions`` table of the metadata store. Records hold the scored row's features, never a
raw identifier: an entity named in a request is kept only as its pseudonym.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isfinite
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from medops.clock import duration, parse_iso, to_iso, utc_now
from medops.errors import InvalidInput, NotFound
from medops.store.schema import Prediction

if TYPE_CHECKING:
    from medops.platform import Platform
    from medops.serving.models import ServedModel
    from medops.serving.spool import Spool
    from medops.store.database import Database

VARIANTS = ("champion", "canary", "shadow")
OUTPUT_KEYS = ("probability", "decision", "threshold", "out_of_range", "features")

log = logging.getLogger("medops.spool")


def record(
    model: ServedModel,
    answer: dict[str, Any],
    inputs: dict[str, Any],
    *,
    caller: str,
    request_id: str,
    latency_ms: float,
    variant: str = "champion",
    entity: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """One log record from the answer ``prediction()`` built and the row that was scored; ``at`` (ISO
    time, default now) is given once for all the rows of a request.

    The row, the output and the explanation are JSON text already, as the table holds them: encoded
    once here, not decoded and encoded again when the spool drains.
    """
    explanation = answer.get("explanation")
    return {
        "id": answer["prediction_id"],
        "at": at or to_iso(utc_now()),
        "model": model.name,
        "version": model.version,
        "bundle_sha256": model.bundle_sha256,
        "variant": variant,
        "request_id": request_id,
        "caller": caller,
        "entity": entity,
        "inputs": _json(inputs),
        "output": _output(answer),
        "explanation": None if explanation is None else _json(explanation),
        "latency_ms": round(latency_ms, 3),
    }


# json.dumps with these options builds an encoder per call: the drain encodes two texts per row
_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


_string = json.encoder.encode_basestring_ascii  # a str as JSON, as _json writes it
_JSON_START = frozenset(b"{[ \t\r\n")  # UTF-8 JSON text; a BOM or UTF-16 (json.loads takes both) is not


def request_line(
    body: bytes, answer: bytes, *, caller: str, request_id: str, latency_ms: float, at: str
) -> bytes | None:
    """A whole request as one spool line: the body as sent and the response's body, both bytes already in hand.

    Why: building and encoding a record per row cost a request more than scoring it. The drain
    splits the line into the rows' records (``parse_line``), off the request's path. Only for a body
    whose every row was scored as sent (no entity looked up): the body is then exactly the rows the
    log must keep. None when the bytes can't stand inside a line; the caller logs per row instead.

    The body's length comes first and the body last, so the drain takes a one-row body's text as it
    is, without decoding and encoding it again.
    """
    if not body or body[0] not in _JSON_START or b"\0" in body:
        return None
    # a newline in valid JSON is whitespace between tokens (json.loads refuses one inside a string)
    if b"\n" in body:
        body = body.replace(b"\n", b" ")
    # the head as _json writes it (tested), without a dict: every answered request pays for this line
    head = (
        f'{{"body_bytes":{len(body)},"at":{_string(at)},"request_id":{_string(request_id)},'
        f'"caller":{_string(caller)},"latency_ms":{round(latency_ms, 3)!r},"answer":'
    )
    return b"".join((head.encode(), answer, _ROWS, body, b"}\n"))


_ROWS = b',"rows":'
_BODY_BYTES = b'{"body_bytes":'


def parse_line(line: bytes) -> dict[str, Any]:
    """A spooled line as ``expand`` takes it: a request line's body kept as text (``rows_text``).

    ValueError for a line that is not JSON, or whose body's length does not match (an edited file).
    """
    if not line.startswith(_BODY_BYTES):  # a record per row, or a request line of an earlier release
        return _object(json.loads(line))
    comma = line.index(b",", len(_BODY_BYTES))
    size = int(line[len(_BODY_BYTES) : comma])
    start = len(line) - 1 - size
    if size <= 0 or start < comma or line[start - len(_ROWS) : start] != _ROWS or not line.endswith(b"}"):
        raise ValueError("a request line's body is not where its length says")
    head = _object(json.loads(line[: start - len(_ROWS)] + b"}"))
    head["rows_text"] = line[start:-1]
    return head


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("a spooled line is not a JSON object")
    return value


def expand(line: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-row records of a request line (a record written per row comes back as it is)."""
    if "rows_text" in line:
        text = line["rows_text"].strip()
        # one row sent as an object: its text is the record's inputs, as sent (JSON that was parsed to score it)
        rows = [_json_text(text)] if text.startswith(b"{") else json.loads(text)
    elif "rows" in line:
        rows = line["rows"]
    else:
        return [line]
    rows = rows if isinstance(rows, list) else [rows]
    answers = line["answer"]["predictions"]
    if len(rows) != len(answers):
        raise ValueError("a request line's rows and answers differ in number")
    return [
        {
            "id": answer["prediction_id"],
            "at": line["at"],
            "model": answer["model"],
            "version": answer["version"],
            "bundle_sha256": answer["bundle_sha256"],
            "variant": answer.get("variant", "champion"),
            "request_id": line["request_id"],
            "caller": line["caller"],
            "entity": None,
            "inputs": row if isinstance(row, str) else _json(row),
            "output": _output(answer),
            "explanation": None if answer.get("explanation") is None else _json(answer["explanation"]),
            "latency_ms": line["latency_ms"],
        }
        for row, answer in zip(rows, answers, strict=True)
    ]


def _output(answer: dict[str, Any]) -> str:
    """What the caller received of a row, as ``_json`` encodes it; the usual answer (no flags) formatted
    directly, since an encoder's set-up cost the drain more than the rest of the row's record."""
    probability, decision, threshold = answer["probability"], answer["decision"], answer["threshold"]
    if (
        type(probability) is float
        and type(threshold) is float
        and type(decision) is int
        and isfinite(probability)
        and isfinite(threshold)
        and "out_of_range" not in answer
        and "features" not in answer
    ):
        return f'{{"probability":{probability!r},"decision":{decision!r},"threshold":{threshold!r}}}'
    return _json({k: answer[k] for k in OUTPUT_KEYS if k in answer})


def _json_text(text: bytes) -> str:
    """A row's JSON text as sent; re-encoded when it is not UTF-8 a database takes (a lone surrogate)."""
    try:
        return text.decode()
    except UnicodeDecodeError:
        return _json(json.loads(text))


def store(platform: Platform) -> Any:
    """The spool's sink: insert a segment's records, skipping any the table already holds."""
    return store_into(platform.db)


def store_into(db: Database) -> Any:
    """``store`` for a process that holds the database alone (medops.serving.drain_process)."""

    sqlite = db.dialect == "sqlite"
    mark = "?" if sqlite else "%s"  # the driver's own parameter style: the statement goes to it as written
    statement = (
        f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING"
    )

    def insert(lines: Sequence[bytes | dict[str, Any]]) -> None:
        rows = _rows(lines, sqlite)
        if not rows:
            return
        with db.write() as session:
            # the driver's executemany: SQLAlchemy's per-row bind processing cost the drain more than the
            # rows' JSON (the values are already what the column types would have made of them; tested)
            connection = session.connection()
            for start in range(0, len(rows), 1_000):
                connection.exec_driver_sql(statement, rows[start : start + 1_000])

    return insert


def open_spool(platform: Platform) -> Spool:
    """A server's spool: drained into the metadata store by a process of its own (medops.serving.drain_process)."""
    from medops.serving.drain_process import DrainProcess
    from medops.serving.spool import Spool

    spool = Spool(spool_root(platform), store(platform), sync=platform.settings.prediction_log_sync)
    spool.offload = lambda folder: DrainProcess(platform.db, folder, spool.drain_seconds)
    return spool


def spool_root(platform: Platform) -> Path:
    return platform.settings.prediction_spool_root


def recover(platform: Platform) -> int:
    """Drain what stopped servers left in their spools (their records were acknowledged, so they are kept)."""
    from medops.serving.spool import recover as recover_spools

    return recover_spools(spool_root(platform), store(platform))


_COLUMNS = ("id", "at", "model", "version", "bundle_sha256", "variant", "request_id", "caller", "entity", "inputs",
            "output", "explanation", "latency_ms")  # fmt: skip


def _rows(lines: Sequence[bytes | dict[str, Any]], sqlite: bool) -> list[tuple[Any, ...]]:
    """The table's rows, in _COLUMNS' order, of spooled lines (or records already built: the demo's
    simulated months); a line that is not a prediction record (medops never writes one: an edited or
    foreign file) is skipped and named in the server's log, so it can't keep a server from starting."""
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            record = parse_line(line) if isinstance(line, bytes) else line
            rows.extend([_row(r, sqlite) for r in expand(record)])  # a line's rows all, or none
        except (KeyError, TypeError, ValueError, AttributeError, InvalidInput) as exc:  # InvalidInput: its time
            problem = f"no field {exc}" if isinstance(exc, KeyError) else type(exc).__name__
            log.error("prediction log: spooled line %d is not a prediction record (%s); skipped", number, problem)
    return rows


def _row(data: dict[str, Any], sqlite: bool) -> tuple[Any, ...]:
    return (
        data["id"],
        _stored_time(data["at"], sqlite),
        data["model"],
        int(data["version"]),
        data["bundle_sha256"],
        data["variant"],
        data["request_id"],
        data["caller"],
        data.get("entity"),
        _text(data["inputs"]),
        _text(data["output"]),
        None if data.get("explanation") is None else _text(data["explanation"]),
        float(data["latency_ms"]),
    )


def _stored_time(at: str, sqlite: bool) -> Any:
    """``at`` as the ``at`` column (UTCDateTime) stores it: naive UTC text on SQLite, an aware time on
    PostgreSQL. A record's time is to_iso's (2026-12-05T04:00:00.123456Z): on SQLite, cut rather than
    parsed and formatted again, and still read as a time, so an edited line's impossible one is refused."""
    if not sqlite:
        return parse_iso(at)
    if len(at) == 27 and at[10] == "T" and at[26] == "Z" and at[19] == ".":
        text = f"{at[:10]} {at[11:26]}"
        datetime.fromisoformat(text)  # ValueError for 2026-13-45 and the like: the line is skipped, and named
        return text
    return parse_iso(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _text(value: Any) -> str:
    """JSON text as ``record`` encodes it (a spool written by an earlier release holds the object itself)."""
    return value if isinstance(value, str) else _json(value)


@dataclass(frozen=True)
class LoggedPrediction:
    id: str
    at: datetime
    model: str
    version: int
    bundle_sha256: str
    variant: str
    request_id: str
    caller: str
    entity: str | None
    inputs: dict[str, Any]
    output: dict[str, Any]
    explanation: dict[str, Any] | None
    latency_ms: float

    @property
    def probability(self) -> float:
        return float(self.output["probability"])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": to_iso(self.at),
            "model": self.model,
            "version": self.version,
            "bundle_sha256": self.bundle_sha256,
            "variant": self.variant,
            "request_id": self.request_id,
            "caller": self.caller,
            "entity": self.entity,
            "inputs": self.inputs,
            "output": self.output,
            "explanation": self.explanation,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class PredictionFilter:
    model: str | None = None
    version: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    entity: str | None = None
    variant: str | None = None

    @classmethod
    def parse(
        cls,
        model: str | None = None,
        since: str | None = None,
        until: str | None = None,
        entity: str | None = None,
        variant: str | None = None,
        *,
        prefix: str = "",
    ) -> PredictionFilter:
        """The filter as a person gives it: NAME or NAME:VERSION, times as ISO 8601 or as durations ago (24h).
        ``prefix``: how the adapter names its fields in messages ("--" for the CLI's options)."""
        name, version = model, None
        if model and ":" in model:
            name, _, number = model.partition(":")
            if not number.isdigit():
                raise InvalidInput(
                    f"{prefix}model {model!r}: the version is a number", hint=f"for example {prefix}model readmission:2"
                )
            version = int(number)
        if variant is not None and variant not in VARIANTS:
            raise InvalidInput(f"{prefix}variant {variant!r} is not known", hint=f"one of {', '.join(VARIANTS)}")
        return cls(
            model=name or None,
            version=version,
            since=moment(since, f"{prefix}since"),
            until=moment(until, f"{prefix}until"),
            entity=entity,
            variant=variant,
        )


def moment(value: str | None, option: str) -> datetime | None:
    """An ISO time, or a duration (30m, 24h, 7d) meaning that long ago."""
    if value is None:
        return None
    ago = duration(value)
    if ago is not None:
        return utc_now() - ago
    try:
        return parse_iso(value)
    except InvalidInput:
        raise InvalidInput(
            f"{option} {value!r} is neither a time nor a duration",
            hint=f"for example {option} 2026-12-01 or {option} 24h",
        ) from None


def _logged(row: Prediction) -> LoggedPrediction:
    return LoggedPrediction(
        id=row.id,
        at=row.at,
        model=row.model,
        version=row.version,
        bundle_sha256=row.bundle_sha256,
        variant=row.variant,
        request_id=row.request_id,
        caller=row.caller,
        entity=row.entity,
        inputs=json.loads(row.inputs),
        output=json.loads(row.output),
        explanation=None if row.explanation is None else json.loads(row.explanation),
        latency_ms=row.latency_ms,
    )


def _query(where: PredictionFilter) -> Any:
    query = select(Prediction)
    if where.model is not None:
        query = query.where(Prediction.model == where.model)
    if where.version is not None:
        query = query.where(Prediction.version == where.version)
    if where.since is not None:
        query = query.where(Prediction.at >= where.since)
    if where.until is not None:
        query = query.where(Prediction.at < where.until)
    if where.entity is not None:
        query = query.where(Prediction.entity == where.entity)
    if where.variant is not None:
        query = query.where(Prediction.variant == where.variant)
    return query


def count(platform: Platform, where: PredictionFilter) -> int:
    from sqlalchemy import func

    with platform.db.read() as session:
        return int(session.scalar(_query(where).with_only_columns(func.count())) or 0)


def latest(platform: Platform, where: PredictionFilter, limit: int) -> list[LoggedPrediction]:
    """The newest ``limit`` predictions that match, newest first."""
    query = _query(where).order_by(Prediction.at.desc(), Prediction.id.desc()).limit(limit)
    with platform.db.read() as session:
        return [_logged(r) for r in session.scalars(query)]


def iterate(platform: Platform, where: PredictionFilter, *, batch: int = 5_000) -> Iterator[list[LoggedPrediction]]:
    """Every match in time order, ``batch`` at a time (keyset pages: memory holds one page)."""
    after: tuple[datetime, str] | None = None
    while True:
        query = _query(where)
        if after is not None:
            query = query.where((Prediction.at > after[0]) | ((Prediction.at == after[0]) & (Prediction.id > after[1])))
        query = query.order_by(Prediction.at, Prediction.id).limit(batch)
        with platform.db.read() as session:
            page = [_logged(r) for r in session.scalars(query)]
        if not page:
            return
        yield page
        after = (page[-1].at, page[-1].id)


def text_pages(db: Database, where: PredictionFilter) -> Iterator[Any]:
    """Every match's time, entity and JSON texts (inputs, output) as pyarrow tables, in no particular
    order (a sort of ten million rows is not free, and a window's summaries don't depend on it),
    streamed from the store as Arrow (medops.store.arrow_reads): for readers (monitoring) that parse
    the texts in bulk, over millions of rows, without a Python object per row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from medops.store.arrow_reads import arrow_batches

    sqlite = db.dialect == "sqlite"
    clauses, params = _where(where, sqlite)
    # text columns never null (ADBC's SQLite driver types a column by its first values): '' is no entity
    sql = "SELECT at, COALESCE(entity, '') AS entity, inputs, output FROM predictions" + (
        " WHERE " + " AND ".join(clauses) if clauses else ""
    )
    for batch in arrow_batches(db, sql, params):
        at = batch.column("at")
        if sqlite:  # stored as naive UTC text, microseconds always written
            at = pc.cast(at, pa.timestamp("us"))
        entity = batch.column("entity")
        yield pa.table(
            {
                "at": pc.cast(at, pa.timestamp("us", tz="UTC")),
                "entity": pc.if_else(pc.equal(entity, ""), pa.scalar(None, pa.string()), entity),
                "inputs": batch.column("inputs"),
                "output": batch.column("output"),
            }
        )


def _where(where: PredictionFilter, sqlite: bool) -> tuple[list[str], list[Any]]:
    """The filter as SQL conditions with ``?`` parameters; times as each dialect stores them."""
    clauses: list[str] = []
    params: list[Any] = []

    def stamp(moment: datetime) -> Any:
        utc = moment.astimezone(UTC)
        return utc.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else utc.isoformat()

    for column, value in (("model", where.model), ("version", where.version), ("entity", where.entity),
                          ("variant", where.variant)):  # fmt: skip
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if where.since is not None:
        clauses.append("at >= ?" if sqlite else "at >= CAST(? AS timestamptz)")
        params.append(stamp(where.since))
    if where.until is not None:
        clauses.append("at < ?" if sqlite else "at < CAST(? AS timestamptz)")
        params.append(stamp(where.until))
    return clauses, params


def get(platform: Platform, prediction_id: str) -> LoggedPrediction:
    with platform.db.read() as session:
        row = session.get(Prediction, prediction_id)
        if row is None:
            raise NotFound(
                f"no prediction {prediction_id!r} in the log",
                code="prediction_not_found",
                hint="each response carries its prediction_id",
            )
        return _logged(row)
