"""A class server (`jupyter-aigc serve`) started as a teacher starts it: a process of its own on a free port, its
tokens read from what it prints; stopped with Ctrl-C (SIGINT)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port


class ClassServer:
    def __init__(self, tmp: Path, *options: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_dir = tmp / f"class-{self.port}"
        self.log = tmp / f"serve-{self.port}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyter_aigc", "serve", "--port", str(self.port),
                                      "--state-dir", str(self.state_dir), *options],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.time() + 180
        while "Ready." not in self.log.read_text():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"jupyter-aigc serve did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        text = self.log.read_text()
        self.tokens = dict(re.findall(r"(student\d+): %aigc connect \S+ --token (\S+)", text))
        found = re.search(r"teacher's token \(for %aigc class\): (\S+)", text)
        self.teacher = found.group(1) if found else None

    def get(self, path: str, token: str | None):
        return httpx.get(f"{self.url}/{path}", headers={"Authorization": f"Bearer {token}"} if token else {},
                         timeout=30)

    def post(self, path: str, token: str | None, body: dict):
        return httpx.post(f"{self.url}/{path}", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {token}"} if token else {})

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)
