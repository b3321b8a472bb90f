"""Builds generated.json: PHI probes made from medops's own synthetic data (run from the repository root:
``python tests/data/deid_probes/build_generated.py``; the file is committed, the test only reads it).

Each probe is a clinical sentence with identifiers of one synthetic patient written the many ways
notes write them; ``phi`` lists the strings that must not survive, ``record`` the patient's own
names (what the ingest looks up by patient id), ``identifier`` the Safe Harbor letter.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

from medops.synth import generate, vocab

OUT = Path(__file__).with_name("generated.json")
RELATIONS = [
    "daughter",
    "son",
    "wife",
    "husband",
    "neighbour",
    "neighbor",
    "caregiver",
    "carer",
    "friend",
    "niece",
    "grandson",
    "sister-in-law",
    "guardian",
    "roommate",
]


def ordinal(day: int) -> str:
    return f"{day}{'th' if 11 <= day % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"


def date_forms(d: date) -> list[str]:
    return [
        f"{d:%B} {ordinal(d.day)}, {d.year}",
        f"{d:%B} {d.day}, {d.year}",
        f"{d.day} {d:%B} {d.year}",
        f"{d:%m.%d.%Y}",
        f"{d:%m/%d/%Y}",
        f"{d.month}/{d.day}/{d:%y}",
        f"{d:%Y-%m-%d}",
        f"{d:%Y%m%d}",
        f"{d:%b} {d.day}",
        f"{d.day}-{d:%b}-{d.year}",
        f"{d:%B} {d.year}",
        f"the {ordinal(d.day)} of {d:%B}",
    ]


def phone_forms(phone: str) -> list[str]:
    a, b, c = phone.split("-")
    return [f"({a}) {b}-{c}", f"{a}.{b}.{c}", f"{a} {b} {c}", f"+1 {a} {b} {c}", f"{a}-{b}-{c}", f"1-{a}-{b}-{c}"]


def ssn_forms(ssn: str) -> list[tuple[str, str]]:
    a, b, c = ssn.split("-")
    return [
        ("SSN {}", f"{a}-{b}-{c}"),
        ("social security number {}", f"{a} {b} {c}"),
        ("SS# {}", f"{a}.{b}.{c}"),
        ("SSN: {}", f"{a}{b}{c}"),
        ("soc sec no. {}", f"{a}-{b}-{c}"),
    ]


def main() -> None:
    data = generate(400, seed=2017)
    rng = random.Random(2017)
    pts = data.patients.sample(frac=1.0, random_state=7).reset_index(drop=True)
    hcps = data.hcps
    probes: list[dict[str, object]] = []

    def add(identifier: str, category: str, note: str, phi: list[str], record: list[str] | None = None) -> None:
        for value in phi:
            assert value in note, (value, note)
        probe: dict[str, object] = {"identifier": identifier, "category": category, "note": note, "phi": phi}
        if record:
            probe["record"] = record
        probes.append(probe)

    for i, p in pts.head(40).iterrows():
        first, last, record = p.first_name, p.last_name, [p.first_name, p.last_name]
        style = i % 4
        if style == 0:
            add("A", "own name", f"Pt {first} {last} ambulating in hallway, tolerating diet.", [first, last], record)
        elif style == 1:
            add(
                "A",
                "own name, lower case",
                f"spoke with {first.lower()} {last.lower()} about the plan.",
                [first.lower(), last.lower()],
                record,
            )
        elif style == 2:
            add(
                "A",
                "own name, capitals",
                f"{first.upper()} {last.upper()} DENIES CHEST PAIN.",
                [first.upper(), last.upper()],
                record,
            )
        else:
            title = "Mr." if p.sex == "M" else "Ms."
            add(
                "A",
                "own name, surname alone",
                f"Discussed results with {title} {last}; {first} agrees with plan.",
                [last, first],
                record,
            )
    for i in range(40, 80):
        relative = rng.choice(vocab.FIRST_F + vocab.FIRST_M)
        relation = RELATIONS[i % len(RELATIONS)]
        kin_last = rng.choice(vocab.LAST)
        add(
            "A",
            "relative or carer",
            f"Patient lives with {relation} {relative} {kin_last}, who manages medications.",
            [relative, kin_last],
        )
    for i, h in hcps.head(10).iterrows():
        form = [
            f"Dr. {h.last_name}",
            f"Dr {h.first_name} {h.last_name}",
            f"{h.first_name} {h.last_name}, MD",
            f"nurse {h.first_name}",
            f"seen by {h.first_name} {h.last_name}",
        ][i % 5]
        names = [t for t in (h.first_name, h.last_name) if t in form]
        add("A", "clinician", f"Case reviewed with {form} this morning; no changes to plan.", names)
    for i, p in pts.iloc[80:110].iterrows():
        street = p.address
        if i % 3 == 0:
            add(
                "B",
                "street address",
                f"Discharged home to {street}, {p.city}, {p.state} {p.zip} with services.",
                [street, p.zip, p.city],
            )
        elif i % 3 == 1:
            add(
                "B",
                "street address with unit",
                f"Home health to visit at {street} Apt {i % 9 + 1}B weekly.",
                [street, f"{i % 9 + 1}B"],
            )
        else:
            add("B", "ZIP code", f"Transport arranged; ZIP {p.zip} is outside the service area.", [p.zip])
    for i in range(110, 170):
        d = date(2025, 1, 1) + timedelta(days=rng.randrange(0, 365))
        form = date_forms(d)[i % 12]
        add("C", "date", f"Colonoscopy performed {form} without complications.", [form.removeprefix("the ")])
    for i, p in pts.iloc[170:200].iterrows():
        form = phone_forms(p.phone)[i % 6]
        add("D", "phone", f"Best contact for results is {form} after 5 pm.", [form])
    for i, p in pts.iloc[200:210].iterrows():
        form = phone_forms(p.phone)[i % 6]
        add("E", "fax", f"Records faxed to fax {form} per request.", [form])
    for _, p in pts.iloc[210:225].iterrows():
        add("F", "email", f"Patient portal messages go to {p.email} weekly.", [p.email])
    for i, p in pts.iloc[225:245].iterrows():
        template, value = ssn_forms(p.ssn)[i % 5]
        add("G", "SSN", "Registration confirmed " + template.format(value) + " on intake form.", [value])
    for i, p in pts.iloc[245:265].iterrows():
        digits = p.mrn[3:]
        form = [p.mrn, f"MRN-{digits}", f"MRN: {digits}", f"medical record number {digits}", f"MRN# {digits}"][i % 5]
        value = form if form == p.mrn else digits
        add("H", "MRN", f"Labs filed under {form} in the chart.", [value])
    notes = data.notes.merge(data.patients, on="patient_id").drop_duplicates("patient_id").head(15)
    for _, n in notes.iterrows():
        # the generator's own notes, one probe per identifier: name, MRN, dates, relative, phone
        text, record = str(n.text), [n.first_name, n.last_name]
        admit = text.split(" admitted ")[1].split(" ")[0]
        relative = text.split(". ")[1].split(" ")[1]
        for identifier, value in (
            ("A", n.first_name),
            ("A", n.last_name),
            ("A", relative),
            ("H", n.mrn),
            ("C", admit),
            ("C", str(n.birth_date)),
            ("D", n.phone),
        ):
            add(identifier, "generated note", text, [value], record)
    lines = ",\n".join(json.dumps(p, ensure_ascii=False) for p in probes)  # one probe a line: diffs stay readable
    OUT.write_text(f"[\n{lines}\n]\n")
    print(f"{len(probes)} probes -> {OUT}")


if __name__ == "__main__":
    main()
