"""Load the hardening catalogue (``cases.yaml``), run a case as a subprocess, check its outcome."""
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CATALOGUE = HERE / "cases.yaml"
DEFAULT_TIMEOUT_S = 180

# The console scripts and scripts/ entry points; each falls back to ``python -m`` when the console
# script is not installed next to the interpreter (an uninstalled checkout).
_MODULES = {"pose-eval": "pose.cli.evaluate", "pose-demo": "pose.cli.demo", "pose-train": "pose.cli.train",
            "pose-export": "pose.cli.export", "benchmarks": "benchmarks"}
_SCRIPTS = ("scripts/test.py", "scripts/train.py", "demo/demo.py")
# Temp names the library uses for outputs in progress (pose.fileio.atomic_write: .NAME.XXXX.tmp,
# pose.video.pipeline video: .NAME_pose.tmp.mp4).
_TEMP = re.compile(r"(\.tmp$|\.tmp\.)")


@dataclass
class Case:
    id: str
    cmd: str
    args: str
    exit: int
    stderr: List[str] = field(default_factory=list)
    stdout: List[str] = field(default_factory=list)
    creates: List[str] = field(default_factory=list)
    absent: List[str] = field(default_factory=list)
    xfail: Optional[str] = None
    timeout: int = DEFAULT_TIMEOUT_S


@dataclass
class Outcome:
    case: Case
    argv: List[str]
    out_dir: Path
    returncode: Optional[int]
    stdout: str
    stderr: str
    seconds: float


def _as_list(value) -> List[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def load_catalogue(path: Path = CATALOGUE):
    """(templates, cases) from the YAML catalogue; checks ids are unique and fields known."""
    data = yaml.safe_load(path.read_text())
    known = set(Case.__dataclass_fields__)
    cases, seen = [], set()
    for row in data["cases"]:
        unknown = set(row) - known
        if unknown:
            raise ValueError(f"{path}: case {row.get('id')}: unknown fields {sorted(unknown)}")
        if row["id"] in seen:
            raise ValueError(f"{path}: duplicate case id {row['id']}")
        seen.add(row["id"])
        cases.append(Case(id=row["id"], cmd=row["cmd"], args=row["args"], exit=int(row["exit"]),
                          stderr=_as_list(row.get("stderr")), stdout=_as_list(row.get("stdout")),
                          creates=_as_list(row.get("creates")), absent=_as_list(row.get("absent")),
                          xfail=row.get("xfail"), timeout=int(row.get("timeout", DEFAULT_TIMEOUT_S))))
    return dict(data.get("templates") or {}), cases


def command_prefix(cmd: str) -> List[str]:
    """argv prefix running ``cmd`` (console script next to ``sys.executable``, else ``python -m``)."""
    if cmd in _MODULES:
        script = Path(sys.executable).parent / cmd
        return [str(script)] if script.exists() else [sys.executable, "-m", _MODULES[cmd]]
    if cmd in _SCRIPTS:
        return [sys.executable, str(REPO / cmd)]
    raise ValueError(f"unknown command {cmd!r}; expected one of {sorted(_MODULES) + list(_SCRIPTS)}")


def expand(text: str, values: Dict[str, str], templates: Dict[str, str]) -> str:
    """Substitute templates (which may hold placeholders) then placeholders."""
    merged = dict(values)
    merged.update({k: v.format(**values) for k, v in templates.items()})
    return text.format(**merged)


def child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", TQDM_DISABLE="1",
               POSE_OFFLINE="1", PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    env.pop("PYTHONWARNINGS", None)
    return env


def run_case(case: Case, values: Dict[str, str], templates: Dict[str, str], out_root: Path) -> Outcome:
    out_dir = out_root / case.id
    values = dict(values, out=str(out_dir))
    argv = command_prefix(case.cmd) + shlex.split(expand(case.args, values, templates))
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=REPO, env=child_env(), capture_output=True, text=True,
                              timeout=case.timeout, stdin=subprocess.DEVNULL)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        code = None
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    return Outcome(case, argv, out_dir, code, out, err, time.monotonic() - start)


def temp_leftovers(folder: Path) -> List[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if _TEMP.search(p.name))


def error_lines(stderr: str, prog: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{prog}:") and "error" in line]


def problems(outcome: Outcome, values: Dict[str, str]) -> List[str]:
    """Everything wrong with an outcome (empty list: the case passed)."""
    case, found = outcome.case, []
    values = dict(values, out=str(outcome.out_dir))  # ``absent: ["{out}"]``: nothing written at all
    if outcome.returncode is None:
        return [f"timed out after {case.timeout} s"]
    if outcome.returncode != case.exit:
        found.append(f"exit code {outcome.returncode}, expected {case.exit}")
    if "Traceback" in outcome.stderr:
        found.append("stderr holds a Python traceback")
    for frag in case.stderr:
        if frag not in outcome.stderr:
            found.append(f"stderr lacks {frag!r}")
    for frag in case.stdout:
        if frag not in outcome.stdout:
            found.append(f"stdout lacks {frag!r}")
    if case.exit == 1:
        prog = Path(outcome.argv[0]).name if not outcome.argv[0].endswith("python") else ""
        lines = [line for line in outcome.stderr.splitlines() if ": error: " in line]
        if len(lines) != 1:
            found.append(f"expected exactly one 'PROG: error: ...' line in stderr, got {len(lines)}")
        elif prog.startswith("pose-") and not lines[0].startswith(f"{prog}: error: "):
            found.append(f"error line does not start with '{prog}: error: '")
    leftovers = temp_leftovers(outcome.out_dir)
    if leftovers:
        found.append(f"temp files left in the output folder: {leftovers}")
    for pattern in case.creates:
        if not list(outcome.out_dir.glob(pattern)):
            found.append(f"expected output {pattern!r} is missing")
    for path in case.absent:
        if Path(path.format(**values)).exists():
            found.append(f"{path.format(**values)} exists but must not")
    return found


def describe(outcome: Outcome, issues: List[str]) -> str:
    tail = "\n".join(outcome.stderr.strip().splitlines()[-15:])
    return (f"case {outcome.case.id}: " + "; ".join(issues) + f"\n  command: {shlex.join(outcome.argv)}"
            f"\n  exit: {outcome.returncode} ({outcome.seconds:.1f} s)\n  stderr tail:\n{tail}"
            f"\n  stdout tail:\n" + "\n".join(outcome.stdout.strip().splitlines()[-5:]))
