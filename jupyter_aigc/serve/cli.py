"""`jupyter-aigc serve [MODEL] [--students N] [--port P] [--hub]`: size llama.cpp's server for this machine, start
it on a private port, put the front on the public one, print what was chosen, and run until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import secrets
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import AigcError

CONTEXT_PER_SLOT = 2048
KV_BYTES_PER_TOKEN_GUESS = 24 * 1024  # printed estimate only (SmolLM2-135M: 30 layers × 192 × K,V × f16)


@dataclass
class Sizing:
    slots: int
    context: int  # tokens of context per slot
    threads: int
    cores: int
    busy: int

    def describe(self) -> str:
        return (f"{self.slots} slots (one per student, continuous batching) × {self.context} tokens of context "
                f"each, {self.threads} threads on {self.cores} cores ({self.busy} busy with other work now; idle "
                "threads sleep instead of polling)")


def size(students: int, slots: int | None, context: int | None, threads: int | None) -> Sizing:
    """One slot per student (at most 64), every core this process may use, and no busy polling. The server is
    its machine's main work for hours: a thread count chosen from one moment's load would fix a passing blip
    for the whole class (measured: 1 thread instead of 2 cost a third of the tokens/s), while with polling off
    its idle threads sleep and leave the cores to the kernels and the Hub. --threads sets it."""
    from ..core.machine import busy_threads, machine_cores

    cores = machine_cores()
    return Sizing(slots=slots or max(1, min(students, 64)), context=context or CONTEXT_PER_SLOT,
                  threads=threads or cores, cores=cores, busy=busy_threads())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jupyter-aigc serve", description="One llama.cpp server for a whole class.")
    p.add_argument("model", nargs="?", default=None, help="a .gguf file or a model name (default: the embedded model)")
    p.add_argument("--students", type=int, default=30, help="how many students (slots and, standalone, tokens)")
    p.add_argument("--port", type=int, default=8765, help="the port students connect to (default 8765)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0 for a class network)")
    p.add_argument("--hub", action="store_true", help="run as a JupyterHub service: students' Hub tokens are accepted")
    p.add_argument("--teacher", action="append", default=[], help="on a Hub: a user who is a teacher (Hub admins are)")
    p.add_argument("--tokens", type=Path, help="standalone: write the students' tokens to this CSV file")
    p.add_argument("--per-student", type=int, default=2, help="requests one student may have running at once")
    p.add_argument("--tokens-per-hour", type=int, default=0, help="tokens one student may use per hour (0: no limit)")
    p.add_argument("--record-prompts", action="store_true", help="keep students' prompts and answers (off: privacy)")
    p.add_argument("--slots", type=int, help="llama.cpp's parallel slots (default: one per student, at most 64)")
    p.add_argument("--context", type=int, help=f"tokens of context per slot (default {CONTEXT_PER_SLOT})")
    p.add_argument("--threads", type=int, help="llama.cpp's threads (default: the cores other work leaves free)")
    p.add_argument("--state-dir", type=Path, help="where tokens and usage are kept (default: the cache folder)")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port(host: str, port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise AigcError(f"Port {port} on {host} is in use ({exc.strerror}).",
                            "Stop what uses it, or pick another with --port.") from None


def model_file(name: str | None) -> tuple[str, Path]:
    """(the name students see, the GGUF file llama.cpp loads): the default model's F16 copy, as the kernels use."""
    from ..core.convert import f16_gguf
    from ..core.models import resolve

    ref = resolve(name or "SmolLM2-135M-Instruct", {})
    if not ref.gguf:
        raise AigcError(f"{ref.name} is not a GGUF model: the class server runs llama.cpp.",
                        "Give a .gguf file, or leave MODEL out for the embedded default model.")
    return ref.name, f16_gguf(Path(ref.gguf), print) if ref.default else Path(ref.gguf)


def start_llama(path: Path, alias: str, sizing: Sizing, key: str):
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {alias}
    params.n_parallel = sizing.slots
    params.n_ctx = sizing.slots * sizing.context
    params.kv_unified = False  # a cache per slot: one shared cache made 30 students' answers 25% slower
    params.cont_batching = True
    params.warmup = False
    params.verbosity = -1
    params.endpoint_metrics = True
    params.endpoint_slots = True
    params.hostnames = ["127.0.0.1"]
    params.port = free_port()
    params.api_keys = [key]
    for cpu in (params.cpuparams, params.cpuparams_batch):
        cpu.n_threads = sizing.threads
        cpu.poll = 0
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        raise AigcError(f"llama.cpp could not load {path} ({exc}).", "Check the file, or pick another model.") from None
    return server, f"http://127.0.0.1:{params.port}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(serve(args))
    except AigcError as error:
        print(f"jupyter-aigc serve: {error.message} {error.fix}".strip(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


async def serve(args) -> int:
    from ..core.config import cache_dir
    from .auth import HubServiceAuth, StandaloneAuth
    from .fair import FairQueue
    from .front import ClassState, Front
    from .ledger import Ledger

    host, port, prefix = args.host, args.port, "/"
    if args.hub:
        from urllib.parse import urlparse

        if not os.environ.get("JUPYTERHUB_API_TOKEN"):
            raise AigcError("--hub needs JUPYTERHUB_API_TOKEN: it runs as a service the Hub starts.",
                            "Add it to JupyterHub.services in jupyterhub_config.py (see the README), or drop --hub.")
        bound = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL") or f"http://{host}:{port}")
        host, port = bound.hostname or host, bound.port or port
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    check_port(host, port)
    name, path = model_file(args.model)
    sizing = size(args.students, args.slots, args.context, args.threads)
    folder = args.state_dir or cache_dir() / "class"
    ledger = Ledger(folder, record_prompts=args.record_prompts)
    if args.hub:
        try:
            auth = HubServiceAuth(args.teacher)
        except ImportError:
            raise AigcError("--hub needs the jupyterhub package.", "pip install 'jupyter-aigc[class]'") from None
    else:
        teacher_file = folder / "teacher.token"
        if not teacher_file.is_file():
            teacher_file.write_text("aigc-teacher-" + secrets.token_urlsafe(18))
            os.chmod(teacher_file, 0o600)
        auth = StandaloneAuth(ledger, teacher_file.read_text().strip())
    key = secrets.token_urlsafe(24)
    llama, upstream = start_llama(path, name, sizing, key)
    state = ClassState(served=[name], tokens_per_hour=args.tokens_per_hour,
                       sizing={"slots": sizing.slots, "context": sizing.context, "threads": sizing.threads,
                               "cores": sizing.cores, "per_student": args.per_student})
    front = Front(upstream, key, auth, ledger, FairQueue(sizing.slots, args.per_student), state)
    server = front.application(prefix).listen(port, address=host)
    url = f"http://{host}:{port}{prefix.rstrip('/')}"
    print(f"jupyter-aigc serve: {name} for a class at {url}/v1", flush=True)
    print(f"  {sizing.describe()}", flush=True)
    print(f"  fair shares: {args.per_student} requests running per student"
          + (f", {args.tokens_per_hour} tokens per hour" if args.tokens_per_hour else ""), flush=True)
    print(f"  prompts and answers are {'RECORDED (--record-prompts)' if args.record_prompts else 'not stored'}; "
          f"usage counts in {ledger.path}", flush=True)
    if args.hub:
        print("  JupyterHub service: students' Hub tokens are accepted; teachers: Hub admins"
              + (f", {', '.join(args.teacher)}" if args.teacher else ""), flush=True)
    else:
        students = ledger.ensure_students(args.students)
        print(f"  teacher's token (for %aigc class): {auth.teacher_token}", flush=True)
        if args.tokens:
            with open(args.tokens, "w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(["student", "token", "connect"])
                for student, token in students:
                    writer.writerow([student, token, f"%aigc connect {url} --token {token}"])
            os.chmod(args.tokens, 0o600)
            print(f"  {len(students)} students' tokens written to {args.tokens}", flush=True)
        else:
            for student, token in students:
                print(f"  {student}: %aigc connect {url} --token {token}", flush=True)
    print("Ready. Ctrl-C stops the server.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("Stopping: answers in progress are cut off.", flush=True)
    server.stop()
    await front.client.aclose()
    del llama
    return 0
