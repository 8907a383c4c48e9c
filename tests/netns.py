"""Two hosts on one machine, for tests of what a network does to workers on PostgreSQL.

Each host is a network namespace (``ip netns``) with a veth pair to the root namespace, where the
PostgreSQL server of QUEUECTL_TEST_PG runs; each runs its own worker (``ip netns exec``) with its
own QUEUECTL_HOSTNAME and QUEUECTL_HOME, so it judges the other one by heartbeats, as a real
second machine would. The hosts reach the server through an address of their veth: nftables in
the root namespace forwards that address's port to the server on the loopback and makes the
connection come from the loopback, so neither the server's ``listen_addresses`` (a restart)
nor its ``pg_hba.conf`` needs to change.

``Host.cut()`` cuts a host off silently: every packet to and from it is dropped where it enters
either end of its veth (an nftables ``netdev`` ingress hook), with the link left up and no
reset sent, as a lost route or a dead switch port would; ``heal()`` lets them through again.

Everything is named after the PID of the test process (``qctl<PID>…``), so parallel runs do not
meet, and whatever a killed run left behind is removed by the next one. ``Network.down()``
removes the namespaces (and their veths), the nftables tables and the workers, whatever state
the test left them in. Needs root, ``ip`` (iproute2) and ``nft`` (nftables); ``unavailable()``
says why not.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PREFIX = "qctl"
#: The hosts' addresses: one /30 per host (root side .1, host side .2) in a /24 of this range.
SUBNETS = ipaddress.ip_network("10.213.0.0/16")


def _run(*argv: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, input=input, capture_output=True, text=True, check=check, timeout=30
    )


def unavailable(url: str | None) -> str | None:
    """Why two hosts cannot be had here, or None."""
    if not url:
        return "needs a PostgreSQL server: set QUEUECTL_TEST_PG"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux (network namespaces)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"needs the {tool} command (Debian package {package})"
    host = urlsplit(url).hostname or "localhost"
    if host not in ("localhost", "127.0.0.1"):
        return f"reaches a server on this machine's loopback only, not {host}"
    probe = f"{PREFIX}{os.getpid()}probe"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    listed = _run("nft", "list", "tables", check=False)
    if listed.returncode != 0:
        return f"nftables does not work here: {listed.stderr.strip()}"
    return None


class Host:
    """One host: its namespace, veth, addresses, database URL and worker processes."""

    def __init__(self, network: Network, index: int, name: str):
        self.network, self.name = network, name
        tag = f"{PREFIX}{os.getpid()}{chr(ord('a') + index)}"
        self.ns = tag
        self.outside, self.inside = f"{tag}r", f"{tag}n"  # the veth's ends (<= 15 characters)
        base = network.subnet.network_address + 4 * index
        self.gateway, self.address = str(base + 1), str(base + 2)  # root side, host side
        self.home = network.workdir / name
        self.url = network.url_via(self.gateway)
        self.procs: list[subprocess.Popen] = []
        self.is_cut = False

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
        env.update(
            QUEUECTL_DB=self.url,
            QUEUECTL_HOME=str(self.home),
            QUEUECTL_HOSTNAME=self.name,
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def command(self, *argv: str) -> list[str]:
        """``argv`` to run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``queuectl-tui ARGS`` run on this host."""
        return subprocess.run(
            self.command(sys.executable, "-m", "queuectl_tui", *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.network.workdir,
        )

    def start_worker(self, *args: str) -> subprocess.Popen:
        """A foreground worker on this host; its output goes to ``home/worker-N.log``. ``ip
        netns exec`` execs the worker, so the PID is the worker's."""
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / f"worker-{len(self.procs)}.log", "ab")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                self.command(
                    sys.executable, "-m", "queuectl_tui", "worker", "start", "--foreground", *args
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=self.network.workdir,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def log(self) -> str:
        """What this host's workers printed (for a failed assertion's message)."""
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.home.glob("worker-*.log"))
        )

    def cut(self) -> None:
        """Drop every packet to and from this host, silently (see the module docstring)."""
        if self.is_cut:
            return
        self.is_cut = True
        _run("nft", "-f", "-", input=_drop(f"{self.ns}cut", self.outside))
        _run(*self.command("nft", "-f", "-"), input=_drop("cut", self.inside))

    def heal(self) -> None:
        if not self.is_cut:
            return
        _run("nft", "delete", "table", "netdev", f"{self.ns}cut", check=False)
        _run(*self.command("nft", "delete", "table", "netdev", "cut"), check=False)
        self.is_cut = False

    def stop_workers(self) -> None:
        """``worker stop --force`` (SIGUSR1: the running job's tree is killed), then SIGKILL for
        whatever is left of a worker after 5 s."""
        for proc in self.procs:
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGUSR1)
        for proc in self.procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _drop(table: str, device: str) -> str:
    return (
        f"table netdev {table} {{\n chain ingress {{\n"
        f'  type filter hook ingress device "{device}" priority 0; policy drop;\n }}\n}}\n'
    )


class Network:
    """The hosts and the way from them to the server. ``up()`` builds it; ``down()`` takes it
    all away again (also after a half-finished ``up()``)."""

    def __init__(self, url: str, workdir: Path, names: tuple[str, ...] = ("host-a", "host-b")):
        self.url = self.base_url = url  # as this process (in the root namespace) reaches it
        self.workdir = workdir
        parts = urlsplit(url)
        self.server_port = parts.port or 5432
        self.table = f"{PREFIX}{os.getpid()}"
        self.subnet = _free_subnet()
        self.hosts = [Host(self, index, name) for index, name in enumerate(names)]

    def url_via(self, address: str) -> str:
        """The server's URL as a host reaches it (the same user, database and options)."""
        parts = urlsplit(self.base_url)
        netloc = parts.netloc.rpartition("@")
        at = netloc[0] + "@" if netloc[1] else ""
        return urlunsplit(parts._replace(netloc=f"{at}{address}:{self.server_port}"))

    def up(self) -> Network:
        sweep()
        rules = []
        for host in self.hosts:
            _run("ip", "netns", "add", host.ns)
            _run("ip", "link", "add", host.outside, "type", "veth", "peer", "name", host.inside)
            _run("ip", "link", "set", host.inside, "netns", host.ns)
            _run("ip", "addr", "add", f"{host.gateway}/30", "dev", host.outside)
            _run("ip", "link", "set", host.outside, "up")
            _run(*host.command("ip", "addr", "add", f"{host.address}/30", "dev", host.inside))
            _run(*host.command("ip", "link", "set", host.inside, "up"))
            _run(*host.command("ip", "link", "set", "lo", "up"))
            # The server is on the loopback: packets from the veth may be routed there.
            Path(f"/proc/sys/net/ipv4/conf/{host.outside}/route_localnet").write_text("1")
            rules.append((host.outside, host.gateway))
        port = self.server_port
        dnat = "".join(
            f'  iifname "{dev}" ip daddr {gw} tcp dport {port} dnat to 127.0.0.1:{port}\n'
            for dev, gw in rules
        )
        snat = "".join(
            f'  iifname "{dev}" ip daddr 127.0.0.1 tcp dport {port} snat to 127.0.0.1\n'
            for dev, _ in rules
        )
        _run(
            "nft",
            "-f",
            "-",
            input=(
                f"table ip {self.table} {{\n"
                f" chain prerouting {{\n  type nat hook prerouting priority -100;\n{dnat} }}\n"
                f" chain input {{\n  type nat hook input priority 100;\n{snat} }}\n}}\n"
            ),
        )
        return self

    def down(self) -> None:
        for host in self.hosts:
            host.stop_workers()
        _remove(os.getpid())


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUBNETS that no interface here uses, picked by the PID (parallel runs differ)."""
    used = _run("ip", "-o", "-4", "addr", "show", check=False).stdout
    subnets = list(SUBNETS.subnets(new_prefix=24))
    start = os.getpid() % len(subnets)
    for n in range(len(subnets)):
        subnet = subnets[(start + n) % len(subnets)]
        prefix = str(subnet.network_address).rsplit(".", 1)[0] + "."
        if f" {prefix}" not in used:
            return subnet
    raise RuntimeError(f"no free /24 in {SUBNETS}")


def _remove(pid: int) -> None:
    """Whatever a test process ``pid`` made: its namespaces (their veths go with them), root-side
    veths left without one, and its nftables tables."""
    tag = f"{PREFIX}{pid}"
    for ns in _run("ip", "netns", "list", check=False).stdout.split():
        if re.fullmatch(rf"{tag}[a-z]+", ns):
            _run("ip", "netns", "del", ns, check=False)
    for line in _run("ip", "-o", "link", "show", check=False).stdout.splitlines():
        found = re.match(rf"\d+: ({tag}[a-z]+r)[@:]", line)
        if found:
            _run("ip", "link", "del", found.group(1), check=False)
    for line in _run("nft", "list", "tables", check=False).stdout.splitlines():
        family, _, name = line.removeprefix("table ").partition(" ")
        if re.fullmatch(rf"{tag}(?:[a-z]+cut)?", name):
            _run("nft", "delete", "table", family, name, check=False)


def sweep() -> None:
    """Remove what test processes that are gone left behind (a run killed half-way)."""
    names = _run("ip", "netns", "list", check=False).stdout.split()
    names += _run("nft", "list", "tables", check=False).stdout.split()
    pids = {int(found.group(1)) for name in names if (found := re.match(rf"{PREFIX}(\d+)", name))}
    for pid in pids - {os.getpid()}:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _remove(pid)
        except PermissionError:
            pass
