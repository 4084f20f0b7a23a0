"""Start JupyterLab on the course and say how to open it; or check that the course opens and a chapter runs.

    python scripts/lab.py                     # what `bash scripts/course.sh` runs: JupyterLab until Ctrl-C
    python scripts/lab.py --check CHAPTER     # what `bash scripts/course.sh check` runs (CI): start, check, stop

JupyterLab prints its address among many log lines, and on a machine without a display (a server, a container,
a session over ssh) it cannot open a browser. So this script picks a free port and a token itself, waits until the
server answers, and then prints the one address to open, with the ssh command to reach it from another computer.
The check mode starts the same server without a browser, fetches the JupyterLab page and the chapter through it,
asks the server for a kernel and checks that it runs this environment's Python, then runs the chapter top to
bottom in a fresh kernel of this environment (with nbclient, as the book build does) and stops the server.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
FIRST_CHAPTER = "00_foundations.ipynb"
HOST = "127.0.0.1"  # JupyterLab listens here only: reach it from elsewhere through ssh -L


@dataclass
class Lab:
    """A running JupyterLab: its process, address, token and log file."""

    process: subprocess.Popen
    base: str
    token: str
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def has_display() -> bool:
    """False on Linux without an X or Wayland display, and in ssh sessions (a browser would open elsewhere)."""
    if os.environ.get("SSH_CONNECTION"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def start_lab(root: Path = NOTEBOOKS, open_browser: bool = False, log: Path = REPO / ".jupyterlab.log",
              python: str = sys.executable, first: str = FIRST_CHAPTER) -> Lab:
    """JupyterLab of the environment of `python` on `root`, on a free localhost port with a fresh token."""
    port, token = free_port(), secrets.token_hex(24)
    command = [
        python, "-m", "jupyterlab",
        f"--ServerApp.ip={HOST}", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--ServerApp.open_browser={open_browser}", f"--LabApp.default_url=/lab/tree/{first}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root; JupyterLab refuses without it
    # a session of its own: Ctrl-C reaches this script, which stops the server, instead of the server's own
    # "Shutdown this Jupyter server (y/[n])?" prompt
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Lab(process, f"http://{HOST}:{port}", token, log)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


def log_tail(lab: Lab) -> str:
    return lab.log.read_text()[-3000:] if lab.log.exists() else ""


def wait_until_ready(lab: Lab, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise SystemExit(f"JupyterLab exited with code {lab.process.returncode} before it answered:\n{log_tail(lab)}")
        try:
            if get(f"{lab.base}/api/status?token={lab.token}")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            pass
        time.sleep(0.5)
    stop(lab)
    raise SystemExit(f"JupyterLab did not answer at {lab.base} within {timeout:.0f} s; its log: {lab.log}")


def stop(lab: Lab) -> None:
    """Stop the server, then anything left in its process group (its kernels), whatever happens meanwhile."""
    if lab.process.poll() is None:
        lab.process.terminate()
        try:
            lab.process.wait(timeout=20)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            pass
    try:
        os.killpg(lab.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        pass
    lab.process.wait()


def banner(lab: Lab, display: bool) -> str:
    url = f"{lab.base}/lab/tree/{FIRST_CHAPTER}?token={lab.token}"
    port = lab.base.rsplit(":", 1)[1]
    lines = ["", "JupyterLab is running. Open the course at", f"    {url}", ""]
    if display:
        lines.append("Your browser should open it by itself; if it does not, copy the address above into it.")
    else:
        lines += [
            "No display was found here, so no browser was opened. If this machine has a browser after all, open the",
            "address above in it; from your own computer, forward the port first and then open the same address there:",
            f"    ssh -N -L {port}:{HOST}:{port} {getpass.getuser()}@{socket.gethostname()}",
        ]
    lines += [
        "Chapters are in the file browser on the left. Stop JupyterLab with Ctrl-C.",
        f"(The server's log, if a kernel dies: {lab.log})",
        "",
    ]
    return "\n".join(lines)


def kernel_python(lab: Lab) -> str:
    """The Python of the kernel named python3 that this JupyterLab starts for a notebook (from its kernel spec)."""
    status, body = get(f"{lab.base}/api/kernelspecs?token={lab.token}")
    if status != 200:
        raise SystemExit(f"GET /api/kernelspecs answered {status}")
    spec = json.loads(body)["kernelspecs"]["python3"]["spec"]
    return spec["argv"][0]


def check(lab: Lab, chapter: str) -> None:
    """The page and the chapter are served with the token, the kernel is this environment's Python, and the
    chapter runs top to bottom in a fresh kernel."""
    import nbformat
    from nbclient import NotebookClient

    status, page = get(f"{lab.base}/lab?token={lab.token}")
    if status != 200 or "JupyterLab" not in page:
        raise SystemExit(f"GET /lab answered {status}, without the JupyterLab page")
    status, _ = get(f"{lab.base}/api/contents/{chapter}?token={lab.token}")
    if status != 200:
        raise SystemExit(f"JupyterLab does not serve notebooks/{chapter} (HTTP {status})")
    if get(f"{lab.base}/api/status")[0] != 403:
        raise SystemExit("JupyterLab answered without its token")
    python = kernel_python(lab)
    if python not in ("python", "python3") and Path(python).resolve() != Path(sys.executable).resolve():
        raise SystemExit(f"JupyterLab's python3 kernel runs {python}, not this environment's {sys.executable}: "
                         "a kernel spec of your own (jupyter kernelspec list) shadows it")
    print(f"JupyterLab answers at {lab.base} (token required); running notebooks/{chapter} in a fresh kernel", flush=True)
    start = time.monotonic()
    notebook = nbformat.read(NOTEBOOKS / chapter, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(
        f"import sys\nassert sys.executable == {sys.executable!r}, f'the kernel runs {{sys.executable}}'"))
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    print(f"notebooks/{chapter} ran top to bottom in {time.monotonic() - start:.1f} s", flush=True)


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)  # closing the terminal or `kill`: unwind, so `finally` stops the server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", metavar="CHAPTER", help="start, check and stop; CHAPTER is a notebook in notebooks/")
    args = parser.parse_args()
    if args.check and not (NOTEBOOKS / args.check).is_file():
        chapters = ", ".join(sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
        parser.error(f"--check: no notebooks/{args.check}; the chapters are {chapters}")
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, _exit_on_signal)

    display = has_display() and not args.check
    lab = start_lab(open_browser=display)
    try:
        wait_until_ready(lab)
        if args.check:
            check(lab, args.check)
            return
        print(banner(lab, display), flush=True)
        code = lab.process.wait()
        raise SystemExit(f"JupyterLab stopped by itself (exit code {code}); the end of its log:\n{log_tail(lab)}")
    except KeyboardInterrupt:
        print("\nstopping JupyterLab", flush=True)
    finally:
        stop(lab)


if __name__ == "__main__":
    main()
