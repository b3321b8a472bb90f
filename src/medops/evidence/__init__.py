"""Evidence for regulators: packages with a signed manifest, the EU AI Act Annex IV outline, and the HTML
a person reads (the records themselves are gathered by the evidence service)."""
