"""The OpenAPI schema generates without warnings and names every API operation."""

import json

from django.core.management import call_command


def test_schema_generates_cleanly_and_lists_the_ingest_operation(tmp_path):
    out = tmp_path / "schema.json"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(out)
    )
    schema = json.loads(out.read_text())
    assert "/api/v1/ingest/{source_format}/" in schema["paths"]
    assert schema["paths"]["/api/v1/ingest/{source_format}/"]["post"]["security"] == [{"machineKey": []}]
