"""The OpenAPI schema generates without warnings and names every API operation."""

import yaml
from django.core.management import call_command


def test_schema_generates_cleanly_and_lists_the_ingest_operation(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert "/api/v1/ingest/{source_format}/" in schema["paths"]
    assert schema["paths"]["/api/v1/ingest/{source_format}/"]["post"]["security"] == [{"machineKey": []}]
