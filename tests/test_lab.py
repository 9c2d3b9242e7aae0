"""JupyterLab is a way in: the venv's server serves /lab, lists the kernels, and its kernels import satnb.

The test starts ``python -m jupyterlab`` of the running interpreter (the venv's, under scripts/test.sh) on a free
localhost port with a known token and --no-browser, in notebooks/, with Jupyter's config, data and runtime
folders moved to a temporary folder (so only what the venv provides counts). It waits for /api/status, checks
that /lab answers 200 and /api/kernelspecs lists ``python3`` (the notebooks' kernelspec, which the book build and
Colab need) and ``satnb`` (when scripts/setup.sh registered it), then starts each kernel through the REST API
(POST /api/kernels) and executes code through the kernel's websocket channel (/api/kernels/<id>/channels, with
websocket-client, a dependency of jupyter_server): it imports satnb and reports the kernel's sys.prefix, which
must be this venv's. The server is shut down in a finally block. Skipped when JupyterLab is not installed.
"""

import hashlib
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
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SATNB_KERNEL = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "satnb" / "kernel.json"
CODE = "import sys, satnb\nprint(satnb.__version__)\nprint(sys.prefix)"


def _need(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed in {sys.prefix} (it comes with the book extra: pip install -e .[book])")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, tmp: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        for name in ("CONFIG", "DATA", "RUNTIME"):
            env[f"JUPYTER_{name}_DIR"] = str(tmp / name.lower())
        cmd = [sys.executable, "-m", "jupyterlab", str(NOTEBOOKS), "--no-browser", "--ip=127.0.0.1",
               f"--port={self.port}", "--port-retries=0", f"--IdentityProvider.token={self.token}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = tmp / "server.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def request(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if r.headers.get_content_type() == "application/json" else raw)

    def wait(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if self.request("/api/status", timeout=2)[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        pytest.fail(f"jupyter lab did not answer /api/status in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down and exits
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def _execute(server: _Server, kernel_id: str, code: str, timeout: float = 120) -> str:
    """Run code in a kernel through the server's websocket channel; return its stdout (fail on an error)."""
    import websocket

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels",
        header=[f"Authorization: token {server.token}"], timeout=timeout,
    )
    try:
        msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "session": session, "username": "test", "msg_type": "execute_request",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out, reply, idle = [], None, False
        deadline = time.monotonic() + timeout
        while not (reply and idle):
            assert time.monotonic() < deadline, "the kernel did not finish in time"
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                out.append(content["text"])
            elif kind == "error":
                pytest.fail("the kernel raised:\n" + "\n".join(content["traceback"]))
            elif kind == "execute_reply":
                reply = content
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        assert reply["status"] == "ok", reply
        return "".join(out)
    finally:
        ws.close()


def test_jupyterlab_serves_the_notebooks_and_both_kernels_run_satnb(tmp_path):
    _need("jupyterlab")
    _need("websocket")
    import satnb

    server = _Server(tmp_path)
    try:
        server.wait()
        status, page = server.request("/lab")
        assert status == 200 and b"JupyterLab" in page
        specs = server.request("/api/kernelspecs")[1]["kernelspecs"]
        assert "python3" in specs, sorted(specs)
        kernels = ["python3"]
        if SATNB_KERNEL.is_file():  # registered by scripts/setup.sh
            assert specs["satnb"]["spec"]["display_name"] == "Python (satnb)"
            kernels.append("satnb")
        status, tree = server.request("/api/contents")
        assert status == 200 and any(c["name"].endswith(".ipynb") for c in tree["content"])
        for name in kernels:
            status, kernel = server.request("/api/kernels", "POST", {"name": name})
            assert status == 201, kernel
            try:
                version, prefix = _execute(server, kernel["id"], CODE).split()
            finally:
                server.request(f"/api/kernels/{kernel['id']}", "DELETE")
            assert version == satnb.__version__, name
            assert Path(prefix).resolve() == Path(sys.prefix).resolve(), f"{name} runs outside the venv: {prefix}"
    finally:
        server.stop()


def test_lab_sh_runs_the_venv_jupyterlab():
    venv = ROOT / ".venv"
    stamp = venv / ".satnb-installed"
    want = hashlib.sha1((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    if not (venv / "bin" / "jupyter").exists() or not stamp.is_file() or stamp.read_text().strip() != want:
        pytest.skip("no up-to-date .venv with JupyterLab here (bash scripts/setup.sh makes one)")
    run = subprocess.run(["bash", str(ROOT / "scripts" / "lab.sh"), "--version"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(run.stdout.strip().splitlines()[-1].split(".")[0]) >= 4, run.stdout
