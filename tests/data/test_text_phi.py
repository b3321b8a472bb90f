"""Free-text de-identification: recall on the PHI probe set, false positives on PHI-free sentences,
the report's engine and warning, the spaCy model path and its degradation, lazy import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st

from medops.data import text_phi
from medops.data.deid import Deidentifier, Pseudonymizer
from medops.errors import InvalidInput

PROBES = Path(__file__).with_name("deid_probes")
KEY = b"k" * 32
ACTIONS = {"text": "redact_text", "first_name": "drop", "last_name": "drop"}
SAFE_HARBOR = "ABCDEFGHIJKLMNOPQR"
MIN_RECALL = 0.99
# Measured: 1 of 197 PHI-free sentences loses a token (a trial registry number read as a DEA licence).
# A regression shows as a second one: raise this only for a reason written here.
MAX_FALSE_POSITIVE_SENTENCES = 1


def _probes() -> list[dict[str, Any]]:
    return [p for name in ("handwritten.json", "generated.json") for p in json.loads((PROBES / name).read_text())]


def _clean_sentences() -> list[str]:
    lines = (PROBES / "clean_sentences.txt").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def _redacted(notes: list[str], records: list[list[str]]) -> tuple[list[str], Deidentifier]:
    """Through the ingest's path: a chunk with a redact_text column and the record's name columns."""
    frame = pd.DataFrame(
        {
            "text": notes,
            "first_name": [r[0] if r else None for r in records],
            "last_name": [r[1] if len(r) > 1 else None for r in records],
        }
    )
    deid = Deidentifier(ACTIONS, Pseudonymizer(KEY))
    out = deid.apply(frame).column("text").to_pylist()
    return [str(v) for v in out], deid


def _survives(phi: str, text: str) -> list[str]:
    """The parts of ``phi`` (words and numbers) still in ``text``: any one left is a miss."""
    parts = [t for t in re.findall(r"[^\W_]+", phi) if len(t) >= 2 or t.isdigit()]
    return [t for t in parts if re.search(rf"(?<![^\W_]){re.escape(t)}(?![^\W_])", text)]


def test_the_probe_set_covers_the_18_identifiers() -> None:
    probes = _probes()
    counted = Counter(p["identifier"] for p in probes for _ in p["phi"])
    assert sum(counted.values()) >= 300
    assert set(counted) == set(SAFE_HARBOR), set(SAFE_HARBOR) - set(counted)
    assert {p["category"] for p in probes} >= {"generated note", "own name, lower case", "own name, capitals"}


def test_recall_on_the_phi_probes() -> None:
    probes = _probes()
    out, deid = _redacted([p["note"] for p in probes], [p.get("record", []) for p in probes])
    misses: dict[str, list[str]] = defaultdict(list)
    total = 0
    for probe, text in zip(probes, out, strict=True):
        for phi in probe["phi"]:
            total += 1
            if _survives(phi, text):
                misses[probe["identifier"]].append(f"{probe['category']}: {phi!r} in {text!r}")
    missed = sum(len(m) for m in misses.values())
    recall = 1 - missed / total
    report = "\n".join(f"({k}) {len(v)} missed:\n  " + "\n  ".join(v) for k, v in sorted(misses.items()))
    print(f"\nrecall {recall:.4f} ({total - missed}/{total})\n{report}")
    assert recall >= MIN_RECALL, f"recall {recall:.4f} < {MIN_RECALL}\n{report}"
    assert sum(deid.report.text_redactions.values()) >= total - missed


def test_false_positives_on_phi_free_sentences() -> None:
    sentences = _clean_sentences()
    assert len(sentences) >= 100
    out, deid = _redacted(sentences, [[] for _ in sentences])
    changed = [(before, after) for before, after in zip(sentences, out, strict=True) if before != after]
    print(f"\nfalse positives: {len(changed)} of {len(sentences)} sentences ({len(changed) / len(sentences):.2%})")
    for before, after in changed:
        print(f"  {before!r} -> {after!r}")
    assert len(changed) <= MAX_FALSE_POSITIVE_SENTENCES, changed


def test_the_issue_formats_are_redacted() -> None:
    """The formats that survived the regex redactor, in one note."""
    note = (
        "SSN 123456789, 123 45 6789 and 123.45.6789; call +44 20 7946 0958; seen March 3rd, 2021, 03.03.2021 "
        "and 20210303; MRN-77819896, medical record number 55512345; ann lee and ANN LEE; neighbour Gerald "
        "Fitzpatrick, caregiver Rosa Achebe, Dr. Okonkwo; lives at 4417 Wexford Avenue, ZIP 30307; "
        "94-year-old; from 2001:db8::ff00:42:8329; see example.com/path"
    )
    deid = Deidentifier(ACTIONS, Pseudonymizer(KEY))
    out = deid.redact(note, ["Ann", "Lee"])
    for phi in (
        "123456789 123 45 6789 123.45.6789 +44 7946 0958 March 3rd 03.03.2021 20210303 77819896 55512345 ann lee "
        "ANN LEE Gerald Fitzpatrick Rosa Achebe Okonkwo 4417 Wexford 30307 94 2001:db8 8329 example.com"
    ).split():
        assert not _survives(phi, out), (phi, out)
    counts = deid.report.text_redactions
    assert counts["SSN"] == 3 and counts["DATE"] == 3 and counts["AGE"] == 1 and counts["ZIP"] == 1


def test_the_report_names_the_engine_and_warns_once_without_a_model() -> None:
    if text_phi.installed_ner_model() is not None:
        pytest.skip("a spaCy NER model is installed here: the no-model warning is tested with NER_MODELS emptied")
    deid = Deidentifier(ACTIONS, Pseudonymizer(KEY))
    frame = pd.DataFrame({"text": ["Wife Maria called."], "first_name": ["Ann"], "last_name": ["Lee"]})
    deid.apply(frame)
    deid.apply(frame)
    report = deid.finish()
    assert report.text_engine is not None and "presidio-analyzer" in report.text_engine
    assert "no NER model" in report.text_engine
    warned = [w for w in report.warnings if "without named-entity recognition" in w]
    assert len(warned) == 1 and "no spaCy NER model is installed" in warned[0]
    tabular = Deidentifier({"x": "keep"}, Pseudonymizer(KEY))
    tabular.apply(pd.DataFrame({"x": [1]}))
    assert tabular.finish().text_engine is None  # no text column: no engine, no warning


@pytest.fixture
def fresh_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The engine is built once per process: rebuild it for the models a test names, and after."""
    text_phi.engine.cache_clear()
    yield
    monkeypatch.undo()
    text_phi.engine.cache_clear()


def test_without_a_model_the_warning_says_so(fresh_engine: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_phi, "NER_MODELS", ())
    engine = text_phi.engine()
    assert engine.warning is not None and "no spaCy NER model is installed" in engine.warning


def test_an_installed_ner_model_finds_names_no_rule_knows(
    fresh_engine: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A real spaCy pipeline saved to disk, whose NER is an entity ruler: it stands in for en_core_web_lg.
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(  # type: ignore[attr-defined]
        [
            {"label": "PERSON", "pattern": [{"TEXT": "Jane"}, {"TEXT": "Doe"}]},
            {"label": "GPE", "pattern": "Kalamazoo"},
            {"label": "DATE", "pattern": [{"LOWER": "3"}, {"LOWER": "weeks"}]},
        ]
    )
    nlp.to_disk(tmp_path / "ner")
    monkeypatch.setattr(text_phi, "NER_MODELS", ("not_an_installed_model", str(tmp_path / "ner")))
    engine = text_phi.engine()
    assert engine.warning is None and "spaCy NER model ner" in engine.description
    (found,) = text_phi.redact_many(["Jane Doe visited from Kalamazoo; follow up in 3 weeks."])
    assert found.text == "[NAME] visited from [ADDRESS]; follow up in 3 weeks."  # the model's dates are ignored


def test_a_model_that_does_not_load_degrades_with_a_warning(
    fresh_engine: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.cfg").write_text("not a spaCy config")
    monkeypatch.setattr(text_phi, "NER_MODELS", (str(tmp_path / "broken"),))
    engine = text_phi.engine()
    assert engine.warning is not None and "the spaCy model broken did not load" in engine.warning
    (found,) = text_phi.redact_many(["Wife Maria called on 03.03.2021."])
    assert found.text == "Wife [NAME] called on [DATE]."


def test_text_phi_fail_names_the_kinds_found() -> None:
    deid = Deidentifier(ACTIONS, Pseudonymizer(KEY), text_phi="fail")
    deid.apply(pd.DataFrame({"text": ["BP 120/80, HR 72."], "first_name": ["Ann"], "last_name": ["Lee"]}))
    frame = pd.DataFrame({"text": ["fine", "ann seen 03.03.2021"], "first_name": ["Ann"] * 2, "last_name": ["Lee"] * 2})
    with pytest.raises(InvalidInput, match=r"row 3: free text holds PHI \(DATE, NAME\)"):
        deid.apply(frame)


def test_the_engine_loads_only_for_a_text_column() -> None:
    probe = (
        "import sys\n"
        "import pandas as pd\n"
        "import medops.cli.main, medops.data.ingest\n"
        "from medops.data.deid import Deidentifier, Pseudonymizer\n"
        "heavy = lambda: sorted(m for m in ('presidio_analyzer', 'presidio_anonymizer', 'spacy') if m in sys.modules)\n"
        "Deidentifier({'x': 'keep'}, Pseudonymizer(b'k' * 32)).apply(pd.DataFrame({'x': [1]}))\n"
        "print(heavy())\n"
        "Deidentifier({'t': 'redact_text'}, Pseudonymizer(b'k' * 32)).apply(pd.DataFrame({'t': ['a']}))\n"
        "print(heavy())\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "['presidio_analyzer', 'presidio_anonymizer', 'spacy']"]


@settings(max_examples=150, deadline=None)
@given(
    day=st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    form=st.sampled_from(
        ["%B %d, %Y", "%d %B %Y", "%m.%d.%Y", "%m/%d/%Y", "%Y-%m-%d", "%Y%m%d", "%b %d", "%d-%b-%Y", "%B %Y"]
    ),
    sentence=st.sampled_from(_clean_sentences()[:40]),
)
def test_any_date_in_any_common_form_is_redacted(day: date, form: str, sentence: str) -> None:
    written = day.strftime(form)
    (found,) = text_phi.redact_many([f"{sentence} Seen {written} in clinic."])
    assert not _survives(written, found.text.replace(sentence, "")), (written, found.text)


@settings(max_examples=150, deadline=None)
@given(
    area=st.integers(1, 899).filter(lambda a: a != 666),
    group=st.integers(1, 99),
    serial=st.integers(1, 9999),
    separator=st.sampled_from(["-", " ", ".", ""]),
    phone=st.tuples(st.integers(200, 999), st.integers(200, 999), st.integers(0, 9999)),
    phone_form=st.sampled_from(["({0}) {1}-{2}", "{0}.{1}.{2}", "{0}-{1}-{2}", "+1 {0} {1} {2}", "{0} {1} {2}"]),
)
def test_any_ssn_and_phone_is_redacted(
    area: int, group: int, serial: int, separator: str, phone: tuple[int, int, int], phone_form: str
) -> None:
    ssn = separator.join([f"{area:03d}", f"{group:02d}", f"{serial:04d}"])
    number = phone_form.format(phone[0], phone[1], f"{phone[2]:04d}")
    (found,) = text_phi.redact_many([f"SSN {ssn}; call {number} after 5 pm."])
    assert not _survives(ssn, found.text) and not _survives(number, found.text.replace("after 5 pm", "")), found.text
