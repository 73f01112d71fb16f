"""Cases a person sees on a terminal: a real mosh session in a tmux pane, whose screen updates a
tmux control-mode client reports the moment they happen (%output), so nothing is polled.

  first_output  from pressing Enter on a command line in a fresh pane to the first line the remote
                command prints being on that pane's screen
  relay         keystroke to echo in a mosh session, over the SSH relay and over direct UDP
"""

import json
import os
import pathlib
import pwd
import re
import shlex
import statistics
import subprocess
import time

from .lab import BENCH_USER
from .proc import cpu_ns, kill_pid, pids_of_exe, pids_of_uid, run

# What the remote command prints first. The pane shows it only once the remote side has run:
# the command line itself holds `$((6*7))`, never the digits.
MARK = b"OUTPUT-42"
MARK_COMMAND = ["sh", "-c", "echo OUTPUT-$((6*7)); sleep 1"]
# For the floor, whose mosh-server runs its command before mosh-client is started: a command that
# ends before a client came would take the session with it.
FLOOR_COMMAND = ["sh", "-c", "echo OUTPUT-$((6*7)); sleep 8"]
# Escape sequences in tmux's %output lines (tmux writes ESC as \033): "\033[1;5H" holds letters.
ESCAPES = re.compile(rb"\\033(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|.)")


class TmuxPane:
    """One tmux server (its own socket) with one 80x24 pane running `command`, and a control-mode
    client attached to it that reports every screen update."""

    def __init__(self, measure, name, command, env=None):
        self.tmux = ["tmux", "-S", str(measure.work / f"tmux-{name}"), "-f", "/dev/null"]
        self.session = name
        self.env = env or measure.env
        run(self.tmux + ["new-session", "-d", "-s", name, "-x", "80", "-y", "24", command], env=self.env)
        self.control = subprocess.Popen(self.tmux + ["-C", "attach-session", "-t", name], env=self.env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        bufsize=0)
        os.set_blocking(self.control.stdout.fileno(), False)
        self.pending = b""
        self.screen = b""  # every text the pane showed, without escape sequences

    def wait_for(self, needle, timeout, what=""):
        """The moment `needle` is on the pane's screen (time.perf_counter), or an error after `timeout` s."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                chunk = self.control.stdout.read(65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                self.pending += chunk
                lines = self.pending.split(b"\n")
                self.pending = lines.pop()
                for line in lines:
                    if line.startswith(b"%exit") and needle == b"%exit":
                        return time.perf_counter()
                    if line.startswith(b"%output"):
                        text = ESCAPES.sub(b"", line)
                        self.screen += text
                        if needle in text:
                            return time.perf_counter()
            elif self.control.poll() is not None:
                raise RuntimeError(f"tmux's control client ended before {needle!r} {what}; the screen: "
                                   f"{self.screen[-300:].decode(errors='replace')!r}")
            else:
                time.sleep(0.0002)
        raise RuntimeError(f"no {needle!r} within {timeout} s {what}; the screen: "
                           f"{self.screen[-300:].decode(errors='replace')!r}")

    def send(self, keys, literal=True):
        self.control.stdin.write(f"send-keys -t {self.session} {'-l ' if literal else ''}{keys}\n".encode())

    def close(self):
        self.control.kill()
        self.control.wait()
        run(self.tmux + ["kill-server"], check=False, env=self.env)
        for pid in pids_of_exe("mosh-client"):
            kill_pid(pid, grace=0.5)


class InteractiveCases:
    """Mixed into Measure: uses its work directory, environment, masters and samples."""

    def first_output_once(self, name, argv, launcher_ms=None, env=None, wait_end=True):
        """Milliseconds from Enter to MARK on the screen, for `argv` run in a fresh pane. The pane's
        shell waits for Enter (`read`), so the timer starts with the keystroke a person presses."""
        command = "read _; exec " + shlex.join(argv)
        pane = TmuxPane(self, f"first-{name}", command, env)
        try:
            time.sleep(0.05)  # the pane's shell reaches its `read`
            start = time.perf_counter()
            pane.send("Enter", literal=False)
            seen = pane.wait_for(MARK, 30, f"from {name}")
            if launcher_ms is not None:
                found = re.search(rb"total (\d+) ms", pane.screen)
                if not found:
                    raise RuntimeError(f"{name}: no --timings line on the screen")
                launcher_ms.append(float(found.group(1)))
                line = re.search(rb"mconnect: [^\n]*total \d+ ms[^\n]*", pane.screen)
                self.out["values"].setdefault("first_output_timings", []).append(line.group(0).decode(errors="replace"))
            # Let the session end by itself (its command ends after a second), so that no
            # mosh-server is left waiting for a client; bounded.
            try:
                if wait_end:
                    pane.wait_for(b"%exit", 15, f"(the end of {name}'s session)")
            except RuntimeError:
                pass
            return (seen - start) * 1000
        finally:
            pane.close()

    def started_mosh_server(self):
        """A mosh-server for MARK_COMMAND, started over OpenSSH's master: (port, key)."""
        # ssh joins its arguments with spaces for the remote shell: one quoted command line.
        command = shlex.join(["mosh-server", "new", "-s", "-c", "256", "-l", "LANG=C.UTF-8", "--", *FLOOR_COMMAND])
        result = run(self.ssh_s(self.osock, command), env=self.env, timeout=30)
        found = re.search(r"MOSH CONNECT (\d+) (\S+)", result.stdout + result.stderr)
        if not found:
            raise RuntimeError(f"mosh-server said no MOSH CONNECT: {result.stdout.strip()[-200:]}")
        return found.group(1), found.group(2)

    def first_output(self):
        mconnect = self.mconnect_argv(None, f"--socket={self.msock}", "bench")
        variants = {
            # --timings: its one line, printed before mosh-client starts, gives the launcher's share.
            "mconnect_warm": lambda: mconnect[:1] + ["--timings"] + mconnect[1:] + ["--", *MARK_COMMAND],
            "stock": lambda: ["mosh", f"--ssh=ssh -F {self.cfg}", "bench", "--", *MARK_COMMAND],
            "stock_warm": lambda: ["mosh", "--experimental-remote-ip=remote", f"--ssh=ssh -F {self.cfg} -S {self.osock}",
                                   "bench", "--", *MARK_COMMAND],
        }
        self.first_output_once("warm-up", variants["mconnect_warm"]())
        samples = {name: [] for name in (*variants, "floor", "mconnect_cold")}
        launcher = []
        for _ in range(self.runs):
            for name, argv in variants.items():
                samples[name].append(self.first_output_once(
                    name, argv(), launcher_ms=launcher if name == "mconnect_warm" else None))
            # The floor: stock mosh-client alone, its mosh-server already running.
            port, key = self.started_mosh_server()
            samples["floor"].append(self.first_output_once(
                "floor", ["mosh-client", "-#", "bench", self.s["address"], port], env=dict(self.env, MOSH_KEY=key),
                wait_end=False))
        for _ in range(self.runs):
            run(self.mconnect_argv("stop", f"--socket={self.msock}", "bench"), check=False, env=self.env)
            samples["mconnect_cold"].append(self.first_output_once("mconnect_cold", mconnect + ["--", *MARK_COMMAND]))
        self.pids["mconnect"] = self.master_pid(self.msock)
        self.sample("first_output.mconnect", samples.pop("mconnect_warm"))
        self.sample("first_output_cold.mconnect", samples.pop("mconnect_cold"))
        for name, values in samples.items():
            self.sample(f"first_output.{name}", values)
        self.sample("first_output_launcher.mconnect", launcher)
        floor = statistics.median(self.out["samples"]["first_output.floor"])
        self.sample("first_output_over_floor.mconnect",
                    [statistics.median(self.out["samples"]["first_output.mconnect"]) - floor])

    def echo_latency(self, transport):
        """Keystroke to echo through a real mosh session (prediction off, so every echo is the
        server's): `cat` on the server's pty echoes each key."""
        command = shlex.join(self.mconnect_argv(None, f"--socket={self.msock}", f"--transport={transport}",
                                                "--predict=never", "bench", "--", "sh", "-c",
                                                "echo READY-$((6*7)); exec cat"))
        pane = TmuxPane(self, f"echo-{transport}", command)
        try:
            # The session is up once the server's own line is on the screen (before that, the pane's
            # tty would echo typed keys by itself, locally).
            pane.wait_for(b"READY-42", 30, f"over {transport}")
            time.sleep(0.2)
            status = json.loads(run([str(self.bin / "mconnect"), "status", "--json"], env=self.env).stdout)
            before = cpu_ns(self.pids["mconnect"])
            relays = self.server_side_relays()
            relay_before = sum(cpu_ns(pid) for pid in relays)
            samples = []
            # Each key once per session: an echo can only be that key's.
            letters = "QWERTYUIOPASDFGHJKLZXCVBNMqwertyuiopasdfgjkzcvbn"
            for i in range(min(self.runs * 3, len(letters))):
                key = letters[i]
                start = time.perf_counter()
                pane.send(key)
                samples.append((pane.wait_for(key.encode(), 10, f"echoed over {transport}") - start) * 1000)
                time.sleep(0.05)
            master_cpu = (cpu_ns(self.pids["mconnect"]) - before) / 1e9
            self.sample(f"echo_ms.{transport}", samples)
            if transport == "ssh":
                after = json.loads(run([str(self.bin / "mconnect"), "status", "--json"], env=self.env).stdout)
                moved = relayed_datagrams(after) - relayed_datagrams(status)
                self.out["values"]["relay_datagrams"] = moved
                relay_cpu = (sum(cpu_ns(pid) for pid in relays) - relay_before) / 1e9
                if moved > 0:
                    self.sample("relay_master_cpu_ms_per_1000", [master_cpu * 1000 * 1000 / moved])
                    if relays:
                        self.sample("relay_server_cpu_ms_per_1000", [relay_cpu * 1000 * 1000 / moved])
        finally:
            pane.close()

    @staticmethod
    def server_side_relays():
        """The relay beside mosh-server (perl, or mconnect relay): the benchmark user's processes
        whose command line says so."""
        found = []
        for pid in pids_of_uid(pwd.getpwnam(BENCH_USER).pw_uid):
            try:
                cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"mconnect-relay" in cmdline or cmdline.startswith(b"mconnect\0relay"):
                found.append(pid)
        return found

    def relay(self):
        for transport in ("udp", "ssh"):
            self.echo_latency(transport)


def relayed_datagrams(status_reply):
    total = 0
    for master in status_reply.get("masters", []):
        for relayed in master.get("relay_sessions", []):
            total += int(relayed.get("to_server", 0)) + int(relayed.get("to_client", 0))
    return total
