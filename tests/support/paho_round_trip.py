"""Paho MQTT round trip against a Skerry node, run by tests/broker_interop.rs.

usage: paho_round_trip.py HOST PORT 5|311

A subscriber takes paho/VER/# at QoS 2. A publisher sends one QoS 2 message
(v5: with a user property). A third client connects with a QoS 2 will and
drops its socket without DISCONNECT, so the broker must publish the will.
Prints one JSON object with what the subscriber received; exits 1 when
something did not happen in time.
"""

import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WAIT = 10


def main():
    host, port, ver = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    v5 = ver == "5"
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    base = f"paho/{ver}"
    received, subscribed, done = [], threading.Event(), threading.Event()
    result = {"received": received}

    def client(cid):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=proto)

    def on_connect(c, _userdata, _flags, reason, _props):
        result["sub_connack"] = str(reason)
        c.subscribe(f"{base}/#", qos=2)

    def on_subscribe(_c, _userdata, _mid, reasons, _props):
        result["granted"] = [r.value for r in reasons]
        subscribed.set()

    def on_message(_c, _userdata, msg):
        users = getattr(msg.properties, "UserProperty", []) if msg.properties else []
        received.append(
            {"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos, "user": [list(p) for p in users]}
        )
        if len(received) >= 2:
            done.set()

    sub = client(f"paho-sub-{ver}")
    sub.on_connect, sub.on_subscribe, sub.on_message = on_connect, on_subscribe, on_message
    sub.connect(host, port, 30)
    sub.loop_start()
    if not subscribed.wait(WAIT):
        return finish(result, "subscriber never got SUBACK")

    pub = client(f"paho-pub-{ver}")
    pub.connect(host, port, 30)
    pub.loop_start()
    props = None
    if v5:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("origin", "paho")
    info = pub.publish(f"{base}/data", "hello", qos=2, properties=props)
    info.wait_for_publish(WAIT)
    result["published"] = info.is_published()

    will = client(f"paho-will-{ver}")
    will_props = None
    if v5:
        will_props = Properties(PacketTypes.WILLMESSAGE)
        will_props.UserProperty = ("why", "dropped")
    will.will_set(f"{base}/will", "gone", qos=2, retain=False, properties=will_props)
    will.connect(host, port, 30)
    for _ in range(WAIT * 10):
        if will.is_connected():
            break
        will.loop(0.1)
    result["will_connected"] = will.is_connected()
    # No DISCONNECT: the connection just ends, so the will must go out.
    will.socket().close()

    if not done.wait(WAIT):
        return finish(result, "subscriber did not get both messages")
    pub.disconnect()
    pub.loop_stop()
    sub.disconnect()
    sub.loop_stop()
    return finish(result, None)


def finish(result, error):
    result["error"] = error
    print(json.dumps(result))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
