"""The measurements, run inside the client's namespace (for rtt50): each case a method."""

import os
import pathlib
import re
import shlex
import signal
import socket
import statistics
import subprocess
import tempfile
import time

from .interactive import InteractiveCases
from .proc import cpu_seconds, kill_pid, log, rss_by_mapping, rss_kib, run, tcp_connections

MIB = 1024 * 1024

class Measure(InteractiveCases):
    def __init__(self, setup):
        self.s = setup
        self.work = pathlib.Path(setup["work"])
        self.bin = pathlib.Path(setup["bin"])
        self.cfg = str(self.work / "ssh_config")
        # In mconnect's own runtime directory, where `mconnect status` looks.
        self.msock = str(self.work / "run" / "mconnect" / "bench.sock")
        self.osock = str(self.work / "run" / "openssh.sock")
        self.env = dict(os.environ)
        self.env.update({
            "HOME": str(self.work / "home"), "XDG_RUNTIME_DIR": str(self.work / "run"),
            "XDG_CONFIG_HOME": str(self.work / "home" / ".config"), "LANG": "C.UTF-8",
            "TERM": "xterm-256color", "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        })
        self.env.pop("SSH_AUTH_SOCK", None)
        self.env.pop("LC_ALL", None)
        self.runs = setup["runs"]
        self.out = {"samples": {}, "values": {}}
        # A subcommand must come first: mconnect_argv puts it before the --ssh option.
        self.ssh_option = f"--ssh=ssh -F {self.cfg}"

    # One command, timed from fork to exit: (seconds, exit status, its stderr).
    def timed(self, argv, timeout=120, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL):
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=self.env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        try:
            _, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_pid(child.pid)
            child.communicate()
            raise RuntimeError(f"{shlex.join(argv)} timed out after {timeout} s")
        return time.perf_counter() - start, child.returncode, err.decode(errors="replace")

    def mconnect_argv(self, subcommand, *args):
        return [str(self.bin / "mconnect")] + ([subcommand] if subcommand else []) + [self.ssh_option, *args]

    def ssh_s(self, sock, *command):
        return ["ssh", "-F", self.cfg, "-S", sock, "bench", *command]

    def master_pid(self, sock):
        result = run(["ssh", "-F", self.cfg, "-S", sock, "-O", "check", "bench"], check=False, env=self.env)
        found = re.search(r"pid=(\d+)", result.stderr + result.stdout)
        if not found:
            raise RuntimeError(f"no master answers on {sock}: {result.stderr.strip()}")
        return int(found.group(1))

    def start_masters(self):
        os.makedirs(self.work / "run" / "mconnect", mode=0o700, exist_ok=True)
        os.makedirs(self.work / "home", mode=0o700, exist_ok=True)
        # mconnect's master first: OpenSSH's then gets the cipher libssh2 negotiated ("same cipher").
        started = run(self.mconnect_argv("ip", "-v", f"--socket={self.msock}", "--persist=0", "bench"), env=self.env)
        found = re.search(r"cipher (\S+) / ([^\s,]+)", started.stderr)
        self.cipher = found.group(2) if found else ""
        self.out["values"]["cipher"] = self.cipher or "unknown"
        cipher = ["-o", f"Ciphers={self.cipher}"] if self.cipher else []
        run(["ssh", "-F", self.cfg, *cipher, "-M", "-S", self.osock, "-fN", "bench"], env=self.env)
        self.pids = {"mconnect": self.master_pid(self.msock), "openssh": self.master_pid(self.osock)}

    def stop_masters(self):
        run(["ssh", "-F", self.cfg, "-S", self.osock, "-O", "exit", "bench"], check=False, env=self.env)
        run(self.mconnect_argv("stop", f"--socket={self.msock}", "bench"), check=False, env=self.env)

    def sample(self, name, values):
        self.out["samples"][name] = values

    # -- cases --

    def profile(self, case, pid):
        """With --profile: starts `perf record` on `pid` (call graphs); end_profile writes the report."""
        if not self.s.get("profile"):
            return None
        out = pathlib.Path(self.s["profile"])
        out.mkdir(parents=True, exist_ok=True)
        data = out / f"{self.s['path']}-{case}.data"
        target = ["-p", str(pid)] if pid else ["-a"]
        perf = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-g", "-o", str(data), *target],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # perf attaches
        return perf, data

    def end_profile(self, profiling, sort="dso,symbol"):
        perf, data = profiling
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        report = subprocess.run(["perf", "report", "--stdio", "--no-children", "--percent-limit", "1.5",
                                 "--sort", sort, "-g", "none", "-i", str(data)],
                                capture_output=True, text=True, check=False)
        data.with_suffix(".txt").write_text(report.stdout)
        data.unlink(missing_ok=True)

    def warm_exec(self):
        both = {"mconnect": [], "openssh": []}
        for name, sock in (("mconnect", self.msock), ("openssh", self.osock)):
            self.timed(self.ssh_s(sock, "true"))  # warm-up: the first exec pays for page cache
        for _ in range(self.runs * 3):
            for name, sock in (("mconnect", self.msock), ("openssh", self.osock)):
                elapsed, rc, err = self.timed(self.ssh_s(sock, "true"))
                if rc != 0:
                    raise RuntimeError(f"ssh -S {name} true: exit {rc}: {err.strip()}")
                both[name].append(elapsed * 1000)
        self.sample("warm_exec.mconnect", both["mconnect"])
        self.sample("warm_exec.openssh", both["openssh"])
        # With --profile: the whole machine during 30 warm execs through each master, by process.
        for name, sock in (("mconnect", self.msock), ("openssh", self.osock)):
            profiling = self.profile(f"warm-exec-{name}", None)
            if profiling:
                for _ in range(30):
                    self.timed(self.ssh_s(sock, "true"))
                self.end_profile(profiling, sort="comm,dso")
        # What no master can make faster: the ssh process itself, its mux hello and one request
        # answered by the master alone (`-O check`). The rest of an exec is the master's session
        # channel and the server's own work (sshd's session, the shell running `true`).
        checks = {"mconnect": [], "openssh": []}
        for _ in range(self.runs * 3):
            for name, sock in (("mconnect", self.msock), ("openssh", self.osock)):
                elapsed, rc, err = self.timed(["ssh", "-F", self.cfg, "-S", sock, "-O", "check", "bench"])
                if rc != 0:
                    raise RuntimeError(f"ssh -S {name} -O check: exit {rc}: {err.strip()}")
                checks[name].append(elapsed * 1000)
        for name in checks:
            self.sample(f"warm_check.{name}", checks[name])
            self.sample(f"warm_rest.{name}",
                        [statistics.median(both[name]) - statistics.median(checks[name])])

    def mosh(self, argv, timeout=60, launcher_ms=None):
        """A mosh session running `true`, on a pty (script(1)); milliseconds to mosh-client's exit.
        With `launcher_ms` (a list; mconnect only) the run also passes --timings and appends the
        launcher's own share, up to the exec of mosh-client, as it reports it."""
        if launcher_ms is not None:
            argv = argv[:1] + ["--timings"] + argv[1:]
        line = shlex.join(argv + ["--", "true"])
        # script's pty starts 0x0, which mosh-client refuses (an assertion): give it a size.
        with tempfile.TemporaryFile() as screen:
            elapsed, rc, err = self.timed(["script", "-qec", f"stty rows 24 cols 80; exec {line}", "/dev/null"],
                                          timeout=timeout, stdout=screen)
            screen.seek(0)
            shown = screen.read().decode(errors="replace")
        if rc != 0:
            raise RuntimeError(f"{line}: exit {rc}: {err.strip()[-300:]}")
        if launcher_ms is not None:
            found = re.search(r"total (\d+) ms", shown)
            if not found:
                raise RuntimeError(f"{line}: no --timings line on the terminal")
            launcher_ms.append(float(found.group(1)))
        return elapsed * 1000

    def mosh_cases(self):
        mconnect = self.mconnect_argv(None, f"--socket={self.msock}", "bench")
        stock = ["mosh", f"--ssh=ssh -F {self.cfg}", "bench"]
        stock_warm = ["mosh", "--experimental-remote-ip=remote", f"--ssh=ssh -F {self.cfg} -S {self.osock}", "bench"]
        self.mosh(mconnect)  # warm-up: auto's UDP verdict is remembered from here on
        warm, cold_stock, warm_stock, launcher = [], [], [], []
        for _ in range(self.runs):
            warm.append(self.mosh(mconnect, launcher_ms=launcher))
            cold_stock.append(self.mosh(stock))
            warm_stock.append(self.mosh(stock_warm))
        self.sample("mosh_warm.mconnect", warm)
        self.sample("mosh_warm_launcher.mconnect", launcher)
        self.sample("mosh_warm_client.mconnect", [w - l for w, l in zip(warm, launcher)])
        self.sample("mosh.stock", cold_stock)
        self.sample("mosh.stock_warm", warm_stock)
        # Cold: no master (the UDP verdict, kept beside the socket for remote-ip-cache-ttl, stays).
        cold = []
        for _ in range(self.runs):
            run(self.mconnect_argv("stop", f"--socket={self.msock}", "bench"), check=False, env=self.env)
            cold.append(self.mosh(mconnect))
        self.sample("mosh_cold.mconnect", cold)
        self.pids["mconnect"] = self.master_pid(self.msock)

    def throughput(self):
        size = self.s["throughput_mib"] * MIB
        command = f"head -c {size} /dev/zero"
        result = {}
        for name, sock in (("mconnect", self.msock), ("openssh", self.osock)):
            rates, cpus = [], []
            # With --profile, one more transfer first, under perf, and not counted.
            extra = 1 if self.s.get("profile") else 0
            for attempt in range(max(1, self.runs // 2) + extra):
                profiling = self.profile(f"throughput-{name}", self.pids[name]) if attempt < extra else None
                master_before = cpu_seconds(self.pids[name])
                children_before = os.times()
                start = time.perf_counter()
                child = subprocess.Popen(self.ssh_s(sock, command), env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                received = 0
                while True:
                    chunk = child.stdout.read1(1 << 20)
                    if not chunk:
                        break
                    received += len(chunk)
                child.wait(timeout=600)
                elapsed = time.perf_counter() - start
                if profiling:
                    self.end_profile(profiling)
                    continue  # perf's own cost must not count
                children_after = os.times()
                client_cpu = (children_after.children_user - children_before.children_user +
                              children_after.children_system - children_before.children_system)
                master_cpu = cpu_seconds(self.pids[name]) - master_before
                if received != size:
                    raise RuntimeError(f"{name}: received {received} of {size} bytes")
                rates.append(size / MIB / elapsed)
                cpus.append((client_cpu + master_cpu) / (size / (1024 * MIB)))
            result[name] = (rates, cpus)
        self.sample("throughput.mconnect", result["mconnect"][0])
        self.sample("throughput.openssh", result["openssh"][0])
        self.sample("cpu_per_gib.mconnect", result["mconnect"][1])
        self.sample("cpu_per_gib.openssh", result["openssh"][1])
        # Raw TCP on the same path: the server side sends `size` bytes to whoever connects.
        rates = []
        for _ in range(max(1, self.runs // 2)):
            start = time.perf_counter()
            with socket.create_connection((self.s["address"], self.s["tcp_port"]), timeout=30) as conn:
                conn.settimeout(600)
                received = 0
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    received += len(chunk)
            elapsed = time.perf_counter() - start
            rates.append(received / MIB / elapsed)
        self.sample("throughput.tcp", rates)

    def burst(self):
        auth = pathlib.Path(self.s["sshd_log"])
        for name, sock in (("mconnect", self.msock), ("openssh", self.osock)):
            times, ok, fallbacks = [], [], []
            for _ in range(max(1, self.runs // 2)):
                before = auth.read_text().count("Accepted publickey")
                start = time.perf_counter()
                children = [subprocess.Popen(self.ssh_s(sock, "true"), env=self.env, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                            for _ in range(100)]
                codes = [c.wait(timeout=120) for c in children]
                times.append((time.perf_counter() - start) * 1000)
                ok.append(sum(1 for c in codes if c == 0))
                time.sleep(0.5)  # sshd logs from the connection's own process
                fallbacks.append(auth.read_text().count("Accepted publickey") - before)
            self.sample(f"burst_time.{name}", times)
            self.sample(f"burst_ok.{name}", ok)
            # For mconnect these are its own overflow connections past MaxSessions; for OpenSSH's
            # master, clients that gave up on it and connected by themselves.
            self.sample(f"burst_new_connections.{name}", fallbacks)

    def rss(self):
        for name, sock in (("mconnect", self.msock), ("openssh", self.osock)):
            pid = self.pids[name]
            time.sleep(0.5)
            # Idle means no client and nothing held for one: overflow connections opened by the
            # burst before close after 10 s without a session (mux/master.cc), then the master
            # trims its heap. Wait for that (bounded), and say how long it took.
            settled = time.monotonic()
            while name == "mconnect" and tcp_connections(pid) > 1 and time.monotonic() - settled < 20:
                time.sleep(0.25)
            time.sleep(0.5)
            self.sample(f"rss_settle_s.{name}", [round(time.monotonic() - settled, 1)])
            idle = rss_kib(pid)
            self.sample(f"rss_idle_anon_kib.{name}", [rss_kib(pid, "RssAnon")])
            if self.s.get("profile"):  # the memory profile: what the idle RSS is made of
                out = pathlib.Path(self.s["profile"]) / f"{self.s['path']}-rss-idle-{name}.txt"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(f"# resident KiB per mapping, idle master ({name}), from /proc/PID/smaps\n" +
                               "".join(f"{kib:8d}  {mapping}\n" for mapping, kib in rss_by_mapping(pid) if kib))
            children = [subprocess.Popen(self.ssh_s(sock, "sleep", "4"), env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for _ in range(100)]
            peak = idle
            while any(c.poll() is None for c in children):
                peak = max(peak, rss_kib(pid))
                time.sleep(0.05)
            self.sample(f"rss_idle_kib.{name}", [idle])
            self.sample(f"rss_100_kib.{name}", [peak])

    def all(self, only):
        cases = [("warm_exec", self.warm_exec), ("mosh", self.mosh_cases), ("throughput", self.throughput),
                 ("burst", self.burst), ("rss", self.rss), ("relay", self.relay), ("first_output", self.first_output)]
        self.start_masters()
        try:
            for name, case in cases:
                if only and name not in only:
                    continue
                log(f"{self.s['path']}: {name}")
                try:
                    case()
                except Exception as error:  # one broken case must not hide the others
                    self.out["values"][f"{name}.error"] = str(error)
                    log(f"{self.s['path']}: {name} failed: {error}")
        finally:
            self.stop_masters()
        return self.out


