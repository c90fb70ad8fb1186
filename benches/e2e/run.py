#!/usr/bin/env python3
"""End-to-end benchmark: postern beside Postfix, in one run, on loopback.

Usage (as root, after `bash scripts/install-peers.sh`):

    python3 benches/e2e/run.py [--quick] [--only SECTION[,SECTION]] [--out FILE]

Sections:
  durable   postern-mta (durable queue, fsync on) vs Postfix smtpd (durable
            queue, mail for a local domain, discarded after queueing); client
            smtp-source; 1, 10, 50 sessions; one and many messages per
            session; 1 KiB and 1 MiB bodies.
  discard   postern-listener with a discard handler (the `discard` example)
            vs Postfix smtp-sink; same workloads.
  maildir   both sides do the same work: postern-mta delivers every message
            into a Maildir (its local domain) and a Postfix instance of the
            script's own (config and queue directories under /var/tmp, a
            loopback high port) delivers it into a Maildir with virtual(8).
            Each row ends when every message is a file in new/ on that side.
            Every workload is measured twice, alternating the order of the
            sides, beside the discard server and smtp-sink in the same run;
            the tables give the mean, the spread of the two rounds, the
            postern / Postfix ratio and postern's Maildir / discard ratio.
  tls       implicit TLS: smtp-source through an stunnel client into
            postern-mta's implicit-TLS listener vs Postfix smtpd in wrapper
            mode; messages and handshakes per second.
  idle      RSS of postern-mta holding 1,000 and 10,000 idle connections.
  pgstore   postern-mta with the queue in PostgreSQL ([store] kind =
            "postgres"; a server initdb'ed into a temporary directory,
            fsync and synchronous_commit on) beside postern-mta with its
            log store and Postfix smtpd; 1, 10, 50 sessions, 1 KiB. Server
            CPU includes PostgreSQL's processes for the pg column.

Everything binds 127.0.0.1; counts are bounded. Figures: msg/s, MB/s
(payload), server CPU microseconds per message (user + system time of the
server's own processes, read from /proc/PID/stat before and after the run,
children reaped during it included; kernel threads such as the journal
commit are not counted for either side), peak server RSS. Ratios are
postern / peer for throughput (higher is better) and peer / postern for CPU
and memory (higher is better). The table is printed as Markdown.

Postfix is configured in place (/etc/postfix, loopback-only master entries
on 2526 and 2466, local_transport=discard) for `durable` and `tls`, and as a
separate instance (`postfix -c DIR`, port 12526) for `maildir`; every
instance is stopped afterwards and no system service is left running.
"""

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POSTFIX_PORT = 2526
POSTFIX_TLS_PORT = 2466
POSTERN_SMTP = 13525
POSTERN_SUB = 13587
POSTERN_TLS = 13465
DISCARD_PORT = 13526
SINK_PORT = 2627
STUNNEL_PORT = 12999
VIRTUAL_PORT = 12526

POSTFIX_PROCS = {
    "master", "smtpd", "cleanup", "qmgr", "trivial-rewrite", "pickup", "anvil",
    "discard", "tlsmgr", "proxymap", "scache", "showq", "bounce", "smtp",
    "virtual", "postlogd", "local",
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def port_free(port):
    """Nothing listens on 127.0.0.1:port (TIME_WAIT leftovers of the previous
    workload do not count: SO_REUSEADDR, as the servers themselves use)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cpu_ticks(pids):
    """utime + stime + cutime + cstime of `pids` (clock ticks).

    Summed before and after a run over the server's processes: a process
    that exits during the run is counted through its parent's cutime/cstime
    (Postfix's master reaps its children), one that starts during it counts
    in full. Kernel threads (the journal, writeback) are not attributed to
    either server."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_of(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def pids_by_comm(names):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() in names:
                        out.append(int(d))
            except OSError:
                pass
    return out


class RssSampler(threading.Thread):
    def __init__(self, pids_fn):
        super().__init__(daemon=True)
        self.pids_fn = pids_fn
        self.peak = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_of(self.pids_fn()))
            time.sleep(0.05)


def smtp_source(port, sessions, messages, size, many, recipient, extra=None):
    """Runs smtp-source; returns (seconds, client CPU seconds, stderr)."""
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", "bench@bench.test", "-t", recipient]
    if many:
        cmd.append("-d")
    cmd.append(f"127.0.0.1:{port}")
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, _, ru = os.wait4(proc.pid, 0)
    elapsed = time.time() - start
    err = proc.stderr.read().decode(errors="replace")
    return elapsed, ru.ru_utime + ru.ru_stime, err


def count_files(directory):
    try:
        with os.scandir(directory) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def wait_delivered(directory, messages, started, timeout=300.0):
    """Polls `directory` (a Maildir's new/) until it holds `messages` files;
    returns the seconds since `started` at that moment."""
    deadline = time.time() + timeout
    while True:
        n = count_files(directory)
        if n >= messages:
            return time.time() - started
        if time.time() > deadline:
            raise RuntimeError(f"{directory}: {n} of {messages} messages delivered "
                               f"after {timeout:.0f}s")
        time.sleep(0.005)


def measure(port, pids_fn, sessions, messages, size, many, recipient, maildir=None):
    """One smtp-source run. With `maildir`, the run ends only when every
    message is a file in that directory (end-to-end rate and CPU)."""
    hz = os.sysconf("SC_CLK_TCK")
    sampler = RssSampler(pids_fn)
    sampler.start()
    j0 = cpu_ticks(pids_fn())
    started = time.time()
    secs, client_cpu, err = smtp_source(port, sessions, messages, size, many, recipient)
    if maildir is not None and not err.strip():
        secs = wait_delivered(maildir, messages, started)
    j1 = cpu_ticks(pids_fn())
    sampler.stop.set()
    sampler.join()
    if err.strip():
        raise RuntimeError(f"smtp-source reported errors on port {port}: {err.strip()[:400]}")
    server_cpu = max(0.0, (j1 - j0) / hz)
    return {
        "msgs": messages / secs,
        "mbs": messages * size / secs / 1e6,
        "cpu_us": server_cpu / messages * 1e6,
        "rss": sampler.peak,
    }


# ---------------------------------------------------------------- Postfix


def configure_postfix(cert, key):
    settings = {
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "myhostname": "bench.test",
        "mydestination": "bench.test",
        "mynetworks": "127.0.0.0/8",
        "local_recipient_maps": "",
        "local_transport": "discard:",
        "default_transport": "discard:",
        "relay_transport": "discard:",
        "disable_dns_lookups": "yes",
        "smtpd_peername_lookup": "no",
        "smtpd_client_connection_count_limit": "0",
        "smtpd_client_connection_rate_limit": "0",
        "smtpd_client_message_rate_limit": "0",
        "default_process_limit": "200",
        "message_size_limit": "52428800",
        "smtpd_tls_cert_file": str(cert),
        "smtpd_tls_key_file": str(key),
        "smtpd_tls_security_level": "may",
        "smtpd_tls_protocols": ">=TLSv1.2",
        "compatibility_level": "3.6",
        "maillog_file": "/var/log/postfix-bench.log",
    }
    run(["postconf", "-e"] + [f"{k}={v}" for k, v in settings.items()])
    run(["postconf", "-F", "*/*/chroot = n"])
    # Only our loopback entries accept mail: comment out the port 25 service.
    subprocess.run(["postconf", "-M#", "smtp/inet"], check=False)
    run(["postconf", "-M",
         f"127.0.0.1:{POSTFIX_PORT}/inet=127.0.0.1:{POSTFIX_PORT} inet n - n - - smtpd"])
    run(["postconf", "-M",
         f"127.0.0.1:{POSTFIX_TLS_PORT}/inet=127.0.0.1:{POSTFIX_TLS_PORT} inet n - n - - smtpd"
         " -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt"])


def start_postfix():
    subprocess.run(["postfix", "stop"], capture_output=True)
    time.sleep(0.5)
    run(["postfix", "start"], capture_output=True)
    wait_port(POSTFIX_PORT)


def stop_postfix():
    subprocess.run(["postfix", "stop"], capture_output=True)


def postfix_pids():
    return pids_by_comm(POSTFIX_PROCS)


# ---------------------------------------------------------------- Postfix virtual(8)


class PostfixVirtual:
    """A Postfix instance of the script's own that delivers bench.test into
    a Maildir with virtual(8): config, queue, data and mailbox directories
    under one temporary directory on the root file system (as postern's
    data directory), smtpd on 127.0.0.1:VIRTUAL_PORT only, started with
    `postfix -c DIR start` and stopped with `postfix -c DIR stop`."""

    MAILBOX_UID = 65534  # nobody: virtual(8) writes the Maildir as this user

    def __init__(self):
        if not port_free(VIRTUAL_PORT):
            raise RuntimeError(f"127.0.0.1:{VIRTUAL_PORT} is already in use")
        self.top = Path(tempfile.mkdtemp(prefix="postern-bench-virtual-", dir="/var/tmp"))
        os.chmod(self.top, 0o755)  # the postfix user walks it to its queue
        self.etc = self.top / "etc"
        self.queue = self.top / "queue"
        self.vmail = self.top / "vmail"
        for d in (self.etc, self.queue, self.top / "data", self.vmail):
            d.mkdir()
        shutil.chown(self.top / "data", "postfix")
        os.chown(self.vmail, self.MAILBOX_UID, self.MAILBOX_UID)
        shutil.copy("/usr/share/postfix/master.cf.dist", self.etc / "master.cf")
        (self.etc / "vmailbox").write_text("user@bench.test bench.test/user/\n")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.top / "data",
            "maillog_file": self.top / "maillog",
            "myhostname": "bench.test",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "virtual_mailbox_domains": "bench.test",
            "virtual_mailbox_base": self.vmail,
            "virtual_mailbox_maps": f"hash:{self.etc / 'vmailbox'}",
            "virtual_uid_maps": f"static:{self.MAILBOX_UID}",
            "virtual_gid_maps": f"static:{self.MAILBOX_UID}",
            "virtual_mailbox_limit": "0",
            "disable_dns_lookups": "yes",
            "smtpd_peername_lookup": "no",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "default_process_limit": "200",
            "message_size_limit": "52428800",
        }
        (self.etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        run(["postmap", str(self.etc / "vmailbox")])
        run(["postconf", "-c", str(self.etc), "-F", "*/*/chroot = n"])
        run(["postconf", "-c", str(self.etc), "-M#", "smtp/inet"])
        run(["postconf", "-c", str(self.etc), "-M",
             f"127.0.0.1:{VIRTUAL_PORT}/inet=127.0.0.1:{VIRTUAL_PORT} inet n - n - - smtpd"])

    def new_dir(self):
        return self.vmail / "bench.test" / "user" / "new"

    def start(self):
        # Each measurement starts from an empty mailbox and fresh processes,
        # as postern's does from a fresh data directory. The last one's
        # mailbox is moved aside, not deleted: see `section_maildir`.
        old = self.vmail / "bench.test"
        if old.exists():
            old.rename(self.top / f"old-{time.monotonic_ns()}")
        run(["postfix", "-c", str(self.etc), "start"], capture_output=True)
        wait_port(VIRTUAL_PORT)

    def stop(self):
        subprocess.run(["postfix", "-c", str(self.etc), "stop"], capture_output=True)
        # `postfix stop` returns before master's children are gone.
        end = time.time() + 10
        while self.pids() and time.time() < end:
            time.sleep(0.05)

    def pids(self):
        """master and every process below it (smtpd, cleanup, qmgr,
        trivial-rewrite, virtual, postlogd, ...)."""
        try:
            master = int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return process_tree(master)

    def remove(self):
        self.stop()
        shutil.rmtree(self.top, ignore_errors=True)


def process_tree(root):
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    if root not in parent:
        return []
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += [c for c, pp in parent.items() if pp == pid]
    return out


# ---------------------------------------------------------------- postern


class Server:
    def __init__(self, cmd, ports, env=None):
        # A stale server on one of our ports would be measured instead of
        # ours (its bind would fail and wait_port would find the other).
        for p in ports:
            if not port_free(p):
                raise RuntimeError(f"127.0.0.1:{p} is already in use (see `ss -ltnp`); "
                                   "stop whatever listens there first")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open("/tmp/postern-bench-server.log", "ab"),
                                     env=env, start_new_session=True)
        for p in ports:
            wait_port(p)
        if self.proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited at start; see /tmp/postern-bench-server.log")

    def pids(self):
        return [self.proc.pid] if self.proc.poll() is None else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def build():
    log("building postern-mta and the discard example (release)")
    run(["cargo", "build", "--release", "-q", "-p", "postern-mta", "--bins"], cwd=ROOT)
    run(["cargo", "build", "--release", "-q", "-p", "postern-benches", "--example", "discard"],
        cwd=ROOT)
    return target_dir() / "release"


def mta_config(data_dir):
    cfg = Path(data_dir) / "bench.toml"
    template = (ROOT / "benches" / "e2e" / "mta-bench.toml").read_text()
    cfg.write_text(template.replace("@SMTP@", str(POSTERN_SMTP))
                   .replace("@SUB@", str(POSTERN_SUB))
                   .replace("@TLS@", str(POSTERN_TLS)))
    return cfg


# ---------------------------------------------------------------- sections


def workloads(quick):
    out = []
    for sessions in (1, 10, 50):
        n_one = 300 if quick else 2000
        n_many = 1000 if quick else 5000
        out.append((sessions, n_one, 1024, False))
        out.append((sessions, n_many, 1024, True))
    big = 20 if quick else 100
    out.append((1, big, 1 << 20, True))
    out.append((10, big, 1 << 20, True))
    return out


def fmt_row(name, ours, theirs):
    r = ours["msgs"] / theirs["msgs"] if theirs["msgs"] else float("nan")
    c = theirs["cpu_us"] / ours["cpu_us"] if ours["cpu_us"] else float("nan")
    m = theirs["rss"] / ours["rss"] if ours["rss"] else float("nan")
    return (f"| {name} | {ours['msgs']:,.0f} | {theirs['msgs']:,.0f} | {r:.2f}× | "
            f"{ours['mbs']:.1f} | {theirs['mbs']:.1f} | "
            f"{ours['cpu_us']:,.0f} | {theirs['cpu_us']:,.0f} | {c:.2f}× | "
            f"{ours['rss'] / 1e6:.1f} | {theirs['rss'] / 1e6:.1f} | {m:.2f}× |")


HEADER = ("| workload | postern msg/s | {peer} msg/s | msg/s ratio | postern MB/s | {peer} MB/s | "
          "postern CPU µs/msg | {peer} CPU µs/msg | CPU ratio | postern peak RSS MB | "
          "{peer} peak RSS MB | RSS ratio |\n|" + "---|" * 12)


def describe(sessions, n, size, many):
    s = "1 KiB" if size == 1024 else "1 MiB"
    per = "many msgs/session" if many else "1 msg/session"
    return f"{sessions} sessions, {per}, {s}, {n} msgs"


def section_durable(bin_dir, quick, pki):
    lines = ["### Durable acceptance: postern-mta vs Postfix smtpd (both fsync their queue)", "",
             HEADER.format(peer="Postfix smtpd")]
    configure_postfix(*pki)
    for sessions, n, size, many in workloads(quick):
        data = tempfile.mkdtemp(prefix="postern-bench-")
        cfg = mta_config(data)
        server = Server([str(bin_dir / "postern-mta"), "--config", str(cfg), "--data-dir", data],
                        [POSTERN_SMTP, POSTERN_SUB, POSTERN_TLS])
        try:
            ours = measure(POSTERN_SMTP, server.pids, sessions, n, size, many,
                           "postmaster@localhost")
        finally:
            server.stop()
            shutil.rmtree(data, ignore_errors=True)
        start_postfix()
        try:
            theirs = measure(POSTFIX_PORT, postfix_pids, sessions, n, size, many,
                             "user@bench.test")
        finally:
            stop_postfix()
        row = fmt_row(describe(sessions, n, size, many), ours, theirs)
        log(row)
        lines.append(row)
    return lines


def section_discard(bin_dir, quick):
    lines = ["### Discarding server: postern-listener (`discard` example) vs smtp-sink", "",
             HEADER.format(peer="smtp-sink")]
    for sessions, n, size, many in workloads(quick):
        server = Server([str(bin_dir / "examples" / "discard"), f"127.0.0.1:{DISCARD_PORT}"],
                        [DISCARD_PORT])
        try:
            ours = measure(DISCARD_PORT, server.pids, sessions, n, size, many, "u@bench.test")
        finally:
            server.stop()
        if not port_free(SINK_PORT):
            raise RuntimeError(f"port {SINK_PORT} is taken; smtp-sink would share it")
        sink = Server(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{SINK_PORT}", "1024"],
                      [SINK_PORT])
        try:
            theirs = measure(SINK_PORT, sink.pids, sessions, n, size, many, "u@bench.test")
        finally:
            sink.stop()
        row = fmt_row(describe(sessions, n, size, many), ours, theirs)
        log(row)
        lines.append(row)
    return lines


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "n/a"


def spread(values):
    """Mean and the rounds' range as a cell: `mean (min–max)`."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, f"{mean:,.0f}"
    return mean, f"{mean:,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def section_maildir(bin_dir, quick, rounds, settle):
    """Same work on both sides: every message lands in a Maildir's new/."""
    pf = PostfixVirtual()

    # Data directories are removed at the end of the section, not after each
    # measurement. This file system has no journal, and then ext4 does not
    # reuse an inode freed in the last 5-10 s: every file created soon after
    # a big deletion walks past the freed inodes (`recently_deleted` in a
    # profile), and the next measurement would pay for this one's cleanup.
    # For the same reason each Maildir measurement first waits `settle`
    # seconds: Postfix unlinks a queue file per message, and the side
    # measured after it would otherwise create its files among those.
    leftovers = []

    def postern_maildir(sessions, n, size, many):
        data = tempfile.mkdtemp(prefix="postern-bench-", dir="/var/tmp")
        leftovers.append(data)
        cfg = mta_config(data)
        server = Server([str(bin_dir / "postern-mta"), "--config", str(cfg), "--data-dir", data],
                        [POSTERN_SMTP, POSTERN_SUB, POSTERN_TLS])
        try:
            return measure(POSTERN_SMTP, server.pids, sessions, n, size, many,
                           "postmaster@localhost",
                           maildir=Path(data) / "mail" / "localhost" / "postmaster" / "new")
        finally:
            server.stop()

    def postfix_virtual(sessions, n, size, many):
        pf.start()
        try:
            return measure(VIRTUAL_PORT, pf.pids, sessions, n, size, many, "user@bench.test",
                           maildir=pf.new_dir())
        finally:
            pf.stop()

    def discard(sessions, n, size, many):
        server = Server([str(bin_dir / "examples" / "discard"), f"127.0.0.1:{DISCARD_PORT}"],
                        [DISCARD_PORT])
        try:
            return measure(DISCARD_PORT, server.pids, sessions, n, size, many, "u@bench.test")
        finally:
            server.stop()

    def sink(sessions, n, size, many):
        if not port_free(SINK_PORT):
            raise RuntimeError(f"port {SINK_PORT} is taken; smtp-sink would share it")
        server = Server(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{SINK_PORT}", "1024"],
                        [SINK_PORT])
        try:
            return measure(SINK_PORT, server.pids, sessions, n, size, many, "u@bench.test")
        finally:
            server.stop()

    main_rows, discard_rows = [], []
    try:
        for wl in workloads(quick):
            got = {"postern": [], "postfix": [], "discard": [], "sink": []}
            for r in range(rounds):
                # Alternate which side goes first, so a burst of load from the
                # other builds on the machine does not always hit the same side.
                pairs = [("postern", postern_maildir), ("postfix", postfix_virtual),
                         ("discard", discard), ("sink", sink)]
                if r % 2:
                    pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
                for name, fn in pairs:
                    if name in ("postern", "postfix"):
                        time.sleep(settle)
                    got[name].append(fn(*wl))
                    log(f"  {describe(*wl)} round {r + 1}: {name} "
                        f"{got[name][-1]['msgs']:,.0f} msg/s, "
                        f"{got[name][-1]['cpu_us']:,.0f} µs/msg")

            def cells(name):
                msgs, m = spread([x["msgs"] for x in got[name]])
                cpu, c = spread([x["cpu_us"] for x in got[name]])
                rss = max(x["rss"] for x in got[name])
                return msgs, m, cpu, c, rss

            pm, pm_s, pc, pc_s, prss = cells("postern")
            fm, fm_s, fc, fc_s, frss = cells("postfix")
            dm, dm_s, dc, dc_s, _ = cells("discard")
            sm, sm_s, sc, sc_s, _ = cells("sink")
            row = (f"| {describe(*wl)} | {pm_s} | {fm_s} | {ratio(pm, fm)} | {pc_s} | {fc_s} | "
                   f"{ratio(fc, pc)} | {prss / 1e6:.1f} | {frss / 1e6:.1f} | {ratio(pm, dm)} |")
            log(row)
            main_rows.append(row)
            row = (f"| {describe(*wl)} | {dm_s} | {sm_s} | {ratio(dm, sm)} | {dc_s} | {sc_s} | "
                   f"{ratio(sc, dc)} |")
            log(row)
            discard_rows.append(row)
    finally:
        pf.remove()
        for d in leftovers:
            shutil.rmtree(d, ignore_errors=True)
    cell = f"mean of {rounds} rounds (range)" if rounds > 1 else "one round"
    return ([f"### Maildir delivery on both sides: postern-mta vs Postfix (smtpd + virtual(8)); "
             f"msg/s counted until the last message is in new/; {cell}", "",
             "| workload | postern msg/s | Postfix msg/s | msg/s ratio | postern CPU µs/msg | "
             "Postfix CPU µs/msg | CPU ratio | postern peak RSS MB | Postfix peak RSS MB | "
             "postern Maildir / discard msg/s |",
             "|" + "---|" * 10] + main_rows +
            ["", f"### Discarding server in the same run: postern `discard` example vs smtp-sink; "
             f"{cell}", "",
             "| workload | postern msg/s | smtp-sink msg/s | msg/s ratio | postern CPU µs/msg | "
             "smtp-sink CPU µs/msg | CPU ratio |", "|" + "---|" * 7] + discard_rows)


def stunnel_client(target_port):
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(f"foreground = yes\npid =\n[c]\nclient = yes\naccept = 127.0.0.1:{STUNNEL_PORT}\n"
               f"connect = 127.0.0.1:{target_port}\nverifyChain = no\n"
               "sslVersionMin = TLSv1.2\n")
    conf.close()
    srv = Server(["stunnel4" if shutil.which("stunnel4") else "stunnel", conf.name],
                 [STUNNEL_PORT])
    return srv


def section_tls(bin_dir, quick, pki):
    lines = ["### Implicit TLS (smtp-source through an stunnel client; one handshake per message "
             "when 1 msg/session)", "", HEADER.format(peer="Postfix smtpd")]
    configure_postfix(*pki)
    for sessions, n, size, many in workloads(quick)[:4]:
        data = tempfile.mkdtemp(prefix="postern-bench-")
        cfg = mta_config(data)
        server = Server([str(bin_dir / "postern-mta"), "--config", str(cfg), "--data-dir", data],
                        [POSTERN_SMTP, POSTERN_SUB, POSTERN_TLS])
        tunnel = stunnel_client(POSTERN_TLS)
        try:
            ours = measure(STUNNEL_PORT, server.pids, sessions, n, size, many,
                           "postmaster@localhost")
        finally:
            tunnel.stop()
            server.stop()
            shutil.rmtree(data, ignore_errors=True)
        start_postfix()
        tunnel = stunnel_client(POSTFIX_TLS_PORT)
        try:
            theirs = measure(STUNNEL_PORT, postfix_pids, sessions, n, size, many,
                             "user@bench.test")
        finally:
            tunnel.stop()
            stop_postfix()
        row = fmt_row(describe(sessions, n, size, many), ours, theirs)
        log(row)
        lines.append(row)
    return lines


def section_idle(bin_dir):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 25000
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))
    lines = ["### Idle connections: postern-mta RSS", "",
             "| idle connections | RSS MB | RSS growth per connection |", "|---|---|---|"]
    for count in (1000, 10000):
        data = tempfile.mkdtemp(prefix="postern-bench-")
        cfg = mta_config(data)
        server = Server([str(bin_dir / "postern-mta"), "--config", str(cfg), "--data-dir", data],
                        [POSTERN_SMTP, POSTERN_SUB, POSTERN_TLS])
        socks = []
        try:
            time.sleep(0.5)
            base = rss_of(server.pids())
            for _ in range(count):
                s = socket.create_connection(("127.0.0.1", POSTERN_SMTP))
                socks.append(s)
            # Read every greeting so each session is fully set up.
            for s in socks:
                s.settimeout(10)
                s.recv(512)
            time.sleep(0.5)
            rss = rss_of(server.pids())
            per = (rss - base) / count
            row = f"| {count:,} | {rss / 1e6:.1f} | {per / 1024:.1f} KiB |"
            log(row)
            lines.append(row)
        finally:
            for s in socks:
                s.close()
            server.stop()
            shutil.rmtree(data, ignore_errors=True)
    return lines


PG_PORT = 15432


class PgServer:
    """A PostgreSQL server of this run: initdb into a temporary directory
    (as the `postgres` user: PostgreSQL refuses root), loopback only,
    fsync and synchronous_commit on, stopped (fast) and removed after."""

    def __init__(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
        if not bins:
            raise RuntimeError("PostgreSQL not installed: run scripts/install-peers.sh")
        self.bin = bins[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="postern-bench-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
        run(as_pg + [str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-U", "postern",
                     "--auth=trust", "-E", "UTF8"], capture_output=True)
        self.proc = subprocess.Popen(
            as_pg + [str(self.bin / "postgres"), "-D", str(self.dir / "data"), "-p", str(PG_PORT),
                     "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on",
                     "-c", "synchronous_commit=on", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=open("/tmp/postern-bench-pg.log", "ab"))
        wait_port(PG_PORT)
        time.sleep(1.0)

    def dsn(self, db):
        return f"host=127.0.0.1 port={PG_PORT} user=postern dbname={db}"

    def create_db(self, db):
        run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postern",
             "-d", "postgres", "-c", f"CREATE DATABASE {db}"], capture_output=True)

    def pids(self):
        """The postmaster and its children (backends, WAL writer...)."""
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
            except (OSError, IndexError):
                continue
            if comm == "postgres":
                out.append(int(stat.parent.name))
        return out

    def stop(self):
        subprocess.run(["pkill", "-INT", "-P", str(self.proc.pid)], check=False)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def section_pgstore(bin_dir, quick, pki):
    lines = ["### The queue in PostgreSQL: postern-mta (pg store) vs postern-mta (log store) vs "
             "Postfix smtpd (all durable)", "",
             "| workload | pg store msg/s | log store msg/s | Postfix msg/s | pg / log | "
             "pg CPU µs/msg (incl. PostgreSQL) | log CPU µs/msg | Postfix CPU µs/msg |",
             "|" + "---|" * 8]
    configure_postfix(*pki)
    pg = PgServer()
    try:
        for i, sessions in enumerate((1, 10, 50)):
            n = 300 if quick else 2000
            row = {}
            for kind in ("pg", "log"):
                data = tempfile.mkdtemp(prefix="postern-bench-")
                cfg = mta_config(data)
                if kind == "pg":
                    db = f"bench{i}"
                    pg.create_db(db)
                    with open(cfg, "a") as f:
                        f.write(f'\n[store]\nkind = "postgres"\ndsn = "{pg.dsn(db)}"\n'
                                f'node = "bench"\n')
                server = Server([str(bin_dir / "postern-mta"), "--config", str(cfg), "--data-dir",
                                 data], [POSTERN_SMTP, POSTERN_SUB, POSTERN_TLS])
                pids = (lambda: server.pids() + pg.pids()) if kind == "pg" else server.pids
                try:
                    row[kind] = measure(POSTERN_SMTP, pids, sessions, n, 1024, True,
                                        "postmaster@localhost")
                finally:
                    server.stop()
                    shutil.rmtree(data, ignore_errors=True)
            start_postfix()
            try:
                row["pf"] = measure(POSTFIX_PORT, postfix_pids, sessions, n, 1024, True,
                                    "user@bench.test")
            finally:
                stop_postfix()
            line = (f"| {sessions} sessions, many msgs/session, 1 KiB, {n} msgs | "
                    f"{row['pg']['msgs']:,.0f} | {row['log']['msgs']:,.0f} | "
                    f"{row['pf']['msgs']:,.0f} | {row['pg']['msgs'] / row['log']['msgs']:.2f}× | "
                    f"{row['pg']['cpu_us']:,.0f} | {row['log']['cpu_us']:,.0f} | "
                    f"{row['pf']['cpu_us']:,.0f} |")
            log(line)
            lines.append(line)
    finally:
        pg.stop()
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller counts")
    ap.add_argument("--only", default="durable,discard,maildir,tls,idle,pgstore")
    ap.add_argument("--out", help="also write the tables to this file")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--rounds", type=int, default=2,
                    help="maildir: measurements per side and workload, alternating order")
    ap.add_argument("--settle", type=float, default=10.0,
                    help="maildir: seconds of quiet before each Maildir measurement")
    args = ap.parse_args()
    for tool in ("smtp-source", "smtp-sink", "postfix", "postconf"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run `bash scripts/install-peers.sh` as root first")
    if os.geteuid() != 0:
        sys.exit("run as root: Postfix is configured and started by this script")
    bin_dir = target_dir() / "release" if args.no_build else build()
    pki_dir = Path(tempfile.mkdtemp(prefix="postern-bench-pki-"))
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(pki_dir / "key.pem"),
         "-out", str(pki_dir / "cert.pem")], capture_output=True)
    os.chmod(pki_dir, 0o755)
    pki = (pki_dir / "cert.pem", pki_dir / "key.pem")
    out = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
           f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; "
           f"`python3 benches/e2e/run.py {' '.join(sys.argv[1:])}`.",
           ""]
    sections = args.only.split(",")
    try:
        if "durable" in sections:
            out += section_durable(bin_dir, args.quick, pki) + [""]
        if "discard" in sections:
            out += section_discard(bin_dir, args.quick) + [""]
        if "maildir" in sections:
            out += section_maildir(bin_dir, args.quick, args.rounds, args.settle) + [""]
        if "tls" in sections:
            out += section_tls(bin_dir, args.quick, pki) + [""]
        if "idle" in sections:
            out += section_idle(bin_dir) + [""]
        if "pgstore" in sections:
            out += section_pgstore(bin_dir, args.quick, pki) + [""]
    finally:
        stop_postfix()
    out.append(f"Load average {os.getloadavg()[0]:.1f} at the end "
               f"({time.strftime('%H:%M UTC', time.gmtime())}).")
    text = "\n".join(out)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
