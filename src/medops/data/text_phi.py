"""Free-text PHI redaction: Microsoft Presidio's analyzer and anonymizer, medops's rules, the record's values.

What finds PHI in a note, strongest first:
- the record's own values (the patient's first and last names, looked up by patient id), matched
  case-insensitively as whole words: "ANN LEE" and "ann" are the patient as much as "Ann Lee";
- medops's rules (``text_rules``): names after the words that introduce people, MRNs, ages over
  89, addresses, ZIP codes, dates, SSNs, phone and fax numbers, emails, URLs and the numbers a word
  before them names;
- Presidio's stock recognizers where a library or a checksum decides: ``phonenumbers`` for phone
  numbers of many countries, IP addresses (v4 and v6), card numbers (Luhn), IBANs, Medicare
  beneficiary ids, DEA numbers;
- a spaCy named-entity model (people and places) when one is installed. None ships with medops
  (spaCy's models are not on PyPI); without one the scan runs on the rules above and the
  de-identification report says so in a warning.

The engine is built once per process and shared; importing this module costs a second (spaCy),
so medops imports it only when a table has a ``redact_text`` column.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, LocalRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, NlpEngine, NoOpNlpEngine, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MedicalLicenseRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UsMbiRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from presidio_anonymizer.entities import RecognizerResult as Span

from medops.data import text_rules

# spaCy models tried in this order; the first one installed is used. A path to a saved pipeline works too.
NER_MODELS: tuple[str, ...] = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_trf")
SCORE_THRESHOLD = 0.35  # below it a finding is a guess (Presidio's context-free weak patterns score 0.01-0.3)
BATCH_SIZE = 256
PHONE_REGIONS = ("US", "GB")  # national formats; numbers written with +country code are found in every region
# Presidio's entity names as medops labels; the NER model's people and places.
PRESIDIO_LABELS = {
    "PERSON": text_rules.NAME,
    "LOCATION": text_rules.ADDRESS,
    "PHONE_NUMBER": text_rules.PHONE,
    "IP_ADDRESS": text_rules.IP,
    "CREDIT_CARD": text_rules.ACCOUNT,
    "IBAN_CODE": text_rules.ACCOUNT,
    "US_MBI": text_rules.PLAN,
    "MEDICAL_LICENSE": text_rules.LICENCE,
}
# Words too common to redact when they stand alone in a record's name column ("Jr", "de", "van").
_NAME_PARTICLES = frozenset(
    "jr sr ii iii iv de la le da di du van von der den del el al st mr mrs ms dr md the and".split()
)
# The model's labels that are no PHI ("3 weeks", "two", "aspirin") or that the rules find better (dates).
_NER_IGNORED = (
    "DATE TIME CARDINAL ORDINAL QUANTITY PERCENT MONEY NORP ORG ORGANIZATION PRODUCT EVENT WORK_OF_ART LAW LANGUAGE"
)

log = logging.getLogger(__name__)


class _RulesRecognizer(LocalRecognizer):
    """medops's rules (``text_rules.RULES``) as one Presidio recognizer."""

    def __init__(self) -> None:
        labels = sorted({r.label for r in text_rules.RULES})
        super().__init__(supported_entities=labels, name="medops-rules", supported_language="en")

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [RecognizerResult(label, start, end, score) for label, start, end, score in text_rules.find_all(text)]


class _PhoneNumbers(PhoneRecognizer):
    """Presidio's ``phonenumbers`` recognizer, run only on the digit runs that could be a phone number and
    that the rules leave open: over a whole note it parses every date and number, and costs more than
    everything else together."""

    _CANDIDATE = re.compile(r"\+?\(?\d[\d \t().-]{5,22}\d")
    # Shapes the rules settle already: dates, North American numbers, SSNs.
    _SETTLED = re.compile(
        r"\d{4}-\d\d-\d\d|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|(?:1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"
        r"|\d{3}([ .-])\d{2}\1\d{4}"
    )

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        found = []
        for m in self._CANDIDATE.finditer(text):
            run = m.group()
            if sum(c.isdigit() for c in run) < 7 or self._SETTLED.fullmatch(run):
                continue
            for result in super().analyze(run, entities, nlp_artifacts):  # type: ignore[arg-type]
                result.start += m.start()
                result.end += m.start()
                found.append(result)
        return found


class _IpAddresses(IpRecognizer):
    """Presidio's IP recognizer (v4 and v6, validated), skipped for text with no dotted or colon-separated number."""

    _GATE = re.compile(r"\d\.\d{1,3}\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]*:")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        return super().analyze(text, entities, nlp_artifacts, regex_flags) if self._GATE.search(text) else []


class _NoContext(ContextAwareEnhancer):
    """The rules carry their own context words; Presidio's lemma-based boost (which copies every
    finding) would only add cost, and needs a model's lemmas."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(self, text: str, raw_results: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        return raw_results


@dataclass(frozen=True)
class Engine:
    """The analyzer and anonymizer, built once, and what the report says about them."""

    analyzer: AnalyzerEngine
    anonymizer: AnonymizerEngine
    description: str  # which library and model found the PHI, for the de-identification report
    warning: str | None  # set when no NER model ran


def installed_ner_model() -> str | None:
    """The first of ``NER_MODELS`` that is installed (a package or a saved pipeline folder), or None."""
    for name in NER_MODELS:
        if Path(name).is_dir() or importlib.util.find_spec(name) is not None:
            return name
    return None


def _nlp(model: str | None) -> tuple[NlpEngine, str | None, str | None]:
    """The NLP engine, the model it runs (None: no model) and why no model runs (None: one does)."""
    if model is not None:
        try:
            ner = SpacyNlpEngine(
                models=[{"lang_code": "en", "model_name": model}],
                ner_model_configuration=NerModelConfiguration(labels_to_ignore=_NER_IGNORED.split()),
            )
            ner.load()
            return ner, Path(model).name, None
        except Exception as exc:  # a model that does not load (missing extra, bad files) degrades like none
            log.warning("spaCy model %s did not load: %s", model, exc)
            reason = f"the spaCy model {Path(model).name} did not load ({type(exc).__name__})"
    else:
        reason = "no spaCy NER model is installed"
    # Presidio's engine for recognizers that need no language model: no tokens, no entities.
    blank = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    blank.load()
    return blank, None, reason


@functools.cache
def engine() -> Engine:
    """The shared engine: the first call builds it (a second or two), later calls return it."""
    nlp, model, reason = _nlp(installed_ner_model())
    registry = RecognizerRegistry(supported_languages=["en"])
    recognizers: list[EntityRecognizer] = [
        _RulesRecognizer(),
        _PhoneNumbers(supported_regions=PHONE_REGIONS),
        _IpAddresses(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsMbiRecognizer(),
        MedicalLicenseRecognizer(),
    ]  # Presidio's SSN, ITIN and date recognizers find nothing the rules miss on the probe set: left out
    if model is not None:
        recognizers.append(SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]))
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(
        registry=registry, nlp_engine=nlp, supported_languages=["en"], context_aware_enhancer=_NoContext()
    )
    anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
    presidio = f"presidio-analyzer {version('presidio-analyzer')}"
    if model is not None:
        return Engine(analyzer, anonymizer, f"{presidio}, medops rules, spaCy NER model {model}", None)
    warning = (
        f"free text was scanned without named-entity recognition ({reason}): names are found as the record's "
        "own names and after words that introduce a person (wife, neighbour, Dr., ...), places as addresses; "
        "install one (python -m spacy download en_core_web_lg) to find other names and places too"
    )
    return Engine(analyzer, anonymizer, f"{presidio}, medops rules, no NER model", warning)


@functools.lru_cache(maxsize=4096)
def _own_values(values: tuple[str, ...]) -> re.Pattern[str] | None:
    """Whole-word, any-case pattern for a record's values and each word of them ("Mary Ann" -> also "Ann")."""
    words = set()
    for value in values:
        value = " ".join(value.split())
        if len(value) > 1:
            words.add(value)
        words.update(
            w for w in re.split(r"[\s,-]+", value) if len(w) > 1 and w.lower().strip(".") not in _NAME_PARTICLES
        )
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class Redacted:
    """One text with its PHI replaced by kinds ("[NAME]"), and the kinds found, for the report's counts."""

    text: str
    labels: tuple[str, ...]  # what was redacted, one label per span ("NAME", "DATE", ...)


def _merge(found: list[tuple[int, int, float, str]]) -> list[tuple[int, int, str]]:
    """Overlapping findings become one span covering all of them, labelled by the strongest finding."""
    spans: list[tuple[int, int, str]] = []
    best = 0.0
    for start, end, score, label in sorted(found):
        if spans and start < spans[-1][1]:
            s, e, current = spans[-1]
            if score > best:
                current, best = label, score
            spans[-1] = (s, max(e, end), current)
        else:
            spans.append((start, end, label))
            best = score
    return spans


def redact_many(texts: Sequence[str], record_values: Sequence[Sequence[str]] | None = None) -> list[Redacted]:
    """Redact PHI in each text; ``record_values[i]`` are the values of text i's own record (its names)."""
    eng = engine()
    out: list[Redacted] = []
    batches = eng.analyzer.nlp_engine.process_batch(list(texts), "en", batch_size=BATCH_SIZE)
    for i, (text, artifacts) in enumerate(batches):
        results = eng.analyzer.analyze(text, "en", nlp_artifacts=artifacts, score_threshold=SCORE_THRESHOLD)
        found = [(r.start, r.end, r.score, PRESIDIO_LABELS.get(r.entity_type, r.entity_type)) for r in results]
        own = _own_values(tuple(record_values[i])) if record_values else None
        if own is not None:
            found += [(m.start(), m.end(), 1.0, text_rules.NAME) for m in own.finditer(text)]
        spans = _merge(found)
        if not spans:
            out.append(Redacted(text, ()))
            continue
        labels = tuple(label for _, _, label in spans)
        merged = [Span(label, s, e, 1.0) for s, e, label in spans]
        operators = {label: OperatorConfig("replace", {"new_value": f"[{label}]"}) for label in set(labels)}
        out.append(Redacted(eng.anonymizer.anonymize(text, merged, operators).text, labels))
    return out
