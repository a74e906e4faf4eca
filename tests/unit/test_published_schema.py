"""docs/jobspec.schema.json is the schema the API serves; regenerate it when JobSpec changes:

    .venv/bin/python -c "import json; from aidc.api.routers.meta import jobspec_json_schema as s; \
print(json.dumps(s(), indent=2))" > docs/jobspec.schema.json
"""

import json
from pathlib import Path

from aidc.api.routers.meta import jobspec_json_schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "jobspec.schema.json"


def test_published_jobspec_schema_matches_the_code() -> None:
    assert json.loads(DOC.read_text()) == jobspec_json_schema()
