"""HTTP helpers shared by the domains' endpoints."""

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    """A JSON response serialized with orjson (datetimes, UUIDs and dataclasses included)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
