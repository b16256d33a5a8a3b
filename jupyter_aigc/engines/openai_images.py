"""OpenAIImagesEngine: the OpenAI Images API through the official SDK, with %%gpt's key handling."""

from __future__ import annotations

import base64
import io
import threading

import time

from ..core.errors import AigcError
from ..core.models import ModelRef
from .base import IMAGES
from .diffusers import ImageRequest
from .openai import OpenAIEngine

SIZES = {
    "gpt-image": {"1024x1024", "1536x1024", "1024x1536", "auto"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
}


class OpenAIImagesEngine:
    """Images from OpenAI (or a compatible server); shares the text engine's clients and error messages."""

    name = "openai-images"
    capabilities = frozenset({IMAGES})

    def __init__(self, chat: OpenAIEngine):
        self.chat = chat

    def prepare(self, ref: ModelRef, key_env: str | None = None) -> None:
        self.chat.client(ref, key_env)

    def generate(self, request: ImageRequest, spec: ModelRef, cancel: threading.Event, on_step=None,
                 collected: list | None = None) -> list:
        import openai
        from PIL import Image

        size = f"{request.width}x{request.height}"
        family = next((f for f in SIZES if spec.source.startswith(f)), None)
        if family and size not in SIZES[family]:
            raise AigcError(f"{spec.source} does not make {size} images.",
                            f"Use --size {' or '.join(sorted(SIZES[family] - {'auto'}))}.")
        params = dict(model=spec.source, prompt=request.prompt, n=request.n, size=size)
        if not spec.source.startswith("gpt-image"):
            params["response_format"] = "b64_json"
        client = self.chat.client(spec, request.key_env)
        started = time.monotonic()
        try:
            result = client.images.generate(**params)
        except openai.BadRequestError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            code = body.get("code") or (body.get("error") or {}).get("code")
            if code in ("content_policy_violation", "moderation_blocked"):
                raise AigcError("The API refused this prompt under its content policy.",
                                "Rephrase the prompt.") from None
            raise self.chat.translate(exc, spec, started) from None
        except Exception as exc:
            raise self.chat.translate(exc, spec, started) from None
        images = collected if collected is not None else []
        for item in result.data:
            image = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
            image.load()
            images.append(image)
        return images
