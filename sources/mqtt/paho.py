"""The paho client the MQTT source uses: manual acknowledgement, and PUBLISH packets
decoded by :func:`sources.mqtt.packets.decode_publish` instead of paho's decoder.

Why: paho's decoder builds a full MQTT 5 ``Properties`` object per message (it cost
more than the rest of the source together), and it drops the connection on U+FEFF in
a string, which MQTT 5 allows and Mosquitto 2.0.11 forwards; the server then resends
that message first on every reconnect, so nothing behind it would ever arrive. A
PUBLISH that is not valid (invalid UTF-8 from a server that does not validate, an
unknown property) is handed on as :class:`~sources.mqtt.packets.Poison` when its topic
and packet id can be read, to be acknowledged and counted like any refused message;
otherwise as :class:`Broken`, which ends the connection once what came before it is
acknowledged (the source then backs off; see docs/sources.md).

The hook is paho's ``_handle_publish``, a private method (paho 2.x). :func:`new_paho`
checks that it exists and raises a non-retriable :class:`SourceError` otherwise:
without the hook, messages would go to paho's ``on_message``, which the source does not
use, and would never be acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from eventing.errors import SourceError
from sources.mqtt.binding import MqttMessage
from sources.mqtt.packets import Malformed, Poison, decode_publish, read_poison

Incoming = MqttMessage | Poison


@dataclass(frozen=True, slots=True)
class Broken:
    """A PUBLISH without a readable packet id: it cannot be acknowledged, so the
    connection ends once everything received before it has been taken."""

    reason: str


class Paho(paho.Client):
    """paho with its PUBLISH decoding replaced by :func:`decode_publish` (faster, and
    keeps what MQTT allows; see :mod:`sources.mqtt.packets`): each message goes to
    ``on_incoming``, a PUBLISH that cannot be decoded as :class:`Poison`. Only QoS 0
    and 1 arrive: the source subscribes with at most QoS 1."""

    on_incoming: Callable[[Incoming | Broken], None] | None = None
    v5 = True

    def _handle_publish(self) -> MQTTErrorCode:
        packet, deliver = self._in_packet, self.on_incoming
        if deliver is None:
            return super()._handle_publish()
        try:
            deliver(decode_publish(packet["command"], packet["packet"], self.v5))
        except Malformed as exc:
            poison = read_poison(packet["command"], packet["packet"], str(exc))
            deliver(poison if poison is not None else Broken(str(exc)))
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def new_paho(client_id: str, *, v5: bool, clean_session: bool | None) -> paho.Client:
    """A paho client in manual-acknowledgement mode, decoding PUBLISH itself."""
    if "_handle_publish" not in vars(paho.Client):
        raise SourceError(
            "this paho-mqtt has no Client._handle_publish to decode PUBLISH packets "
            "with; the MQTT source supports paho-mqtt 2.x",
            retriable=False,
        )
    client = Paho(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        reconnect_on_failure=False,
        manual_ack=True,
    )
    client.v5 = v5
    return client
