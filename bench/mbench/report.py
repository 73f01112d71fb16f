"""The report: each case's median (min-max) for mconnect and its anchor, ratios, targets."""

import datetime
import statistics
import sys

from .proc import summary

# Targets from the benchmark issue: (case, path) -> (comparison, value), ratio = mconnect / anchor.
TARGETS = {
    ("warm_exec", "rtt0"): ("<=", 0.9),
    ("warm_exec", "rtt50"): ("<=", 0.6),
    ("mosh_warm", "rtt0"): ("<=", 0.35),
    ("mosh_warm", "rtt50"): ("<=", 0.3),
    ("mosh_cold", "rtt0"): ("<=", 0.8),
    ("mosh_cold", "rtt50"): ("<=", 0.8),
    ("throughput", "rtt0"): (">=", 1.0),
    ("throughput_vs_tcp", "rtt50"): (">=", 0.85),
    ("cpu_per_gib", "rtt0"): ("<=", 1.2),
    ("cpu_per_gib", "rtt50"): ("<=", 1.2),
    ("burst_time", "rtt0"): ("<=", 1.0),
    ("burst_time", "rtt50"): ("<=", 1.0),
    ("first_output", "rtt0"): ("<=", 0.35),
    ("first_output", "rtt50"): ("<=", 0.25),
    ("first_output_cold", "rtt0"): ("<=", 0.75),
    ("first_output_cold", "rtt50"): ("<=", 0.75),
}
# Warm first output at most this many ms over the floor (mosh-client alone), plus one RTT.
FLOOR_MARGIN_MS = 30


def ratio(results, path, case, a="mconnect", b="openssh"):
    samples = results[path]["samples"]
    x, y = samples.get(f"{case}.{a}"), samples.get(f"{case}.{b}")
    if not x or not y:
        return None
    return statistics.median(x) / statistics.median(y)


def verdict(case, path, value):
    target = TARGETS.get((case, path))
    if target is None or value is None:
        return ""
    op, bound = target
    met = value <= bound if op == "<=" else value >= bound
    return f"{op} {bound}: {'met' if met else '**missed**'}"


def fmt(samples, unit="", digits=1):
    s = summary(samples or [])
    if not s:
        return "—"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def report(results, args):
    lines = [f"# mconnect benchmark, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}", "",
             f"Command: `{' '.join(sys.argv)}`; {args.runs} runs per case (warm exec: {args.runs * 3}), "
             "median (min–max); ratio = mconnect ÷ anchor, medians.", ""]
    for path, out in results.items():
        v, s = out["values"], out["samples"]
        rtt = v.get("measured_rtt_ms")
        lines += [f"## Path {path}" + (f" (measured RTT {rtt} ms, a userspace TUN delay)" if rtt else
                                        " (loopback)"), ""]
        for key, value in v.items():
            if key.endswith(".error"):
                lines.append(f"- **{key[:-6]} failed**: {value}")
        lines.append(f"Cipher (both masters): {v.get('cipher', 'unknown')}.")
        lines.append("")
        lines += ["| case | mconnect | anchor | ratio | target |", "|---|---|---|---|---|"]

        def row(title, ours, anchor, case, a="mconnect", b="openssh", unit=" ms", digits=1):
            r = ratio(results, path, case, a, b)
            lines.append(f"| {title} | {fmt(s.get(ours), unit, digits)} | {fmt(s.get(anchor), unit, digits)} | "
                         f"{'—' if r is None else f'{r:.2f}'} | {verdict(case, path, r)} |")

        # The mosh anchors under the names ratio() looks for.
        s["mosh_warm.stock"] = s["mosh_cold.stock"] = s.get("mosh.stock")
        s["mosh_warm_vs_warm.mconnect"], s["mosh_warm_vs_warm.stock_warm"] = s.get("mosh_warm.mconnect"), s.get(
            "mosh.stock_warm")
        s["throughput_vs_tcp.mconnect"], s["throughput_vs_tcp.tcp"] = s.get("throughput.mconnect"), s.get(
            "throughput.tcp")
        row("warm `ssh -S` true (vs OpenSSH master)", "warm_exec.mconnect", "warm_exec.openssh", "warm_exec")
        row("… of which the `ssh` process and mux hello (`ssh -O check`)", "warm_check.mconnect",
            "warm_check.openssh", "warm_check")
        row("… the rest: session channel, sshd and `true` on the server (median − median)", "warm_rest.mconnect",
            "warm_rest.openssh", "warm_rest")
        row("warm `mconnect -- true` (vs stock mosh, cold)", "mosh_warm.mconnect", "mosh.stock", "mosh_warm",
            "mconnect", "stock")
        row("warm `mconnect -- true` (vs mosh remote + OpenSSH master)", "mosh_warm.mconnect", "mosh.stock_warm",
            "mosh_warm_vs_warm", "mconnect", "stock_warm")
        row("… of which mconnect until it execs mosh-client (its --timings total)", "mosh_warm_launcher.mconnect",
            "mosh_warm_launcher.stock", "mosh_warm_launcher")
        row("… and mosh-client's own session: UDP handshake, `true`, shutdown (per run)",
            "mosh_warm_client.mconnect", "mosh_warm_client.stock", "mosh_warm_client")
        s["first_output_cold.stock"] = s.get("first_output.stock")
        s["first_output_vs_warm.mconnect"] = s["first_output_floor.mconnect"] = s.get("first_output.mconnect")
        s["first_output_vs_warm.stock_warm"] = s.get("first_output.stock_warm")
        s["first_output_floor.floor"] = s.get("first_output.floor")
        row("**first output**, warm master (vs stock mosh)", "first_output.mconnect", "first_output.stock",
            "first_output", "mconnect", "stock")
        row("… (vs mosh remote + OpenSSH master)", "first_output.mconnect", "first_output.stock_warm",
            "first_output_vs_warm", "mconnect", "stock_warm")
        row("… the floor: mosh-client alone, mosh-server already running", "first_output.mconnect",
            "first_output.floor", "first_output_floor", "mconnect", "floor")
        over = s.get("first_output_over_floor.mconnect")
        if over:
            bound = FLOOR_MARGIN_MS + (rtt or 0)
            lines.append(f"| … warm over the floor (median − median) | {over[0]:.1f} ms | ≤ {bound:.0f} ms | — | "
                         f"{'met' if over[0] <= bound else '**missed**'} |")
        row("… of which mconnect until it execs mosh-client (its --timings total)",
            "first_output_launcher.mconnect", "none", "first_output_launcher")
        row("**first output**, no master (vs stock mosh)", "first_output_cold.mconnect", "first_output.stock",
            "first_output_cold", "mconnect", "stock")
        row("first `mconnect -- true`, no master (vs stock mosh)", "mosh_cold.mconnect", "mosh.stock", "mosh_cold",
            "mconnect", "stock")
        row(f"{args.throughput_mib} MiB, one channel (MiB/s; vs OpenSSH master)", "throughput.mconnect",
            "throughput.openssh", "throughput", unit="")
        row("same, vs raw TCP on this path (MiB/s)", "throughput.mconnect", "throughput.tcp", "throughput_vs_tcp",
            "mconnect", "tcp", unit="")
        row("client + master CPU per GiB (s)", "cpu_per_gib.mconnect", "cpu_per_gib.openssh", "cpu_per_gib",
            unit=" s", digits=2)
        row("100 concurrent `ssh -S` true: time to the last", "burst_time.mconnect", "burst_time.openssh",
            "burst_time")
        row("… of which succeeded (of 100)", "burst_ok.mconnect", "burst_ok.openssh", "burst_ok", unit="", digits=0)
        row("… new SSH connections (ours: overflow; OpenSSH: clients' own fallbacks)",
            "burst_new_connections.mconnect", "burst_new_connections.openssh", "burst_new", unit="", digits=0)
        s["echo.ssh"], s["echo.udp"] = s.get("echo_ms.ssh"), s.get("echo_ms.udp")
        row("keystroke to echo, mosh over the SSH relay (vs direct UDP)", "echo_ms.ssh", "echo_ms.udp", "echo",
            "ssh", "udp")
        row("master CPU per 1000 relayed datagrams (ms)", "relay_master_cpu_ms_per_1000", "none", "relay_cpu",
            unit=" ms", digits=2)
        row("relay process on the server, CPU per 1000 datagrams (ms)", "relay_server_cpu_ms_per_1000", "none",
            "relay_server_cpu", unit=" ms", digits=2)
        row("master RSS idle (KiB)", "rss_idle_kib.mconnect", "rss_idle_kib.openssh", "rss_idle", unit="", digits=0)
        row("… of which its own memory (RssAnon; the rest is shared program and library pages)",
            "rss_idle_anon_kib.mconnect", "rss_idle_anon_kib.openssh", "rss_idle_anon", unit="", digits=0)
        row("… seconds from the last client to idle (overflow connections closed)", "rss_settle_s.mconnect",
            "rss_settle_s.openssh", "rss_settle", unit=" s", digits=1)
        row("master RSS, 100 clients (KiB)", "rss_100_kib.mconnect", "rss_100_kib.openssh", "rss_100", unit="",
            digits=0)
        lines.append("")
        lines.append(f"sshd authentications during this path's runs: {v.get('authentications')} "
                     "(each stock mosh run, each cold mconnect run, each OpenSSH fallback and each overflow "
                     "connection is one).")
        lines.append("")
    lines += ["Targets: master RSS ≤ 8 MiB idle and ≤ 32 MiB with 100 clients; 100/100 through mconnect.", ""]
    return "\n".join(lines)
