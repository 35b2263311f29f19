#!/usr/bin/python3
"""A real SMTP server for newswatch's tests (Debian's python3-aiosmtpd).

Stores every accepted message as DIR/<n>.eml (written to a temporary name first, then renamed,
so a reader never sees half a message) and prints `PORT <n>` on stdout once it listens on
127.0.0.1. Exits when stdin closes or on SIGTERM.

Fault modes (--fault MODE, applied to the first --fault-count messages, default all):
  451   reply "451 4.3.0 try again later" to DATA
  550   reply "550 5.7.1 rejected" to DATA
  drop  close the connection after receiving DATA, without a reply
  hang  never reply to DATA
  421-greeting  answer each new connection "421 4.3.2 service not available" and close it
  store-hang    store the message, then never reply (the sender cannot know it was accepted)
  slow-final    store the message, then wait --fault-delay seconds before the 250
  no-quit       accept messages, never answer QUIT (each QUIT noted in DIR/QUIT)
Armed faults, for a test that chooses the moment: while DIR/ARM exists, the next DATA takes the
fault it names and removes the file. "hang" never replies (the message is not stored);
"slow-final N" stores it and replies 250 after N seconds. The message as received is written to
DIR/HUNG (hang) or DIR/STALLED (slow-final) first, so the test knows which message is held.
Optional STARTTLS (--tls-cert/--tls-key, then required) and AUTH PLAIN/LOGIN (--auth user:pass);
--port N listens on a chosen port (a server "coming back" where the client expects it).
"""

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult


class Refuse421(asyncio.Protocol):
    """A server that is up but refuses service at the greeting (RFC 5321 §3.8)."""

    def connection_made(self, transport):
        transport.write(b"421 4.3.2 service not available, closing channel\r\n")
        transport.close()


class Sink:
    def __init__(self, directory, fault, fault_count, fault_delay):
        self.directory = directory
        self.fault = fault
        self.fault_left = fault_count
        self.fault_delay = fault_delay
        self.received = 0

    def armed(self, envelope):
        """The fault DIR/ARM names (removed: it applies once), its message noted; else None."""
        arm = os.path.join(self.directory, "ARM")
        try:
            with open(arm) as f:
                words = f.read().split()
            os.remove(arm)
        except FileNotFoundError:
            return None
        mode = words[0] if words else "hang"
        note = os.path.join(self.directory, "HUNG" if mode == "hang" else "STALLED")
        with open(note + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(note + ".tmp", note)
        return (mode, float(words[1]) if len(words) > 1 else 0.0)

    async def handle_DATA(self, server, session, envelope):
        armed = self.armed(envelope)
        if armed is not None and armed[0] == "hang":
            await asyncio.Event().wait()
        if self.fault in ("451", "550", "drop", "hang") and self.fault_left != 0:
            self.fault_left -= 1
            if self.fault == "451":
                return "451 4.3.0 try again later"
            if self.fault == "550":
                return "550 5.7.1 rejected"
            if self.fault == "drop":
                server.transport.close()
                return "421 closing"
            if self.fault == "hang":
                await asyncio.Event().wait()
        self.received += 1
        final = os.path.join(self.directory, "%04d.eml" % self.received)
        tmp = final + ".tmp"
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
        with open(final + ".rcpt", "w") as f:
            f.write("\n".join([envelope.mail_from] + list(envelope.rcpt_tos)))
        if self.fault == "store-hang" and self.fault_left != 0:
            self.fault_left -= 1
            await asyncio.Event().wait()
        if self.fault == "slow-final" and self.fault_left != 0:
            self.fault_left -= 1
            await asyncio.sleep(self.fault_delay)
        if armed is not None and armed[0] == "slow-final":
            await asyncio.sleep(armed[1])
        return "250 2.0.0 stored"


class NoQuit(SMTP):
    """Accepts mail as usual but never answers QUIT (the client must not wait for it). Each QUIT
    received is noted as a line in DIR/QUIT, so a test knows the client is past the 250."""

    async def smtp_QUIT(self, arg):
        with open(os.path.join(self.event_handler.directory, "QUIT"), "a") as f:
            f.write("QUIT\n")
        await asyncio.Event().wait()


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = getattr(auth_data, "login", None) == user.encode() and \
            getattr(auth_data, "password", None) == password.encode()
        # handled=False: aiosmtpd then sends the 535 reply itself.
        return AuthResult(success=ok, handled=False)
    return check


async def main():
    # Tests run AUTH without TLS on loopback on purpose; aiosmtpd's warning about it is noise.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("directory")
    ap.add_argument("--fault", choices=["451", "550", "drop", "hang", "421-greeting", "store-hang",
                                        "slow-final", "no-quit"])
    ap.add_argument("--fault-delay", type=float, default=0.0, help="seconds, for slow-final")
    ap.add_argument("--fault-count", type=int, default=-1)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--auth", help="user:password")
    ap.add_argument("--port", type=int, default=0, help="listen here instead of a free port")
    args = ap.parse_args()
    os.makedirs(args.directory, exist_ok=True)

    handler = Sink(args.directory, args.fault, args.fault_count, args.fault_delay)
    kwargs = {}
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs.update(authenticator=authenticator(user, password), auth_required=True,
                      auth_require_tls=bool(args.tls_cert))

    def protocol():
        # 421-greeting counts connections, not messages: the refusal comes before any DATA.
        if args.fault == "421-greeting" and handler.fault_left != 0:
            handler.fault_left -= 1
            return Refuse421()
        server_class = NoQuit if args.fault == "no-quit" else SMTP
        return server_class(handler, hostname="sink.test", **kwargs)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # The parent holds our stdin; when it goes away (even killed), we go too.
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(4096) else None)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
