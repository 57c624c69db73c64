"""schemathesis against the REST API of a real `csmm serve`: generated requests (the document's
examples, boundary and malformed values, random ones) never get a 5xx, and every answer conforms
to the OpenAPI document (status codes, content type, body schema)."""

from __future__ import annotations

import schemathesis

from controller.northbound.web.api import OPENAPI
from tests.integration.test_rest_api import Api, api  # noqa: F401 (the served API, a module fixture)

schema = schemathesis.openapi.from_dict(OPENAPI)
schema.config.generation.update(max_examples=15, deterministic=True, database="none")
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
schema.config.checks.update(included_check_names=["not_a_server_error", "status_code_conformance",
                                                  "content_type_conformance", "response_schema_conformance"])


@schema.parametrize()
def test_the_api_answers_every_generated_request_as_its_document_says(case, api: Api) -> None:  # noqa: F811
    case.call_and_validate(base_url=api.base, headers={"Authorization": f"Bearer {api.tokens['operator']}"})
