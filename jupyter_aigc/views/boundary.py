"""The kernel's boundary: every output message a frontend receives passes the key and URL-credential mask.

Views mask what they draw, but a secret can also leave the kernel through a path no view owns (a user's
``print`` of an answer, a library's warning, a widget trait set by hand). The kernel's ``Session.send`` is the
one door all of them go through, so the mask sits there, for output messages only (streams, displays, results,
errors, widget state): stdout and stderr, display data, widget state and what the notebook saves.
"""

from __future__ import annotations

import json

from ..core.keys import has_secret, redact, secrets_known

MASKED = {"stream", "display_data", "update_display_data", "execute_result", "error", "comm_open", "comm_msg"}


def masked(value):
    """``value`` (message content: dicts, lists, strings) with every string masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def masked_if_needed(content):
    """One scan of the whole content first: most messages hold no secret and pass as they are."""
    try:
        text = json.dumps(content, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return masked(content)
    return masked(content) if has_secret(text) else content


def install(session) -> None:
    """Wrap ``session.send`` (a jupyter_client Session) once; it stays for the kernel's life, like its keys."""
    if getattr(session.send, "_aigc_mask", False):
        return
    send = session.send

    def send_masked(stream, msg_or_type, content=None, *args, **kwargs):
        kind = msg_or_type.get("msg_type", msg_or_type.get("header", {}).get("msg_type")) \
            if isinstance(msg_or_type, dict) else msg_or_type
        if kind in MASKED and secrets_known():
            if isinstance(msg_or_type, dict):
                msg_or_type = {**msg_or_type, "content": masked_if_needed(msg_or_type.get("content"))}
            elif content is not None:
                content = masked_if_needed(content)
        return send(stream, msg_or_type, content, *args, **kwargs)

    send_masked._aigc_mask = True
    session.send = send_masked
