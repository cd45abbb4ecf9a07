"""The control plane's MQTT link when the broker is away: a command paho keeps for the reconnection is queued (and the
log says so), one past paho's queue is dropped (and the log says that, and that the engine sends it again)."""

from __future__ import annotations

import logging
import time

from edgeslm.agent.protocol import PROTOCOL_VERSION, Command
from edgeslm.fleet.link import DeviceLink, LinkConfig
from edgeslm.fleet.registry import Registry, RegistryConfig


def _command(n: int) -> Command:
    return Command(v=PROTOCOL_VERSION, id=f"cmd-{n}", action="report", issued_at=time.time())


def test_a_command_sent_while_the_broker_is_away_is_queued_and_one_past_the_queue_is_dropped(tmp_path, caplog) -> None:
    registry = Registry.open(RegistryConfig(db=str(tmp_path / "r.sqlite"), store=str(tmp_path / "store")))
    try:
        link = DeviceLink(registry, LinkConfig(broker_host="127.0.0.1", broker_port=1, max_queued_messages=1), "pw")
        with caplog.at_level(logging.DEBUG, logger="edgeslm.fleet.link"):
            assert link.send("dev-a", _command(1)) is True  # never connected: paho holds it for the connection
            assert link.send("dev-a", _command(2)) is False  # paho's queue (1) is full
        queued, dropped = [r for r in caplog.records if "cmd-1" in r.getMessage()], \
            [r for r in caplog.records if "cmd-2" in r.getMessage()]
        assert [r.levelno for r in queued] == [logging.DEBUG] and "queued until the broker is back" in queued[0].getMessage()
        assert [r.levelno for r in dropped] == [logging.WARNING] and "dropped" in dropped[0].getMessage()
        assert "resend_s" in dropped[0].getMessage()
    finally:
        registry.close()
