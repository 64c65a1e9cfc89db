"""Write the API's OpenAPI document: ``python -m pipeline.api.openapi > docs/openapi.json``.

The committed copy lets people import the API (Postman, client generators) without running it;
``tests/unit/test_api_openapi.py`` fails when it falls behind the code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pipeline.api.app import create_api
from pipeline.settings import Settings


def openapi_document() -> dict[str, Any]:
    return create_api(Settings()).openapi()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
