"""A single-node Apache Kafka (KRaft) broker from Maven Central jars, run with the machine's Java.

The jars are resolved once by Maven from `deploy/kafka/pom.xml` into the cache directory
(outside the repository) and reused. Starting is idempotent: a broker already running on
the same data directory is reused; readiness is awaited with a real metadata request.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.processes import cache_dir, pid_alive, port_open, read_pid, stop_pid

POM = Path(__file__).resolve().parent.parent / "kafka" / "pom.xml"
LOG4J_CONFIG = Path(__file__).resolve().parent.parent / "kafka" / "log4j2.properties"


def kafka_version() -> str:
    text = POM.read_text()
    return text.split("<kafka.version>")[1].split("</kafka.version>")[0].strip()


def ensure_jars() -> Path:
    """Download the broker and its runtime dependencies once; returns the jar directory."""
    libs = cache_dir() / f"kafka-{kafka_version()}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch the Kafka jars from Maven Central")
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
        check=True,
    )
    marker.write_text(kafka_version())
    return libs


@dataclass
class KafkaBroker:
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and pid_alive(pid) else None

    def _write_config(self) -> Path:
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data_dir / 'logs'}",
                    "num.partitions=6",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=6",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )
        return config

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker unless it already runs; return once it answers metadata requests."""
        if self.pid() is not None:
            self.wait_ready(timeout)
            return
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is taken by something that is not our broker")
        libs = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        classpath = f"{libs}/*"
        java = shutil.which("java") or "java"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            subprocess.run(
                [java, "-cp", classpath, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                 f"-Dkafka.logs.dir={self.data_dir}", "kafka.tools.StorageTool", "format",
                 "-t", str(uuid.uuid4()).replace("-", "")[:22], "-c", str(config), "--standalone"],
                check=True,
                capture_output=True,
            )
        with open(self.data_dir / "broker.out", "ab") as out:
            process = subprocess.Popen(
                [java, f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                 "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                 f"-Dkafka.logs.dir={self.data_dir}", "-cp", classpath,
                 "kafka.Kafka", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal goes to us, and we stop it in order
            )
        self.pid_file.write_text(str(process.pid))
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise RuntimeError(f"Kafka exited during start; see {self.log_file}")
            if port_open("127.0.0.1", self.port):
                try:
                    asyncio.run(_list_topics(self.bootstrap_servers))
                    return
                except Exception as exc:
                    last_error = exc
            time.sleep(0.2)
        raise TimeoutError(f"Kafka was not ready after {timeout}s: {last_error}; see {self.log_file}")

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            stop_pid(pid, timeout=60)
        self.pid_file.unlink(missing_ok=True)


async def _list_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
