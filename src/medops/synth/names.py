"""The scenario and format names, apart from the generator so the CLI can list them cheaply."""

SCENARIOS = ("baseline", "aging", "new_treatment", "unit_change", "missingness_spike", "label_delay")
FORMATS = ("csv", "parquet", "fhir")
