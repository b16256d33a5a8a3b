"""Who may ask: a student's own JupyterHub token (the server runs as a Hub service; students need no key), or,
standalone, one token per student handed out by the teacher. The teacher has a token of their own (standalone)
or is a Hub admin or a user named with --teacher."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from .ledger import Ledger


@dataclass(frozen=True)
class Who:
    name: str
    teacher: bool = False


class Refused(Exception):
    """A request that may not go on: the HTTP status and a one-line message for the student."""

    def __init__(self, status: int, message: str, kind: str, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.retry_after = status, message, kind, retry_after


NO_TOKEN = Refused(401, "No class token was sent. On a JupyterHub the kernel sends the Hub's own; on a laptop run "
                        "`%aigc connect URL --token T` with the token your teacher gave you.", "invalid_api_key")


def bearer(header: str | None) -> str:
    if not header or not header.lower().startswith("bearer "):
        return ""
    return header[7:].strip()


class StandaloneAuth:
    """Tokens from the ledger; the teacher's token compared in constant time."""

    mode = "standalone"

    def __init__(self, ledger: Ledger, teacher_token: str):
        self.ledger = ledger
        self.teacher_token = teacher_token

    async def who(self, token: str) -> Who:
        if not token:
            raise NO_TOKEN
        if hmac.compare_digest(token.encode(), self.teacher_token.encode()):
            return Who("teacher", teacher=True)
        name, revoked = self.ledger.student_for(token)
        if name is None:
            raise Refused(401, "This is not a token of this class. Ask your teacher for yours.", "invalid_api_key")
        if revoked:
            raise Refused(401, f"The teacher revoked the token of {name}. Ask your teacher for a new one.",
                          "invalid_api_key")
        return Who(name)


class HubServiceAuth:
    """Runs as a JupyterHub service: a request's bearer token is checked with the Hub (cached a minute), and the
    user it belongs to is the student, if the token carries the Hub's access scope for this service (JupyterHub's
    own access model). Teachers are Hub admins or named with --teacher."""

    mode = "hub"

    def __init__(self, teachers: list[str]):
        from jupyterhub.services.auth import HubAuth

        self.hub = HubAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"],
                           api_url=os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
                           cache_max_age=60)
        self.teachers = set(teachers)

    async def who(self, token: str) -> Who:
        if not token:
            raise NO_TOKEN
        try:
            user = await self.hub.user_for_token(token, sync=False)
        except Exception as exc:  # the Hub cannot be reached: say so, the student can do nothing about it
            raise Refused(503, f"The class server cannot reach the JupyterHub to check your token ({type(exc).__name__}). "
                               "Tell your teacher.", "server_error") from None
        if not user or not user.get("name"):
            raise Refused(401, "The JupyterHub does not know this token. Restart your server from the Hub's "
                               "control panel.", "invalid_api_key")
        if self.hub.access_scopes and not self.hub.check_scopes(self.hub.access_scopes, user):
            raise Refused(403, f"{user['name']}'s Hub token may not use the class server (it lacks "
                               f"{sorted(self.hub.access_scopes)[-1]}). Ask the Hub admin to grant it (README: "
                               "Teaching a class).", "no_access")
        name = user["name"]
        return Who(name, teacher=name in self.teachers or bool(user.get("admin")))
