"""What an answer cost, from the pricing table (data/pricing.json); never guessed for unlisted models."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from ..core.types import Response


@lru_cache(maxsize=1)
def pricing() -> dict:
    return json.loads(resources.files("jupyter_aigc").joinpath("data/pricing.json").read_text())


def cost(response: Response) -> float | None:
    """US dollars for an OpenAI model in the pricing table; None for any other model or server."""
    if response.engine != "openai" or not response.usage or response.params.get("base_url"):
        return None
    model = response.model.removeprefix("openai:")
    price = pricing().get(model)
    if price is None:
        return None
    return ((response.usage.get("prompt_tokens") or 0) * price[0]
            + (response.usage.get("completion_tokens") or 0) * price[1]) / 1e6
