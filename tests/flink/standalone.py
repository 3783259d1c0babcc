"""A private Flink standalone cluster (one JobManager, one TaskManager) for the tests.

Built from the Flink distribution inside the PyFlink wheel without modifying it: a
temporary FLINK_HOME holds copies of ``bin/`` and ``conf/`` and links to the jars, plugins
and ``opt/``; logs and pid files stay in that directory. Every port is free and bound to
127.0.0.1, so the cluster neither clashes with another one on the machine nor listens on
the network. The daemons are started with ``bin/start-cluster.sh`` and stopped by the PIDs
that script records, waiting until each has exited.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["StandaloneCluster", "free_port", "pyflink_home"]


def pyflink_home() -> Path:
    """The Flink distribution shipped inside the installed PyFlink wheel."""
    import pyflink

    return Path(pyflink.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StandaloneCluster:
    """A standalone cluster under ``home`` (a fresh directory).

    :param python_jar_in_lib: put ``opt/flink-python*.jar`` into the cluster's ``lib/``;
        without it (a stock distribution) the cluster runs Python jobs only if each job
        ships the jar, as the Flink runner does then
    """

    home: Path
    python_jar_in_lib: bool = False
    slots: int = 2
    rest_port: int = field(default_factory=free_port)
    pids: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.rest_port}"

    def _prepare(self) -> None:
        dist = pyflink_home()
        self.home.mkdir(parents=True, exist_ok=False)
        shutil.copytree(dist / "bin", self.home / "bin")
        shutil.copytree(dist / "conf", self.home / "conf")
        for name in ("opt", "plugins"):
            (self.home / name).symlink_to(dist / name, target_is_directory=True)
        lib = self.home / "lib"
        lib.mkdir()
        for jar in (dist / "lib").glob("*.jar"):
            (lib / jar.name).symlink_to(jar)
        if self.python_jar_in_lib:
            for jar in (dist / "opt").glob("flink-python*.jar"):
                (lib / jar.name).symlink_to(jar)
        (self.home / "log").mkdir()
        settings = {
            "jobmanager.bind-host": "127.0.0.1",
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": str(free_port()),
            "jobmanager.memory.process.size": "1024m",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            "taskmanager.rpc.port": "0",
            "taskmanager.data.port": "0",
            "taskmanager.numberOfTaskSlots": str(self.slots),
            "taskmanager.memory.process.size": "1728m",
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": str(self.rest_port),
            "blob.server.port": "0",
            "env.pid.dir": str(self.home / "pids"),
            "env.log.dir": str(self.home / "log"),
            "io.tmp.dirs": str(self.home / "tmp"),
        }
        # The distribution's config.yaml is nested YAML; flat "key: value" lines are read
        # the same way by Flink's parser, and later keys win over the nested ones.
        conf = self.home / "conf" / "config.yaml"
        base = conf.read_text()
        flat = "\n".join(f"{k}: {json.dumps(v)}" for k, v in settings.items())
        conf.write_text(_without(base, ("jobmanager", "taskmanager", "rest")) + "\n" + flat + "\n")
        (self.home / "conf" / "masters").write_text(f"127.0.0.1:{self.rest_port}\n")
        (self.home / "conf" / "workers").write_text("localhost\n")
        (self.home / "pids").mkdir()
        (self.home / "tmp").mkdir()

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the daemons and wait until the REST API reports a TaskManager's slots."""
        self._prepare()
        env = dict(os.environ, FLINK_CONF_DIR=str(self.home / "conf"))
        env.pop("FLINK_HOME", None)
        env.pop("_FLINK_HOME_DETERMINED", None)
        subprocess.run(
            ["bash", str(self.home / "bin" / "start-cluster.sh")],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.pids = self._recorded_pids()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.address}/overview", timeout=2) as r:
                    overview = json.load(r)
                if int(overview.get("slots-total", 0)) >= self.slots:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the standalone cluster at {self.address} did not come up")
            time.sleep(0.2)

    def _recorded_pids(self) -> list[int]:
        pids = []
        for pid_file in sorted((self.home / "pids").glob("*.pid")):
            pids += [int(line) for line in pid_file.read_text().split()]
        return pids

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every daemon by PID (SIGTERM, then SIGKILL) and wait until it has exited."""
        for pid in set(self.pids) | set(self._recorded_pids()):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + timeout_s
            while _alive(pid):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    deadline = time.monotonic() + timeout_s
                time.sleep(0.1)
        self.pids = []

    def log_text(self, pattern: str = "*taskexecutor*.log") -> str:
        return "\n".join(p.read_text(errors="replace") for p in (self.home / "log").glob(pattern))


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a daemon is not our child: no waitpid, /proc tells)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _without(yaml_text: str, sections: tuple[str, ...]) -> str:
    """``yaml_text`` without the top-level sections named (re-set as flat keys after it)."""
    out: list[str] = []
    skipping = False
    for line in yaml_text.splitlines():
        top = line[:1] not in ("", " ", "#")
        if top:
            skipping = line.split(":", 1)[0].strip() in sections
        if not skipping:
            out.append(line)
    return "\n".join(out)
