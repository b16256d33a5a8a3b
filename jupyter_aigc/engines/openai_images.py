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
        for item in result.data or []:
            if cancel.is_set():
                break
            try:
                image = Image.open(io.BytesIO(self._image_bytes(item, spec)))
                image.load()
            except (OSError, ValueError) as exc:
                raise AigcError(f"The server at {self.chat.url_for(spec)} sent an image that cannot be read "
                                f"({type(exc).__name__}).", "Check the server, or try another model.") from None
            images.append(image)
        return images

    def _image_bytes(self, item, spec: ModelRef) -> bytes:
        """The image of one answer item: ``b64_json``, or the ``url`` some servers send instead."""
        if getattr(item, "b64_json", None):
            return base64.b64decode(item.b64_json, validate=True)
        url = getattr(item, "url", None) or ""
        if not url.startswith(("http://", "https://")):
            raise AigcError(f"The server at {self.chat.url_for(spec)} sent an image with neither b64_json nor a "
                            "web URL.", "Check that it implements the OpenAI Images API.")
        import httpx

        try:
            answer = httpx.get(url, timeout=self.chat.timeout, follow_redirects=True)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise AigcError(f"The image URL the server sent could not be fetched ({type(exc).__name__}).",
                            "Run the cell again; such URLs expire after a while.") from None
        return answer.content
