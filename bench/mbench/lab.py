"""The remote side: the benchmark user, its sshd, a raw TCP sender for the reference rates."""

import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import sys
import time

from .proc import kill_pid, log, run

BENCH_USER = "mconnect-bench"
BENCH_HOME = "/var/lib/mconnect-bench"

def ensure_bench_user():
    try:
        entry = pwd.getpwnam(BENCH_USER)
    except KeyError:
        log(f"creating the system user {BENCH_USER} (home {BENCH_HOME}) for the remote side")
        run(["useradd", "--system", "--create-home", "--home-dir", BENCH_HOME, "--shell", "/bin/bash",
             "--comment", "mconnect benchmarks", BENCH_USER])
        entry = pwd.getpwnam(BENCH_USER)
    # sshd with UsePAM no refuses a locked ('!') account even for keys; '*' is "no password".
    run(["usermod", "-p", "*", BENCH_USER])
    return entry


class Sshd:
    """An sshd for the benchmark user, listening on ADDRESS:PORT (in namespace NS, if given)."""

    def __init__(self, work, address, port, ns=None):
        self.work, self.address, self.port, self.ns = work, address, port, ns
        self.pid = 0

    def start(self):
        w = self.work
        for key in ("host_ed25519_key", "id_ed25519"):
            if not (w / key).exists():
                run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"mconnect bench {key}", "-f", str(w / key)])
        shutil.copy(w / "id_ed25519.pub", w / "authorized_keys")
        os.chmod(w / "authorized_keys", 0o644)  # sshd reads it as the benchmark user
        (w / "sshd_config").write_text(f"""# Written by bench/run.
ListenAddress {self.address}
Port {self.port}
HostKey {w}/host_ed25519_key
AuthorizedKeysFile {w}/authorized_keys
AllowUsers {BENCH_USER}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PidFile {w}/sshd.pid
LogLevel VERBOSE
AcceptEnv LANG LC_*
PrintMotd no
PrintLastLog no
""")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        prefix = ["ip", "netns", "exec", self.ns] if self.ns else []
        run(prefix + ["/usr/sbin/sshd", "-f", str(w / "sshd_config"), "-E", str(w / "sshd.log")])
        for _ in range(200):
            if (w / "sshd.pid").exists() and (w / "sshd.pid").read_text().strip():
                break
            time.sleep(0.025)
        self.pid = int((w / "sshd.pid").read_text())
        host_key = (w / "host_ed25519_key.pub").read_text().split()
        (w / "known_hosts").write_text(f"[{self.address}]:{self.port} {host_key[0]} {host_key[1]}\n")
        (w / "ssh_config").write_text(f"""# Written by bench/run.
Host bench
  HostName {self.address}
  Port {self.port}
  User {BENCH_USER}
  IdentityFile {w}/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile {w}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  BatchMode yes
  ControlMaster no
  ControlPath none
  ConnectTimeout 10
""")

    def authentications(self):
        try:
            return (self.work / "sshd.log").read_text().count("Accepted publickey")
        except OSError:
            return 0

    def stop(self):
        if self.pid:
            kill_pid(self.pid)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_sender(address, port, size, ns=None):
    """A raw TCP server that sends `size` zero bytes to each connection (for the reference)."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)\n"
        "block=bytes(1<<20); n=int(sys.argv[3])\n"
        "while True:\n"
        "  c,_=s.accept(); left=n\n"
        "  while left>0:\n"
        "    k=min(left,len(block)); c.sendall(block[:k]); left-=k\n"
        "  c.close()\n")
    prefix = ["ip", "netns", "exec", ns] if ns else []
    return subprocess.Popen(prefix + [sys.executable, "-c", code, address, str(port), str(size)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

