"""The %aigc line magic's subcommands: cache, evict, reset, config, alias, models, key, history, help; and, for a
class server, connect, class and serve (classroom.py)."""

from __future__ import annotations

import argparse
import getpass
import shlex
import time

from ..core.errors import AigcError
from ..core.keys import redact, set_key
from ..core.models import ModelRef
from ..options import spec
from ..views.outside import say
from ..views.table import show_table
from . import classroom

COMMANDS_HELP = """\
  %aigc cache                models held in this kernel: engine, device, dtype, memory, hits, load time
  %aigc evict NAME | --all   drop a model (every copy of that name, or all) and free its memory
  %aigc reset                start a new conversation
  %aigc config               current settings (change them with %config AigcConfig.NAME = VALUE)
  %aigc alias NAME TARGET [--base-url URL] | --list | --delete NAME
  %aigc models [--base-url URL]   models a server offers, next to the local cache
  %aigc key openai           set an API key for this kernel (asked without echo, never saved)
  %aigc history [N] [--grep TEXT] [--kernel] | --clear
                             the last N answers, images, evaluations and trainings (default 10), in SQLite
  %aigc connect URL [--token T]   ask a class server (`jupyter-aigc serve`) when %%gpt has no -m
  %aigc class [URL] [--pause | --resume | --revoke STUDENT]
                             the teacher's dashboard of a class server, or its switch
  %aigc serve [OPTIONS] | --stop  start (or stop) a class server from this notebook
  %aigc help                 this list"""


def help_text() -> str:
    """Every magic (from spec.json, with its one-line summary), then the %aigc subcommands."""
    lines = ["jupyter-aigc magics (MAGIC? shows every option):"]
    for name, magic in spec()["magics"].items():
        if name != "aigc":
            prefix = "%%" if magic["kind"].endswith("cell") else "%"
            lines.append(f"  {prefix + name:<27}{magic['summary']}")
    return "\n".join(lines) + "\n" + COMMANDS_HELP


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise AigcError(f"%aigc {self.prog}: {message}.", "Run `%aigc help` for the usage.")


def run_command(session, line: str) -> None:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise AigcError(f"Cannot read `%aigc {line}`: {exc}.", "Close every quote you open.") from None
    name, rest = (words[0], words[1:]) if words else ("help", [])
    handler = COMMANDS.get(name)
    if handler is None:
        raise AigcError(f"Unknown subcommand '%aigc {name}'.", "Run `%aigc help` for the list.")
    handler(session, rest)


def cmd_help(session, rest) -> None:
    print(help_text())


def cmd_cache(session, rest) -> None:
    stats = session.cache.stats()
    if not stats:
        print("The model cache is empty; the first %%gpt cell loads its model.")
        return
    names = {s["key"]: s["name"] for s in stats}
    rows = [[s["name"], s["engine"], s["device"], s["dtype"], f"{s['bytes'] / 2**20:.0f} MB", s["hits"],
             f"{s['load_time']:.2f} s", names.get(s["base"], "")] for s in stats]
    budget = session.cache.budget_bytes / 2**30
    show_table(session.shell, f"Model cache ({session.cache.total_bytes() / 2**20:.0f} MB of {budget:g} GB)",
               ["model", "engine", "device", "dtype", "memory", "hits", "load time", "base"], rows)


def cmd_evict(session, rest) -> None:
    parser = _Parser(prog="evict")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--all", action="store_true")
    args = parser.parse_args(rest)
    if args.all:
        count = len(session.cache)
        session.cache.clear()
        print(f"Evicted {count} model(s).")
    elif not args.name:
        raise AigcError("%aigc evict needs a model name or --all.", "See `%aigc cache` for the names.")
    elif dropped := session.cache.evict(args.name):
        engines = ", ".join(key.split(":", 1)[0] for key in dropped)
        say(f"Evicted {args.name} ({engines}).")
    else:
        names = ", ".join(s["name"] for s in session.cache.stats()) or "none"
        raise AigcError(f"No cached model named '{args.name}'.", f"Cached: {names}.")


def cmd_reset(session, rest) -> None:
    session.chat.reset()
    print("Started a new conversation.")


def cmd_config(session, rest) -> None:
    config = session.config
    rows = [[name, repr(getattr(config, name))] for name in sorted(config.trait_names(config=True))]
    show_table(session.shell, "AigcConfig (set with %config AigcConfig.NAME = VALUE)", ["setting", "value"], rows)


def cmd_alias(session, rest) -> None:
    parser = _Parser(prog="alias")
    parser.add_argument("name", nargs="?")
    parser.add_argument("target", nargs="?")
    parser.add_argument("--base-url")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--delete", metavar="NAME")
    args = parser.parse_args(rest)
    if args.delete:
        if args.delete not in session.aliases:
            raise AigcError(f"No alias '{args.delete}' set in this kernel.", "See `%aigc alias --list`.")
        del session.aliases[args.delete]
        say(f"Deleted alias {args.delete}.")
    elif args.name and args.target:
        target = {"model": args.target, "base_url": args.base_url} if args.base_url else args.target
        session.aliases[args.name] = target
        say(f"{args.name} → {args.target}" + (f" at {args.base_url}" if args.base_url else ""))
    elif args.list or not args.name:
        rows = []
        for name, target in session.all_aliases().items():
            model, url = (target["model"], target.get("base_url", "")) if isinstance(target, dict) else (target, "")
            rows.append([name, model, url or "", "config" if name in session.config.aliases else "kernel"])
        show_table(session.shell, "Aliases", ["alias", "model", "base URL", "from"], rows)
    else:
        raise AigcError("%aigc alias needs NAME and TARGET.", "Example: %aigc alias fast openai:gpt-4o-mini")


def cmd_models(session, rest) -> None:
    parser = _Parser(prog="models")
    parser.add_argument("--base-url")
    parser.add_argument("--key-env")
    args = parser.parse_args(rest)
    rows = [[s["name"], "local (cached)", s["device"]] for s in session.cache.stats()]
    server = ModelRef("openai", "", "server", args.base_url)
    openai = session.engines["openai"]
    try:
        names = openai.list_models(server, args.key_env)
        rows += [[name, "server", openai.url_for(server)] for name in names]
    except AigcError as error:
        rows.append([f"({error.message})", "server", openai.url_for(server)])
    show_table(session.shell, "Models", ["model", "where", "device / URL"], rows)


def cmd_key(session, rest) -> None:
    if len(rest) != 1:
        raise AigcError("%aigc key needs a provider.", "Example: %aigc key openai")
    try:
        key = getpass.getpass(f"API key for {rest[0]} (not shown, kept in this kernel only): ")
    except (EOFError, OSError, RuntimeError, NotImplementedError) as exc:  # no stdin (nbclient, a script)
        raise AigcError(f"This frontend cannot ask for the key ({type(exc).__name__}).",
                        "Set OPENAI_API_KEY before starting Jupyter, or use --key-env VAR.") from None
    if not key.strip():
        raise AigcError("No key entered.", "Run `%aigc key openai` again and paste the key.")
    set_key(rest[0], key)
    say(f"Key for {rest[0]} set for this kernel.")


def cmd_history(session, rest) -> None:
    parser = _Parser(prog="history", add_help=False)
    parser.add_argument("count", nargs="?", type=int, default=10)
    parser.add_argument("--grep", default="")
    parser.add_argument("--kernel", action="store_true")
    parser.add_argument("--clear", action="store_true")
    args = parser.parse_args(rest)
    store = session.history
    if args.clear:
        say(f"Deleted {store.clear()} history entries from {store.path}.")
        return
    entries = store.recent(args.count, args.grep, this_kernel=args.kernel)
    today = time.strftime("%Y-%m-%d")
    rows = []
    for entry in entries:
        usage = entry.get("usage") if isinstance(entry.get("usage"), dict) else {}
        prompt = str(entry.get("prompt", "")).replace("\n", " ")
        try:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(entry.get("time", 0))))
        except (TypeError, ValueError, OverflowError, OSError):
            stamp = "?"
        made = (f"{len(entry.get('seeds') or [])} image(s)" if entry.get("kind") == "image"
                else usage.get("completion_tokens", ""))
        rows.append([stamp.removeprefix(today + " "), entry.get("model", ""),
                     entry.get("engine") or entry.get("backend", ""),
                     redact(prompt)[:60] + ("…" if len(prompt) > 60 else ""), made, entry.get("finish_reason", "")])
    where = str(store.path) if store.persistent else "this kernel only (the history file could not be opened)"
    if not rows:
        say(f"No answers in the history{' matching ' + repr(args.grep) if args.grep else ''} ({where}).")
        return
    show_table(session.shell, f"History ({where})", ["time", "model", "engine", "prompt", "made", "end"], rows)


# spec.json names the subcommands (the hostile-corpus test reads them there): each is a cmd_NAME here
COMMANDS = {name: {**globals(), **vars(classroom)}["cmd_" + name] for name in spec()["magics"]["aigc"]["subcommands"]}
