"""Loopback SMTP sink for the benchmark (aiosmtpd): accepts every message on 127.0.0.1, keeps none.

Prints its port on the first line of stdout. Each accepted message appends one JSON line
{"rcpt": n, "bytes": n, "subject": s, "message_id": s, "t": unix time} to --log before the 250 reply,
so a client that
got its 250 has been counted. With --probes WORD (the latency benchmark) the line also carries
"probes": the numbers N of every "WORD N" in the message's decoded text parts. Runs until SIGTERM or
SIGINT.
"""

import argparse
import email
import email.policy
import json
import re
import signal
import socket
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, log_path, probe_word=None):
        self.log = open(log_path, "a", buffering=1)
        self.lock = threading.Lock()
        self.probe = re.compile(rf"{re.escape(probe_word)}\s+(\d+)", re.I) if probe_word else None

    def probes(self, data):
        msg = email.message_from_bytes(data, policy=email.policy.default)
        found = set()
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                found.update(int(n) for n in self.probe.findall(part.get_content()))
        return sorted(found)

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content or b""
        subject = message_id = ""
        for line in data.split(b"\r\n", 200):
            low = line.lower()
            if low.startswith(b"subject:") and not subject:
                subject = line[8:].strip().decode("utf-8", "replace")[:120]
            elif low.startswith(b"message-id:") and not message_id:
                message_id = line[11:].strip().decode("utf-8", "replace")[:200]
            if not line:
                break
        line = {"rcpt": len(envelope.rcpt_tos), "bytes": len(data), "subject": subject,
                "message_id": message_id}
        if self.probe:
            line["probes"] = self.probes(data)
        line["t"] = time.time()
        with self.lock:
            self.log.write(json.dumps(line) + "\n")
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--probes", default=None, help="record the numbers after this word (latency bench)")
    a = ap.parse_args()
    port = a.port or free_port()
    ctl = Controller(Sink(a.log, a.probes), hostname="127.0.0.1", port=port, data_size_limit=256 * 1024 * 1024)
    ctl.start()
    print(port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    # Bounded wait in a loop so signals are handled promptly; the harness always stops us.
    while not done.wait(1.0):
        pass
    ctl.stop()


if __name__ == "__main__":
    main()
