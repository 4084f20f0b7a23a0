"""Start JupyterLab on the course and say how to open it; or check that the course opens and a chapter runs.

    python scripts/lab.py                     # what `bash scripts/course.sh` runs: JupyterLab until Ctrl-C
    python scripts/lab.py --check CHAPTER     # what `bash scripts/course.sh check` runs (CI): start, check, stop

JupyterLab prints its address among many log lines, and on a machine without a display (a server, a container,
a session over ssh) it cannot open a browser. So this script picks a free port and a token itself, waits until the
server answers, and then prints the one address to open, with the ssh command to reach it from another computer.
The check mode starts the same server without a browser, fetches the JupyterLab page and the chapter through it,
then runs the chapter top to bottom in a fresh kernel of this environment (the kernel JupyterLab starts for it),
and stops the server.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
FIRST_CHAPTER = "00_foundations.ipynb"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def has_display() -> bool:
    """False on Linux without an X or Wayland display, and in ssh sessions (a browser would open elsewhere)."""
    if os.environ.get("SSH_CONNECTION"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def start_lab(port: int, token: str, open_browser: bool, root: Path = NOTEBOOKS,
              log: Path = REPO / ".jupyterlab.log") -> subprocess.Popen:
    """JupyterLab on `root` at localhost:`port`, its log in `log` (the browser tests start it on their own folder)."""
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--ServerApp.open_browser={open_browser}",
        f"--LabApp.default_url=/lab/tree/{FIRST_CHAPTER}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root; JupyterLab refuses without it
    # a session of its own: Ctrl-C reaches this script, which stops the server, instead of the server's own
    # "Shutdown this Jupyter server (y/[n])?" prompt
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server.log = log
    return server


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


def wait_until_ready(server: subprocess.Popen, base: str, token: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log = server.log.read_text()[-3000:]
            raise SystemExit(f"JupyterLab exited with code {server.returncode} before it answered:\n{log}")
        try:
            if get(f"{base}/api/status?token={token}")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            pass
        time.sleep(0.5)
    stop(server)
    raise SystemExit(f"JupyterLab did not answer at {base} within {timeout:.0f} s; see {server.log}")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def banner(url: str, port: int, display: bool) -> str:
    lines = ["", "JupyterLab is running. Open the course at", f"    {url}", ""]
    if display:
        lines.append("Your browser should open it by itself; if it does not, copy the address above into it.")
    else:
        lines += [
            "This machine has no display, so no browser was opened. Open the address above in a browser on this",
            "machine, or, from your own computer, forward the port first and then open the same address there:",
            f"    ssh -N -L {port}:localhost:{port} <user>@<this machine>",
        ]
    lines += ["Chapters are in the file browser on the left. Stop JupyterLab with Ctrl-C.", ""]
    return "\n".join(lines)


def check(server: subprocess.Popen, base: str, token: str, chapter: str) -> None:
    """The page and the chapter are served with the token, and the chapter runs top to bottom in a fresh kernel."""
    import nbformat
    from nbclient import NotebookClient

    status, page = get(f"{base}/lab?token={token}")
    if status != 200 or "JupyterLab" not in page:
        raise SystemExit(f"GET /lab answered {status}, without the JupyterLab page")
    status, _ = get(f"{base}/api/contents/{chapter}?token={token}")
    if status != 200:
        raise SystemExit(f"JupyterLab does not serve notebooks/{chapter} (HTTP {status})")
    if get(f"{base}/api/status")[0] != 403:
        raise SystemExit("JupyterLab answered without its token")
    print(f"JupyterLab answers at {base} (token required); running notebooks/{chapter} in a fresh kernel", flush=True)
    start = time.monotonic()
    notebook = nbformat.read(NOTEBOOKS / chapter, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    print(f"notebooks/{chapter} ran top to bottom in {time.monotonic() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", metavar="CHAPTER", help="start, check and stop; CHAPTER is a notebook in notebooks/")
    args = parser.parse_args()
    if args.check and not (NOTEBOOKS / args.check).is_file():
        chapters = ", ".join(sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
        parser.error(f"--check: no notebooks/{args.check}; the chapters are {chapters}")

    port, token = free_port(), secrets.token_hex(24)
    base = f"http://localhost:{port}"
    display = has_display() and not args.check
    server = start_lab(port, token, open_browser=display)
    try:
        wait_until_ready(server, base, token)
        if args.check:
            check(server, base, token, args.check)
            return
        print(banner(f"{base}/lab/tree/{FIRST_CHAPTER}?token={token}", port, display), flush=True)
        server.wait()
    except KeyboardInterrupt:
        print("\nstopping JupyterLab", flush=True)
    finally:
        stop(server)


if __name__ == "__main__":
    main()
