"""medops's own PHI rules for free text: the forms clinical notes write identifiers in.

Presidio's stock recognizers find what a library or a checksum decides (phone numbers through
``phonenumbers``, card numbers, IBANs, IP addresses); these rules add what notes write their own
way: names after the words that introduce people, MRNs, ages over 89, street addresses, ZIP
codes, dates in every common form, SSNs with any separator, URLs without a scheme, and the
account, plan, licence, vehicle and device numbers a word before them names. Each rule is a
regular expression; where it has a group ``phi`` only that part is PHI (the cue word stays).

Speed: a rule names the words (``needs``) or a quick pattern (``gate``) without which it cannot
match, so most rules skip most notes after a substring test; the word lists are compiled as
tries, so a position costs one or two comparisons instead of one per word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

# Labels, as they appear in redacted text ("[DATE]") and in the report's counts.
NAME, ADDRESS, ZIP, DATE, AGE = "NAME", "ADDRESS", "ZIP", "DATE", "AGE"
PHONE, FAX, EMAIL, SSN, MRN = "PHONE", "FAX", "EMAIL", "SSN", "MRN"
PLAN, ACCOUNT, LICENCE, VEHICLE, DEVICE = "PLAN", "ACCOUNT", "LICENCE", "VEHICLE", "DEVICE"
URL, IP, BIOMETRIC, ID = "URL", "IP", "BIOMETRIC", "ID"

Finding = tuple[str, int, int, float]  # label, start, end, score


_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Rule:
    """A pattern and where to look for it: at the words that start it, around the hits of a quick
    pattern that every match contains, or (neither given) through the whole text."""

    label: str
    pattern: re.Pattern[str]
    score: float
    check: Callable[[str], bool] | None = None  # the found text must pass it (a date that exists, ...)
    not_after: re.Pattern[str] | None = None  # skipped when the text just before matches (a code system)
    needs: tuple[str, ...] = ()  # the lower-cased text must hold one of these, or the rule cannot match
    starts: frozenset[str] = frozenset()  # lower-case words a match starts with: tried only there
    gate: re.Pattern[str] | None = None  # a quick pattern inside every match ...
    window: tuple[int, int] = (0, 0)  # ... searched this many characters before and after each of its hits

    def find(self, text: str, lower: str, words: dict[str, list[int]]) -> Iterator[tuple[int, int]]:
        if self.needs and not any(word in lower for word in self.needs):
            return
        found: Iterable[re.Match[str] | None]
        if self.starts:
            found = (self.pattern.match(text, at) for word in self.starts & words.keys() for at in words[word])
        elif self.gate is not None:
            before, after = self.window
            found = (
                m
                for hit in self.gate.finditer(text)
                for m in self.pattern.finditer(text, max(0, hit.start() - before), hit.end() + after)
            )
        else:
            found = self.pattern.finditer(text)
        group = "phi" if "phi" in self.pattern.groupindex else 0
        seen = set()
        for m in found:
            if m is None:
                continue
            start, end = m.span(group)
            if start < 0 or end <= start or (start, end) in seen:
                continue
            seen.add((start, end))
            if self.check is not None and not self.check(text[start:end]):
                continue
            if self.not_after is not None and self.not_after.search(text, max(0, start - 24), start):
                continue
            yield start, end


def find_all(text: str) -> list[Finding]:
    """Every rule's findings in one text (overlaps included: the caller merges them)."""
    lower = text.lower()
    words: dict[str, list[int]] = {}
    for m in _WORD.finditer(lower):
        words.setdefault(m.group(), []).append(m.start())
    return [(rule.label, start, end, rule.score) for rule in RULES for start, end in rule.find(text, lower, words)]


def _trie(words: Iterable[str]) -> str:
    """One regex alternation for literal words, factored by common prefixes (a space matches any spaces)."""
    root: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:  # type: ignore[type-arg]
        ends = "" in node
        branches = [(r"\s+" if c == " " else re.escape(c)) + build(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return f"(?:{body})?"
        return body

    return "(?:" + build(root) + ")"


def _rule(
    label: str,
    pattern: str,
    score: float = 0.85,
    *,
    check: Callable[[str], bool] | None = None,
    not_after: re.Pattern[str] | None = None,
    needs: Iterable[str] = (),
    starts: Iterable[str] = (),
    gate: str | None = None,
    window: tuple[int, int] = (80, 80),
) -> Rule:
    first_words = frozenset(_first_word(w) for w in starts)
    compiled_gate = re.compile(gate) if gate else None
    return Rule(label, re.compile(pattern), score, check, not_after, tuple(needs), first_words, compiled_gate, window)


def _first_word(phrase: str) -> str:
    """The word index's key for a phrase: its first run of letters, lower-cased ("ss#" -> "ss")."""
    m = _WORD.search(phrase.lower())
    if m is None:
        raise ValueError(f"no word in {phrase!r}")
    return m.group()


def _at_least(n: int) -> Callable[[str], bool]:
    return lambda found: len(found.strip("-")) >= n


def _digits(lo: int, hi: int) -> Callable[[str], bool]:
    return lambda found: lo <= sum(c.isdigit() for c in found) <= hi


# --- names -------------------------------------------------------------------------------
# A name token: Maria, O'Brien, McDonald, Garcia-Lopez, an initial "J." or a name in capitals.
_TOKEN = r"(?:[A-Z]\.|[A-Z](?:'[A-Z])?[a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?|[A-Z]{2,}(?:-[A-Z]{2,})?)"
_PARTICLE = r"(?:(?:de|la|del|della|van|von|der|den|da|di|du|le|bin|ibn|al|el|dos|das|ter)[ \t]+)"
_NAME_TOKEN = rf"(?!(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Rev|Fr)\b){_PARTICLE}*{_TOKEN}"  # a title starts the next name
_NAME = rf"{_NAME_TOKEN}(?:,?[ \t]+{_NAME_TOKEN}){{0,2}}"
# Words that introduce a person: relatives, carers, contacts, clinicians, signatures.
_PERSON_WORDS = (
    "son-in-law daughter-in-law mother-in-law father-in-law sister-in-law brother-in-law "
    "daughter son wife husband spouse partner sister brother mother father mom mum dad niece nephew aunt uncle "
    "cousin grandson granddaughter grandmother grandfather grandchild grandma grandpa stepson stepdaughter "
    "stepmother stepfather fiance fiancee fiancé fiancée girlfriend boyfriend friend neighbour neighbor caregiver "
    "carer guardian roommate housemate landlord landlady employer boss coworker co-worker colleague sponsor proxy "
    "poa interpreter chaplain contact "  # the words before are relatives and contacts, the ones after clinicians
    "nurse doctor physician surgeon attending resident pcp therapist pharmacist "
    "midwife dentist paramedic aide cardiologist neurologist oncologist nephrologist pulmonologist urologist "
    "gastroenterologist endocrinologist dermatologist rheumatologist hematologist radiologist pathologist "
    "anesthesiologist psychologist audiologist psychiatrist podiatrist pediatrician optometrist hospitalist "
    "intensivist internist obstetrician gynecologist attn"
).split() + [
    "care giver",
    "emergency contact",
    "social worker",
    "case manager",
    "health care proxy",
    "patient name",
    "pt name",
    "full name",
    "first name",
    "last name",
    "given name",
    "family name",
    "maiden name",
    "preferred name",
    "legal name",
    "contact name",
    "spoke with",
    "spoke to",
    "talked with",
    "talked to",
    "met with",
    "visited with",
    "seen by",
    "examined by",
    "signed by",
    "dictated by",
    "cosigned by",
    "co-signed by",
    "accompanied by",
    "referred by",
    "called by",
    "reviewed by",
    "witnessed by",
    "brought by",
    "driven by",
]
_PERSON_CUE = (
    rf"(?:(?i:\b{_trie(_PERSON_WORDS)}\b\.?:?|\bcc:"
    r"|(?<!drug )(?<!brand )(?<!generic )(?<!trade )(?<!product )(?<!medication )(?<!test )\bname\s*:)"
    r"|\b(?:Dr|DR|dr|Mr|MR|Mrs|MRS|Ms|Mx|Miss|Prof|RN|NP|PA|Rev|Fr|Pastor|Rabbi|Imam|Sr)\b\.?)"
)
_RELATIVES = _PERSON_WORDS.index("nurse")
# Capitalised words that follow a cue without being a name ("son present", "nurse Practitioner").
_NOT_NAMES = frozenset(
    "a an and at bedside by called came for from has have he her here him his in is it its notified of on or "
    "our present she that the their them they this to today was were who will with aware states reports "
    "practitioner station note notes visit office team unit service er ed icu pt ot md do rn np pa pcp "
    "medicine surgery cardiology nursing family internal primary covering paged discussed informed spoke "
    "per call night day dr mr mrs ms mx miss prof rev fr physician surgeon resident staff attestation lab "
    "laboratory radiology neurology nephrology oncology psychiatry pulmonology gastroenterology endocrinology "
    "dermatology orthopedics urology hematology rheumatology infectious disease ent gi id slp palliative hospice "
    "anesthesia pathology pharmacy nutrition dietary chaplaincy physical occupational speech respiratory social "
    "case wound rehab hospitalist consult interventional emergency".split()
)
_CREDENTIALS = "MD M.D. DO D.O. RN NP PA-C PA PhD LCSW PharmD DDS DMD CNM APRN FNP DNP MSW LPN CRNA".split()


def _plausible_name(found: str) -> bool:
    first = next((w for w in re.split(r"[\s,]+", found) if w[:1].isupper()), "")
    return first.rstrip(".").lower() not in _NOT_NAMES


# --- places ------------------------------------------------------------------------------
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC"
    "|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI"
)
_STREET = (
    r"(?i:street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|court|ct|way|place|pl|terrace|ter"
    r"|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|alley|aly|row|crescent|cres|close|grove"
    r"|plaza|pike|turnpike|loop|run|path|walk)"
)
# Street kinds as addresses write them (capitalised or in capitals): "st" and "way" in lower case are words.
_STREET_GATE = "|".join(
    f"{w.capitalize()}|{w.upper()}" for w in _STREET.removeprefix("(?i:").removesuffix(")").split("|")
)
_STREET_WORDS = "Street|Avenue|Road|Lane|Boulevard|Drive|Court|Terrace|Parkway|Highway|St|Ave|Rd|Blvd|Ln"
_UNIT = r"(?i:apt|apartment|unit|suite|ste|fl|floor|rm|room|bldg|building|#)\.?\s*#?\s*[A-Za-z0-9-]+"

# Capitalised words after "lives in" that name a kind of home, not a place.
_NOT_PLACES = frozenset(
    "assisted skilled nursing group independent senior long memory residential care home the a".split()
)

# --- dates -------------------------------------------------------------------------------
_MONTH = (
    r"(?:(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?|May|MAY)"  # "may" in lower case is the verb
)
_MONTH_WORDS = (
    "jan january feb february mar march apr april may jun june jul july aug august sep sept september oct october "
    "nov november dec december"
).split()
# A day number before a month name ("3rd of March", "03-Mar", "14MAR2021"): where the day-first forms can be.
_MONTH_GATE = r"(?i)\d(?:st|nd|rd|th)?(?:[ \t]+of)?[ \t-]*(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_AGE_GATE = r"\b(?:9\d|1[0-2]\d)(?!\d)"
_YEAR = r"(?:(?:19|20)\d{2}|'\d{2})"
_DATE_WORDS = (
    "on since from until till through thru by date dated dos seen admitted discharged started stopped last next "
    "due effective before after visit surgery procedure born dob mon monday tue tues tuesday wed wednesday thu "
    "thur thurs thursday fri friday sat saturday sun sunday"
).split()


def _real_day_month(found: str) -> bool:
    parts = re.split(r"[/.-]", found)
    numbers = [int(p) for p in parts if p.isdigit()]
    if len(numbers) < 2:
        return False
    a, b = (numbers[1], numbers[2]) if len(parts[0]) == 4 and len(numbers) > 2 else (numbers[0], numbers[1])
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)


# --- numbers that identify ---------------------------------------------------------------
# What follows an id cue: "number", "no.", "#", "id", ":" ... then a value with at least one digit.
_ID_TAIL = (
    r"(?i:(?:\s+(?:number|num|no\.?|#|id|identifier|code))*[\s:#.-]*(?:is\s+|was\s+)?)"
    r"(?P<phi>(?i:[A-Z0-9][A-Z0-9-]*\d[A-Z0-9-]*))"
)
_TLDS = (
    # country domains that are also words ("in", "it", "no", "me") are left out: "stable.It" is a typo, not a URL
    "com|org|net|edu|gov|mil|info|biz|io|uk|au|nz|ie|fr|nl|ch|dk|fi|jp|cn|br|mx"
    "|health|care|clinic|hospital|doctor|med|app|dev|ly|tv|ai|online|site"
)
# Code systems whose codes look like long ids but identify no one.
_CODE_SYSTEM = re.compile(
    r"(?i)\b(?:snomed(?:\s*ct)?|loinc|ndc|cpt|icd(?:-?(?:9|10))?(?:-?cm)?|rxnorm|rxcui|hcpcs|drg|lot|batch|atc"
    r"|cas|ref)\b[\s:#-]*$"
)


def _cued(label: str, words: str, score: float = 0.8, minimum: int = 4) -> Rule:
    """A number named by a word before it ("member ID XYZ123456"): the words, space-separated, '_' for a space."""
    phrases = [w.replace("_", " ") for w in words.split()]
    return _rule(
        label,
        rf"(?i:\b{_trie(phrases)})\b{_ID_TAIL}",
        score,
        check=_at_least(minimum),
        starts=phrases,
    )


_TITLES = "dr mr mrs ms mx miss prof rn np pa rev fr pastor rabbi imam sr cc name".split()

RULES: tuple[Rule, ...] = (
    # (A) names introduced by a word for a person, and names followed by a credential or "(mother)"
    _rule(
        NAME,
        rf"{_PERSON_CUE}[ \t]*,?[ \t]*(?P<phi>{_NAME})",
        0.85,
        check=_plausible_name,
        starts=[*_PERSON_WORDS, *_TITLES],
    ),
    _rule(
        NAME,
        rf"(?P<phi>{_NAME})[ \t]*\((?i:(?:pt'?s[ \t]+|her[ \t]+|his[ \t]+)?{_trie(_PERSON_WORDS[:_RELATIVES])})\)",
        0.85,
        check=_plausible_name,
        gate=r"\((?i:pt|her|his|[a-z]+\))",
        window=(90, 40),
    ),
    _rule(
        NAME,
        rf"(?P<phi>{_NAME}),?[ \t]+{_trie(_CREDENTIALS)}(?![\w-])",
        0.85,
        check=_plausible_name,
        gate=rf"\b{_trie(_CREDENTIALS)}(?![\w-])",
        window=(90, 2),
    ),
    # (B) street addresses, PO boxes, units, "City, ST", counties, ZIP codes in context
    _rule(
        ADDRESS,
        rf"(?P<phi>\b\d{{1,6}}[A-Za-z]?(?:-\d{{1,4}})?\s+(?:[NSEW]\.?\s+)?(?:[A-Z0-9][A-Za-z0-9'.-]*\s+){{1,4}}?"
        rf"{_STREET}\b\.?(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?(?:,?\s+{_UNIT})?)",
        0.85,
        gate=rf"\b(?:{_STREET_GATE})\b",
        window=(90, 50),
    ),
    _rule(
        ADDRESS,
        rf"(?i:\b(?:on|off|at|near|along)\s+)(?P<phi>(?:[A-Z][a-z]+[ \t]){{1,3}}(?:{_STREET_WORDS}))\b",
        0.7,
        gate=rf"[a-z][ \t](?:{_STREET_WORDS})\b",
        window=(60, 2),
    ),
    _rule(
        ADDRESS,
        r"(?P<phi>\b[A-Z][a-z]+(?:[ \t][A-Z][a-z]+)?)[ \t]+(?:County|Parish|Borough|Township|Twp)\b",
        0.7,
        gate=r"\b(?:County|Parish|Borough|Township|Twp)\b",
        window=(40, 2),
    ),
    _rule(ADDRESS, r"(?i:\bp\.?\s?o\.?\s+box\s+\d+)", 0.85, needs=["box"], starts=["p", "po"]),
    _rule(
        ADDRESS,
        r"(?i:\b(?:apt|apartment)\b)\.?\s*#?\s*(?P<phi>\d+[A-Za-z]?|[A-Za-z]\d*)\b",
        0.6,
        starts=["apt", "apartment"],
    ),
    _rule(
        ADDRESS,
        rf"(?P<phi>\b[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){{0,2}})(?:,[ \t]+(?:{_STATES})\b(?=\s+\d{{5}}|\s*[.,;)]|\s*$)"
        rf"|[ \t]+(?:{_STATES})[ \t]+\d{{5}}\b)",
        0.7,
        gate=rf"[a-z],?[ \t]+(?:{_STATES})\b",
        window=(60, 12),
    ),
    _rule(
        ADDRESS,
        r"(?i:\b(?:lives|living|resides|residing|moved|relocated)\s+(?:in|to|from|at)\s+)"
        r"(?P<phi>[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){0,2})",
        0.7,
        check=lambda found: found.split()[0].lower() not in _NOT_PLACES,
        starts=["lives", "living", "resides", "residing", "moved", "relocated"],
    ),
    _rule(
        ZIP,
        r"(?i:\b(?:zip|zip\s*code|zipcode|postal\s+code|post\s+code)\b[\s:#]*)(?P<phi>\d{5}(?:-\d{4})?)",
        0.9,
        starts=["zip", "zipcode", "postal", "post"],
    ),
    _rule(
        ZIP,
        rf"\b(?:{_STATES})\.?,?[ \t]+(?P<phi>\d{{5}}(?:-\d{{4}})?)\b",
        0.85,
        gate=r"\b[A-Z]{2}\.?,?[ \t]+\d{5}",
        window=(0, 8),
    ),
    _rule(ZIP, r"(?<![\d-])\d{5}-\d{4}(?![\d-])", 0.7, gate=r"\d{5}-\d{4}", window=(2, 2)),
    # (C) dates: every element but the year; ages over 89
    _rule(DATE, rf"\b{_MONTH}[ \t]+{_DAY}\b(?:,?[ \t]+{_YEAR}\b)?", 0.85, starts=_MONTH_WORDS),
    _rule(DATE, rf"\b{_MONTH},?[ \t]+{_YEAR}\b", 0.8, starts=_MONTH_WORDS),
    _rule(
        DATE,
        rf"\b{_DAY}(?:[ \t]+of)?[ \t]+{_MONTH}(?![a-z])(?:,?[ \t]+{_YEAR}\b)?",
        0.85,
        gate=_MONTH_GATE,
        window=(3, 24),
    ),
    _rule(DATE, rf"\b{_DAY}-{_MONTH}-(?:\d{{4}}|\d{{2}})\b", 0.9, gate=_MONTH_GATE, window=(3, 16)),
    _rule(DATE, rf"\b(?:0?[1-9]|[12]\d|3[01]){_MONTH}(?:\d{{4}}|\d{{2}})\b", 0.9, gate=_MONTH_GATE, window=(3, 16)),
    _rule(
        DATE,
        r"(?i:\b(?:christmas(?:\s+(?:day|eve))?|thanksgiving(?:\s+day)?|new\s+year'?s(?:\s+(?:day|eve))?"
        r"|easter(?:\s+sunday)?|independence\s+day|halloween|valentine'?s\s+day|memorial\s+day|labou?r\s+day"
        r"|veterans\s+day|hanukkah|diwali|eid(?:\s+al-\w+)?)(?:,?\s+(?:19|20)\d{2})?)\b",
        0.8,
        starts="christmas thanksgiving new easter independence halloween valentine memorial labor labour veterans "
        "hanukkah diwali eid".split(),
    ),
    _rule(
        DATE,
        r"(?<![\d./-])\d{1,2}([/.-])\d{1,2}\1(?:\d{4}|\d{2})(?![\d./-]?\d)",
        0.85,
        check=_real_day_month,
        gate=r"\d[/.-]\d{1,2}[/.-]\d\d",
        window=(2, 4),
    ),
    _rule(
        DATE,
        r"(?<![\d./-])(?:19|20)\d{2}([/.-])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?:[T ]\d{2}:\d{2}(?::\d{2})?)?"
        r"(?![\d./-]?\d)",
        0.9,
        gate=r"\d{4}[/.-]\d",
        window=(2, 18),
    ),
    _rule(
        DATE,
        r"(?<![\d.])(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![\d.]?\d)",
        0.8,
        gate=r"\d{8}",
        window=(2, 2),
    ),
    _rule(
        DATE,
        rf"(?i:\b{_trie(_DATE_WORDS)}\b[\s:]+)(?P<phi>(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))(?![/\d])"
        r"(?!\s*(?i:tab|tablet|pill|cap|dose|strength|ns\b|normal|of\b|mg|ml|mcg|units?\b|cup|tsp|teaspoon|with))",
        0.75,
        needs=["/"],
        starts=_DATE_WORDS,
    ),
    _rule(DATE, r"(?<![\d/.])(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}(?![\d/])", 0.75, gate=r"\d/\d{4}", window=(3, 2)),
    _rule(
        AGE,
        r"(?i:\b(?P<phi>9\d|1[0-2]\d)[\s-]*(?:years?|yrs?|y)[\s-]*(?:old|o\b|/o\b|\.o\.?))",
        0.9,
        gate=_AGE_GATE,
        window=(0, 20),
    ),
    _rule(AGE, r"(?i:\b(?P<phi>9\d|1[0-2]\d)[\s-]*y/?o\b)", 0.9, gate=_AGE_GATE, window=(0, 8)),
    _rule(
        AGE,
        r"(?i:\b(?:age[ds]?|turned|turns|turning)(?:\s+of)?[\s:]+)(?P<phi>9\d|1[0-2]\d)\b",
        0.9,
        starts=["age", "aged", "ages", "turned", "turns", "turning"],
    ),
    _rule(
        AGE,
        r"(?i:\b(?P<phi>9\d|1[0-2]\d)\s+(?:years?|yrs?)\s+(?:of\s+age|young)\b)",
        0.9,
        needs=["of age", "young"],
        gate=_AGE_GATE,
        window=(0, 24),
    ),
    _rule(
        AGE,
        r"(?i:\b(?P<phi>9\d|1[0-2]\d)(?:st|nd|rd|th)\s+birthday)",
        0.9,
        needs=["birthday"],
        gate=_AGE_GATE,
        window=(0, 16),
    ),
    _rule(
        AGE,
        r"(?i:\b(?P<phi>ninety(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?"
        r"|(?:one\s+|a\s+)?hundred(?:(?:\s+and)?[\s-](?:one|two|three|four|five|six|seven|eight|nine|ten|\w+teen"
        r"|twenty))?)[\s-]+(?:years?|yrs?)[\s-]+(?:old|of\s+age))",
        0.9,
        starts=["ninety", "one", "a", "hundred"],
        needs=["ninety", "hundred"],
    ),
    # (D) phones and (E) fax numbers: North American shapes whether or not the number exists
    _rule(
        FAX,
        r"(?i:\b(?:fax|facsimile|fx)\b(?:\s+(?:number|no\.?|#))?[\s:#.]*(?:is\s+)?)(?P<phi>\+?[\d(][\d\s().-]{5,18}\d)",
        0.95,
        check=_digits(7, 15),
        starts=["fax", "facsimile", "fx"],
    ),
    _rule(
        PHONE,
        r"(?<![\w+./-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)[\s.-]?|\d{3}[\s./-])\d{3}[\s.-]\d{4}"
        r"(?:\s?(?i:x|ext\.?|extension)\s?\d{1,5})?(?![\d-])",
        0.85,
        gate=r"\d{3}[\s.-]\d{4}",
        window=(12, 20),
    ),
    _rule(
        PHONE,
        r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,5}\)?){2,6}(?!\d)",
        0.85,
        check=_digits(8, 15),
        gate=r"\+\d",
        window=(0, 32),
    ),
    _rule(
        PHONE,
        r"(?i:\b(?:call|phone|ph|tel|telephone|cell|mobile|pager|beeper|contact|reach(?:ed)?\s+at|number)\b"
        r"[\s:#.]*(?:is\s+|at\s+)?)(?P<phi>\d{3}[\s.-]?\d{4}|\d{10})(?!\d)",
        0.8,
        starts="call phone ph tel telephone cell mobile pager beeper contact reach reached number".split(),
    ),
    # (F) email, obfuscated too
    _rule(EMAIL, r"[\w.+-]+@[A-Za-z][\w-]*(?:\.[\w-]+)*", 0.95, gate="@", window=(80, 200)),
    _rule(
        EMAIL,
        r"(?i:[\w.+-]+\s*(?:\[at\]|\(at\)|\s+at\s+)\s*[\w-]+\s*(?:\[dot\]|\(dot\)|\s+dot\s+)\s*(?:com|org|net|edu|gov))",
        0.85,
        gate=r"(?i)\[dot\]|\(dot\)|\sdot\s",
        window=(90, 12),
    ),
    # (N) URLs, with a scheme, from www., or a bare domain under a common top-level domain
    _rule(URL, r"(?i:\b(?:https?|s?ftp)://[^\s<>\"']+[^\s<>\"'.,;:)\]])", 0.95, gate="://", window=(6, 400)),
    _rule(URL, r"(?i:\bwww\.[^\s<>\"']+[^\s<>\"'.,;:)\]])", 0.9, starts=["www"]),
    _rule(
        URL,
        rf"(?i:(?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS})\b(?![.-]\w)"
        r"(?:[/?#][^\s<>\"']*[^\s<>\"'.,;:)\]])?)",
        0.8,
        gate=rf"(?i)\.(?:{_TLDS})\b",
        window=(120, 400),
    ),
    # (O) IPv4 as written, leading zeros too (Presidio's recognizer finds the canonical forms and IPv6)
    _rule(
        IP,
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|[01]?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|[01]?\d?\d)(?![\d]|\.\d)",
        0.85,
        gate=r"\d\.\d{1,3}\.\d{1,3}\.\d",
        window=(4, 8),
    ),
    # (G) SSN with any separator, or after a word for it
    _rule(
        SSN,
        r"(?<![\d.-])(?!000)\d{3}([ .-])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-]|\.\d)",
        0.9,
        gate=r"\d\d[ .-]\d{4}",
        window=(6, 2),
    ),
    _rule(
        SSN,
        r"(?i:\b(?:ssn|ss\s?#|ss\s?no\.?|soc(?:ial)?\.?\s*sec(?:urity)?\.?(?:\s+(?:number|no\.?|#|card))?|itin"
        r"|tax\s+id|tin)(?:[\s:#.-]|\bis\b|\bwas\b|\bending\b|\bwith\b|\bin\b|\bof\b|\blast\s+(?:4|four)\b|\bdigits\b)*)"
        r"(?P<phi>(?:\d[\s.-]?){3,8}\d)(?!\d)",
        0.95,
        starts=["ssn", "ss", "soc", "social", "itin", "tax", "tin"],
    ),
    _rule(
        SSN,
        r"(?i:(?:x{3}|\*{3}|#{3})[\s.-]?(?:x{2}|\*{2}|#{2})[\s.-]?)(?P<phi>\d{4})\b",
        0.9,
        needs=["xxx", "***", "###"],
    ),
    # (H) medical record numbers
    _rule(
        MRN,
        r"(?i:(?:\bmrn|\bmr\s*#|\bmr\s*no\.?|\bmed(?:ical)?\.?\s+rec(?:ord)?s?\.?(?:\s+(?:number|no\.?|#))?"
        r"|\b(?:record|chart|hospital|unit|patient|pt|case|health\s+record)\s+(?:number|no\.?|#|id)"
        r"|\bemr\s+(?:number|no\.?|#|id)|\bfin\b|\bcsn\b)(?:[\s:#.-]|is\b|was\b)*)"
        r"(?P<phi>(?i:[A-Z]{0,4}-?\d[\dA-Z-]*))",
        0.9,
        check=_at_least(2),
        starts="mrn mr med medical record chart hospital unit patient pt case health emr fin csn".split(),
    ),
    # (I) health plan, (J) account, (K) licence, (L) vehicle, (M) device numbers, (P) biometrics
    _cued(
        PLAN,
        "member membership subscriber beneficiary policy policy_holder insurance insurer health_plan plan group "
        "medicaid medicare mbi hicn medi-cal bcbs blue_cross aetna cigna humana united_healthcare unitedhealthcare "
        "kaiser payer",
    ),
    _cued(
        ACCOUNT,
        "account acct a/c billing invoice claim credit_card debit_card card card_ending card_ending_in bank routing "
        "iban check cheque receipt",
    ),
    _cued(
        LICENCE,
        "license licence driver's_license drivers_license driver_license driver's_licence driving_licence "
        "medical_license nursing_license state_license dea npi certificate cert passport state_id badge "
        "board_certification registration",
    ),
    _rule(LICENCE, rf"\bDL\b{_ID_TAIL}", 0.8, check=_at_least(4), starts=["dl"]),
    _cued(VEHICLE, "plate license_plate licence_plate tag vin vehicle car truck motorcycle", minimum=5),
    _rule(
        VEHICLE,
        rf"(?i:\b(?:plate|tag)(?:\s+(?:number|no\.?|#))?[\s:#]*)(?:{_STATES})[ \t]+"
        r"(?P<phi>(?i:[A-Z0-9-]*\d[A-Z0-9-]*))",
        0.85,
        check=_at_least(4),
        starts=["plate", "tag"],
    ),
    _rule(
        VEHICLE,
        r"\b(?=[A-HJ-NPR-Z0-9]{17}\b)(?=[A-Z0-9]*\d)(?=[0-9]*[A-Z])[A-HJ-NPR-Z0-9]{17}\b",
        0.85,
        gate=r"[A-HJ-NPR-Z0-9]{17}",
        window=(1, 1),
    ),
    _cued(
        DEVICE,
        "serial s/n sn device udi imei imsi meid pacemaker defibrillator aicd implant hearing_aid insulin_pump",
    ),
    _rule(
        DEVICE,
        r"\b[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}\b",
        0.85,
        gate=r"[0-9A-Fa-f]{2}[:-][0-9A-Fa-f]{2}[:-]",
        window=(0, 18),
    ),
    _rule(DEVICE, r"\(01\)\d{14}(?:\(\d{2,4}\)[A-Za-z0-9]+)*", 0.9, gate=r"\(01\)\d", window=(0, 80)),
    _cued(
        BIOMETRIC,
        "fingerprint finger_print thumbprint thumb_print voiceprint voice_print retina retinal retinal_scan iris "
        "iris_scan palm palm_print biometric face_id faceid facial facial_scan facial_recognition dna",
    ),
    # (R) any other number: long digit runs, and letters with five digits or more, outside code systems
    _rule(ID, r"(?<![\d.,/-])\d{8,}(?![\d]|[.,]\d)", 0.5, not_after=_CODE_SYSTEM, gate=r"\d{8}", window=(2, 40)),
    _rule(
        ID,
        r"\b(?=[A-Za-z0-9-]*\d{5})[A-Za-z][A-Za-z0-9]*-?\d{5,}[A-Za-z0-9-]*\b|\b\d{5,}[A-Z]{1,3}\b",
        0.5,
        not_after=_CODE_SYSTEM,
        gate=r"\d{5}",
        window=(40, 40),
    ),
    _cued(
        ID,
        "id identifier accession specimen encounter visit order requisition rx prescription referral authorization "
        "authorisation auth case ticket employee student voter military",
        0.6,
        minimum=5,
    ),
)
