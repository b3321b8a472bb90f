"""Free-text de-identification: notes per second through the ingest's path, the Presidio-based
engine against the regex redactor it replaced.

Both run through `Deidentifier.apply`, the function `medops data ingest` calls for every chunk
(a `redact_text` column and the record's name columns); the regex redactor is the previous
release's, copied below and swapped in for the benchmark only. Two corpora: the synthetic
generator's notes (about 180 characters, seven identifiers each) and long notes (about 800
characters: a generated note, PHI-free clinical sentences and further identifiers). The
rounds interleave the two redactors in alternating order, so a busy moment of the machine
lands on both alike; the table shows medians, and the ratio regex / engine in notes per
second (how many times slower the engine is). Then once each, end to end: `ingest()` of a
CSV of notes into a SQLite workspace. And the engine's cold start: a fresh process that
imports it, builds it and redacts one note.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, temp_dir, workspace

ACTIONS = {"note_id": "drop", "text": "redact_text", "first_name": "drop", "last_name": "drop"}
CHUNK_ROWS = 10_000
CLEAN = Path(__file__).parents[1] / "tests" / "data" / "deid_probes" / "clean_sentences.txt"

# The regex redactor medops shipped before the engine (medops.data.deid, 2026-12-02), kept here
# only to compare against.
_OLD_PATTERNS = [
    ("SSN", re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")),
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("URL", re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I)),
    ("IP", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")),
    ("MRN", re.compile(r"\bMRN[:#\s]*\d{5,}\b", re.I)),
    ("PHONE", re.compile(r"(?<!\d)(?:\+?1[\s.-]?)?\(?[2-9]\d{2}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\d)")),
    ("DATE", re.compile(r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}-\d{1,2}-\d{4})\b")),
]
_OLD_RELATIVE = re.compile(
    r"\b(?P<rel>daughter|son|wife|husband|sister|brother|mother|father|partner|spouse|niece|nephew)"
    r"(?P<sep>,?\s+)(?P<name>[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?)",
    re.I,
)


def _old_redact(text: str, names: Iterable[str]) -> tuple[str, list[str]]:
    labels: list[str] = []
    for label, pattern in _OLD_PATTERNS:
        text, n = pattern.subn(f"[{label}]", text)
        labels += [label] * n

    def relative(m: re.Match[str]) -> str:
        labels.append("NAME")
        return f"{m['rel']}{m['sep']}[NAME]"

    text = _OLD_RELATIVE.sub(relative, text)
    for name in sorted({n for n in names if len(n) > 1}, key=len, reverse=True):
        text, n = re.subn(rf"\b{re.escape(name)}\b", "[NAME]", text)
        labels += ["NAME"] * n
    return text, labels


def _old_scan(self: Any, texts: list[str], names: list[list[str]]) -> list[Any]:
    """The regex redactor in the place of ``Deidentifier._scan``: same inputs, same outputs."""
    from medops.data.text_phi import Redacted

    out = []
    for text, own in zip(texts, names, strict=True):
        redacted, labels = _old_redact(text, own)
        self.report.text_redactions.update(labels)
        out.append(Redacted(redacted, tuple(labels)))
    return out


def corpora(notes: int, long_notes: int) -> dict[str, Any]:
    """The generator's notes with their patients' names, and long notes built around them."""
    import pandas as pd

    from medops.synth import generate

    data = generate(max(200, notes // 2), seed=11)
    frame = data.notes.merge(data.patients[["patient_id", "first_name", "last_name"]], on="patient_id")
    while len(frame) < notes:
        frame = pd.concat([frame, frame], ignore_index=True)
    short = frame.head(notes)[["note_id", "text", "first_name", "last_name"]].reset_index(drop=True)
    clean = [line for line in CLEAN.read_text().splitlines() if line and not line.startswith("#")]
    pts = data.patients
    long = short.head(long_notes).copy()
    extra = [
        f" {' '.join(clean[(i * 7 + k) % len(clean)] for k in range(6))} Lives at {pts.address.iloc[i % len(pts)]}, "
        f"{pts.city.iloc[i % len(pts)]}, {pts.state.iloc[i % len(pts)]} {pts.zip.iloc[i % len(pts)]}; "
        f"email {pts.email.iloc[i % len(pts)]}, SSN {pts.ssn.iloc[i % len(pts)].replace('-', ' ')}. "
        f"Seen by Dr. {pts.last_name.iloc[(i + 3) % len(pts)]} on March {1 + i % 28}, 2025. "
        f"{' '.join(clean[(i * 5 + k) % len(clean)] for k in range(6))}"
        for i in range(len(long))
    ]
    long["text"] = long["text"] + pd.Series(extra)
    return {"generated notes": short, "long notes": long}


def _apply_all(frame: Any) -> float:
    from medops.data.deid import Deidentifier, Pseudonymizer

    deid = Deidentifier(ACTIONS, Pseudonymizer(b"k" * 32))
    start = time.perf_counter()
    for at in range(0, len(frame), CHUNK_ROWS):
        deid.apply(frame.iloc[at : at + CHUNK_ROWS])
    seconds = time.perf_counter() - start
    deid.close()
    return seconds


def _with_scan(scan: Callable[..., Any] | None, fn: Callable[[], float]) -> float:
    from medops.data.deid import Deidentifier

    original = Deidentifier._scan
    if scan is not None:
        Deidentifier._scan = scan  # type: ignore[method-assign]
    try:
        return fn()
    finally:
        Deidentifier._scan = original  # type: ignore[method-assign]


def measure(frames: dict[str, Any], rounds: int) -> dict[tuple[str, str], float]:
    """Median seconds per (corpus, redactor) over interleaved rounds, after one warm-up each."""
    runs = [(corpus, who) for corpus in frames for who in ("engine", "regex")]

    def once(corpus: str, who: str) -> float:
        return _with_scan(None if who == "engine" else _old_scan, lambda: _apply_all(frames[corpus]))

    for corpus, who in runs:  # warm-up: builds the engine, fills caches
        once(corpus, who)
    times: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    for r in range(rounds):
        order = runs if r % 2 == 0 else runs[::-1]
        for run in order:
            times[run].append(once(*run))
    return {run: statistics.median(values) for run, values in times.items()}


def _ingest_once(frame: Any, scan: Callable[..., Any] | None, base: Path, tag: str) -> tuple[float, dict[str, int]]:
    import pandas as pd

    from medops.data.ingest import TablePlan, ingest
    from medops.data.sources import CsvSource

    csv = base / f"notes_{tag}.csv"
    frame.to_csv(csv, index=False)
    with workspace("sqlite") as ws:
        plan = TablePlan(f"notes_{tag}", CsvSource(csv), ACTIONS)
        start = time.perf_counter()
        result = _with_scan(
            scan,
            lambda: ingest(ws, plan, chunk_rows=CHUNK_ROWS, now=pd.Timestamp("2026-01-01", tz="UTC"), actor="admin"),
        )
        seconds = time.perf_counter() - start
    return seconds, dict(result.deid.text_redactions)


def cold_start() -> float:
    """A fresh process: import the engine, build it, redact one note."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from medops.data import text_phi\n"
        "text_phi.redact_many(['Wife Maria called on 03.03.2021.'])\n"
        "print(time.perf_counter() - t)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=20_000)
    parser.add_argument("--long-notes", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,000 and 500 notes, 2 rounds")
    args = parser.parse_args(argv)
    notes, long_notes, rounds = (2_000, 500, 2) if args.quick else (args.notes, args.long_notes, args.rounds)
    frames = corpora(notes, long_notes)
    medians = measure(frames, rounds)
    rows: list[list[Any]] = []
    for corpus, frame in frames.items():
        chars = int(frame["text"].str.len().mean())
        engine, regex = medians[(corpus, "engine")], medians[(corpus, "regex")]
        rows.append(
            [
                f"{corpus}: {len(frame):,} x ~{chars:,} chars, Deidentifier.apply",
                f"{len(frame) / engine:,.0f}/s",
                f"{len(frame) / regex:,.0f}/s",
                f"{engine / regex:.1f}",
            ]
        )
    with temp_dir("medops-bench-deid-") as base:
        frame = frames["generated notes"]
        engine_s, engine_counts = _ingest_once(frame, None, base, "engine")
        regex_s, regex_counts = _ingest_once(frame, _old_scan, base, "regex")
    rows.append(
        [
            f"ingest() of {len(frame):,} generated notes (CSV -> dataset), once each",
            f"{len(frame) / engine_s:,.0f}/s ({sum(engine_counts.values()):,} redactions)",
            f"{len(frame) / regex_s:,.0f}/s ({sum(regex_counts.values()):,} redactions)",
            f"{engine_s / regex_s:.1f}",
        ]
    )
    rows.append(["engine cold start: import, build, first note (fresh process)", f"{cold_start():.2f} s", "", ""])
    title = f"Free-text redaction, notes per second, median of {rounds} interleaved rounds"
    print_table(title, ["benchmark", "Presidio engine", "regex redactor", "regex / engine"], rows)
    return rows


if __name__ == "__main__":
    main()
