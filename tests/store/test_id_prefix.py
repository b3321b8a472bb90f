"""Ids found by a prefix through the primary key's index: the same rows as ``startswith``, SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid

from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from medops.store.id_prefix import is_hex, starts_with


def _table() -> Table:
    return Table("things", MetaData(), Column("id", String(32), primary_key=True))


def test_a_prefix_finds_exactly_the_ids_that_start_with_it(metadata_url: str) -> None:
    things = _table()
    engine = create_engine(metadata_url)
    try:
        things.create(engine)
        rng = random.Random(7)
        ids = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(2_000)]
        ids += ["abcdef" + "0" * 26, "abcdef" + "f" * 26, "abcdee" + "f" * 26, "abcdf" + "0" * 27]  # edges of abcdef
        with engine.begin() as con:
            con.execute(insert(things), [{"id": i} for i in ids])
            prefixes = [i[:n] for i in rng.sample(ids, 50) for n in (1, 2, 3, 6, 32)] + ["abcdef", "abcde", "ffffff"]
            for prefix in prefixes:
                found = {r for (r,) in con.execute(select(things.c.id).where(starts_with(things.c.id, prefix)))}
                assert found == {i for i in ids if i.startswith(prefix)}, prefix
        if metadata_url.startswith("sqlite"):
            with engine.connect() as con:
                sql = select(things.c.id).where(starts_with(things.c.id, "abcdef"))
                plan = con.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + str(sql.compile(engine, compile_kwargs={"literal_binds": True}))
                ).fetchall()
            assert "USING" in plan[0][-1] and "INDEX" in plan[0][-1]  # a search, not a scan of every row
    finally:
        things.drop(engine, checkfirst=True)
        engine.dispose()


def test_is_hex() -> None:
    assert is_hex("0123456789abcdef") and not is_hex("") and not is_hex("ABC") and not is_hex("12g4")
