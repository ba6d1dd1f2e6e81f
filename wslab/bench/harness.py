"""What every benchmark's orchestrating process needs: child processes that speak JSON lines,
CPU clocks, a progress line, and the table of results.

The orchestrator and its children (servers, load clients: ``python -m wslab.bench ...``)
talk over pipes, one JSON object per line; the children's commands are internal, not an
interface.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..cli.argtypes import comma_list, positive_int
from ..core.protocol import MAX_TEXT_LENGTH
from ..services.process import DIE_WITH_PARENT

__all__ = [
    "DISTURBED",
    "Child",
    "Clocks",
    "Progress",
    "add_benchmark",
    "busy_cpu_s",
    "cell",
    "cpus",
    "disturbed",
    "disturbed_note",
    "emit",
    "follow",
    "format_table",
    "median",
    "message_options",
    "process_cpu_s",
    "process_rss_kib",
    "raise_open_files_limit",
    "ratio_line",
    "read_command",
    "record_result",
    "results_table",
    "spawn",
    "spawn_command",
]

#: A run counts as disturbed when other programs used more than this share of one CPU during it.
DISTURBED = 0.10


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# The children's side of the pipes


def emit(**record: Any) -> None:
    """One JSON line to the orchestrating process."""
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def read_command() -> str:
    """The next line on stdin, stripped; "" at end of file (a thread: stdin may not be a pipe)."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


# The orchestrator's side


def _preexec(cpu: int | None) -> Callable[[], None] | None:
    """Before exec, in the child: end with this process (Linux), and run on ``cpu`` only."""
    if cpu is None:
        return DIE_WITH_PARENT

    def pin() -> None:  # pragma: no cover - runs in the child
        if DIE_WITH_PARENT is not None:
            DIE_WITH_PARENT()
        os.sched_setaffinity(0, {cpu})  # before exec: every thread the program starts inherits it

    return pin


async def spawn_command(
    *argv: str, cpu: int | None = None, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``argv``, piped, on CPU ``cpu`` alone if given, with ``env`` added to this
    process's environment; it ends with this process (Linux)."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_preexec(cpu),
        env={**os.environ, **env} if env else None,
    )


async def spawn(*args: str, cpu: int | None = None) -> asyncio.subprocess.Process:
    """``python -m wslab.bench ARGS``, as :func:`spawn_command` starts it."""
    return await spawn_command(sys.executable, "-m", "wslab.bench", *args, cpu=cpu)


def cpus() -> tuple[int | None, int | None]:
    """``(server CPU, load CPU)``: two CPUs this process may run on, or ``(None, None)``.

    Pinned apart, the load never takes CPU time from the server, as a client on another
    machine would not, and neither waits for the other to be scheduled.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    mine = sorted(os.sched_getaffinity(0))
    return (mine[0], mine[1]) if len(mine) >= 2 else (None, None)


class Child:
    """A child process that speaks JSON lines on stdout and keeps its stderr for errors."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.stderr = bytearray()
        self._drain = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.stderr += chunk
            del self.stderr[:-65536]  # the end is what explains a failure

    async def read_line(self, timeout: float) -> str:
        """Its next line on stdout; raises RuntimeError, with its stderr's end, if it exited."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            await self.process.wait()
            await self._drain
            raise RuntimeError(
                f"the {self.name} process exited ({self.process.returncode}):\n"
                + self.stderr.decode(errors="replace").strip()[-2000:]
            )
        return line.decode()

    async def read(self, timeout: float) -> dict[str, Any]:
        """Its next JSON line; raises RuntimeError if it exited or said ``error``."""
        record = json.loads(await self.read_line(timeout))
        if "error" in record:
            raise RuntimeError(f"{self.name}: {record['error']}")
        return record

    def write(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def close(self, timeout: float = 30, *, interrupt: bool = False) -> None:
        """Close its stdin and wait for it to exit; ``interrupt`` sends SIGTERM first."""
        if interrupt and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        with contextlib.suppress(Exception):
            await self._drain


class Progress:
    """A one-line text bar on stderr, redrawn in place; plain lines when stderr is not a terminal."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._label = ""

    def update(self, label: str, done: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last < 0.1:
                return
            self._last = now
            width = 30
            filled = width * done // total if total else width
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {label} {done:,}/{total:,}\x1b[K")
            self.stream.flush()
        elif label != self._label:
            self.stream.write(f"{label} ({total:,})\n")
            self.stream.flush()
        self._label = label

    def finish(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        self.stream.flush()


# CPU clocks (Linux /proc; None elsewhere)


def _schedstat_ns(path: str) -> int:
    """Nanoseconds a thread has run (the first field of its ``schedstat``)."""
    with open(path) as schedstat:
        return int(schedstat.read().split()[0])


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux), or None.

    In nanoseconds, summed over its threads (``/proc/PID/task/*/schedstat``) where the kernel
    keeps them; otherwise in clock ticks (``/proc/PID/stat``), 10 ms each: too coarse to tell
    apart two short runs of a few tenths of a second.
    """
    if pid is None:
        return None
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return sum(_schedstat_ns(f"/proc/{pid}/task/{task}/schedstat") for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_kib(pid: int | None) -> int | None:
    """Resident memory of process ``pid`` in KiB (Linux ``/proc/PID/status``), or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class Clocks:
    """CPU clocks of the processes taking part, read at the start and the end of a measurement."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.start: dict[str, float | None] = {}
        self.busy0: float | None = None
        self.own0 = 0.0

    def mark(self) -> None:
        self.start = {name: process_cpu_s(pid) for name, pid in self.pids.items()}
        self.busy0, self.own0 = busy_cpu_s(), time.process_time()

    def read(self, load_cpu: float) -> dict[str, float | None]:
        """``<name>_cpu_s`` for each process, and ``other_cpu_s``: what the rest of the machine used."""
        busy1, own1 = busy_cpu_s(), time.process_time()
        used: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            before, after = self.start.get(name), process_cpu_s(pid)
            used[name] = round(after - before, 2) if before is not None and after is not None else None
        # What other programs ran meanwhile: on a shared machine, the figures mean little if much.
        other = None
        if self.busy0 is not None and busy1 is not None:
            ours = (own1 - self.own0) + load_cpu + sum(v for v in used.values() if v is not None)
            other = round(max(0.0, busy1 - self.busy0 - ours), 2)
        return {**{f"{name}_cpu_s": value for name, value in used.items()}, "other_cpu_s": other}


async def follow(
    load: Child, label: str, progress: Progress, clocks: Clocks, *, wait: float, mark_on: str
) -> dict[str, Any]:
    """Drive a load process through its phases; its result, with the CPU clocks read.

    The load process says ``connect`` and ``deliver`` (progress), ``ready`` (answered with
    ``go``), ``measure`` if it warms up after ``go``, then its ``result``. The clocks start
    at phase ``mark_on``.
    """
    while True:
        record = await load.read(wait)
        phase = record.get("phase")
        if phase == mark_on:
            clocks.mark()
        if phase in ("connect", "deliver"):
            progress.update(f"{label}: {phase}ing", record["done"], record["total"])
        elif phase == "ready":
            load.write("go")
        elif "result" in record:
            result = record["result"]
            progress.update(f"{label}: delivering", result["deliveries"], result["expected"], force=True)
            return {**result, **clocks.read(result["load_cpu_s"])}


def disturbed(record: dict[str, Any]) -> bool:
    """Did other programs use more than :data:`DISTURBED` of a CPU during this run?"""
    other = record.get("other_cpu_s")
    # /proc/stat counts in ticks (10 ms): below 50 ms, nothing can be told apart from rounding.
    return other is not None and other > max(0.05, DISTURBED * record["duration_s"])


def disturbed_note(records: Sequence[dict[str, Any]]) -> list[str]:
    """The lines that warn about disturbed runs, if any."""
    count = sum(1 for r in records if disturbed(r))
    if not count:
        return []
    return [
        "",
        f"! other programs used more than {DISTURBED:.0%} of a CPU during {count} run(s): "
        "their figures say more about the machine than about the servers.",
    ]


# Results


def record_result(
    records: list[dict[str, Any]], record: dict[str, Any], label: str, progress: Progress, *, as_json: bool
) -> None:
    """Keep ``record``, say in one line how the run went, and print it at once with ``--json``."""
    records.append(record)
    progress.finish(
        f"{label}: {record['deliveries_per_s']:,.0f} deliveries/s, "
        f"p50 {record['p50_ms']} ms, p99 {record['p99_ms']} ms, lost {record['lost']:,}"
    )
    if as_json:
        print(json.dumps(record), flush=True)


def ratio_line(
    records: Sequence[dict[str, Any]],
    dialect: str,
    *,
    server: str = "chat",
    reference: str = "baseline",
    key: str = "deliveries_per_s",
    label: str = "deliveries/s",
    fmt: str = "{:,.0f}",
) -> str | None:
    """``server / reference`` medians of ``key`` in one dialect, from undisturbed runs when
    there are both; None without runs of both."""
    mine = [r for r in records if r["dialect"] == dialect and r.get(key) is not None]
    calm = [r for r in mine if not disturbed(r)]
    if not (any(r["server"] == server for r in calm) and any(r["server"] == reference for r in calm)):
        calm = mine
    values = {name: [r[key] for r in calm if r["server"] == name] for name in (server, reference)}
    if not (values[server] and values[reference]):
        return None
    mine_, theirs = median(values[server]), median(values[reference])
    which = "" if len(values[server]) + len(values[reference]) == 2 else "medians, "
    if len(calm) < len(mine):
        which += "undisturbed runs only, "
    ratio = mine_ / theirs if theirs else float("nan")
    numbers = f"{fmt.format(mine_)} / {fmt.format(theirs)}"
    return f"{server} / {reference} {label}, {dialect}: {ratio:.2f} ({which}{numbers})"


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def cell(value: Any, fmt: str) -> str:
    """One table cell: ``value`` formatted, or ``-`` where there is none."""
    return "-" if value is None else fmt.format(value)


def format_table(titles: Sequence[str], rows: Sequence[Sequence[str]], *, left: int) -> str:
    """A plain-text table under a rule: the first ``left`` columns left-aligned, numbers right."""
    table = [list(titles), *map(list, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(titles))]
    lines = [
        "  ".join(
            text.ljust(width) if i < left else text.rjust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def results_table(
    records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]], *, left: int
) -> str:
    """``records`` under ``columns`` (title, key, format); a disturbed run's last cell gets a ``!``."""
    rows = []
    for record in records:
        row = [cell(record.get(key), fmt) for _, key, fmt in columns]
        if disturbed(record):
            row[-1] += " !"
        rows.append(row)
    return format_table([title for title, _, _ in columns], rows, left=left)


# Options every benchmark shares


def _text_size(value: str) -> int:
    number = int(value)
    if not 0 <= number <= MAX_TEXT_LENGTH:
        raise argparse.ArgumentTypeError(f"the chat protocol allows 0 to {MAX_TEXT_LENGTH} characters")
    return number


def message_options(parser: argparse.ArgumentParser) -> None:
    """The options that shape each message, shared by every benchmark."""
    parser.add_argument(
        "--size",
        type=_text_size,
        default=64,
        help="characters of text per message, at least its ~20-character header (default: 64)",
    )
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="permessage-deflate, as browsers and websockets negotiate by default, or none",
    )
    parser.add_argument(
        "--text",
        choices=("words", "repeat"),
        default="words",
        help="what fills each message after its header: random common words, which compress like chat "
        "text (default), or 'xxxx...', which compresses to almost nothing",
    )


def add_benchmark(
    kinds: Any,
    name: str,
    *,
    doc: str,
    help: str,
    options: Callable[[argparse.ArgumentParser], None],
    picks: tuple[str, Sequence[str], str],
    each: str,
    run: Callable[[argparse.Namespace], Any],
) -> argparse.ArgumentParser:
    """Add one benchmark to ``python -m wslab bench``: its load ``options``, a comma-separated
    pick of what to measure (``picks``: flag, choices, help; all by default), ``--runs``,
    and ``--json`` (one object per line per ``each``)."""
    parser = kinds.add_parser(name, help=help, description=doc.split("\n")[0])
    options(parser)
    flag, choices, pick_help = picks
    parser.add_argument(flag, type=comma_list(choices), default=",".join(choices), help=pick_help)
    parser.add_argument("--runs", type=positive_int, default=1, help="runs of each, alternating (default: 1)")
    parser.add_argument("--json", action="store_true", help=f"one JSON object per line per {each}")
    parser.set_defaults(run=run)
    return parser
