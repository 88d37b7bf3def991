"""A minimal Kafka listener that logs clients in: ApiVersions, SaslHandshake and
SaslAuthenticate (PLAIN, SCRAM-SHA-256/512, RFC 5802 server side), enough for aiokafka to
open a connection. Alone, it answers anything after the login by closing the connection;
with an ``upstream`` broker it is a SASL-terminating proxy: every other request goes to
the broker and back (a client may also skip the login, as on a listener where SASL is
optional), and :attr:`FakeSaslBroker.clients` records, per connection that sent Kafka
requests, its client id and whether it had logged in.

The embedded broker (Tansu 0.6.0) cannot let any SASL login succeed (no user can be
created on a broker that requires authentication), so a successful login is tested
against this. ``refusal`` says how a wrong password is refused: "kafka" as Apache Kafka
does (SaslAuthenticate error 58 with a message), "scram-error" as Tansu does (a final
SCRAM message ``e=...`` with no error code, which aiokafka reads as ``KeyError: 'v'``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import struct
import threading
from dataclasses import dataclass, field

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
ITERATIONS = 4096


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _bytes(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _read_string(body: bytes, at: int) -> tuple[str, int]:
    (size,) = struct.unpack_from(">h", body, at)
    return body[at + 2 : at + 2 + size].decode(), at + 2 + size


@dataclass
class _Scram:
    mechanism: str
    password: str
    first_bare: str = ""
    server_first: str = ""
    nonce: str = ""
    salt: bytes = field(default_factory=lambda: os.urandom(16))

    def first(self, message: str) -> str:
        self.first_bare = message.split(",", 2)[2]  # after the "n,," GS2 header
        client_nonce = dict(p.split("=", 1) for p in self.first_bare.split(","))["r"]
        self.nonce = client_nonce + base64.b64encode(os.urandom(12)).decode()
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={ITERATIONS}"
        return self.server_first

    def final(self, message: str) -> str | None:
        """The server signature if the client's proof is right, else None."""
        without_proof, _, proof = message.rpartition(",p=")
        auth_message = f"{self.first_bare},{self.server_first},{without_proof}".encode()
        digest = HASHES[self.mechanism]
        name = digest().name
        salted = hashlib.pbkdf2_hmac(name, self.password.encode(), self.salt, ITERATIONS)
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        signature = hmac.new(digest(client_key).digest(), auth_message, digest).digest()
        expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        if not hmac.compare_digest(base64.b64decode(proof), expected):
            return None
        server_key = hmac.new(salted, b"Server Key", digest).digest()
        return base64.b64encode(hmac.new(server_key, auth_message, digest).digest()).decode()


class FakeSaslBroker:
    """Runs on its own thread and event loop at 127.0.0.1:`port` while in a ``with``."""

    def __init__(
        self,
        username: str,
        password: str,
        mechanisms: tuple[str, ...],
        refusal: str = "kafka",
        *,
        upstream: tuple[str, int] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.mechanisms = mechanisms
        self.refusal = refusal
        self.upstream = upstream
        self.logins: list[tuple[str, str, bool]] = []  # (mechanism, user, accepted)
        self.clients: list[tuple[str, bool]] = []  # (client id, logged in), with upstream
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeSaslBroker:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        )
        self._server = started.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mechanism = ""
        scram: _Scram | None = None
        forward: asyncio.StreamWriter | None = None
        relay: asyncio.Task | None = None
        recorded = False
        logged_in = False
        if self.upstream is not None:
            from_broker, forward = await asyncio.open_connection(*self.upstream)
            relay = asyncio.create_task(self._relay(from_broker, writer))
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                request = await reader.readexactly(size)
                api_key, _version, correlation = struct.unpack_from(">hhi", request)
                client_id, at = _read_string(request, 8)
                body = request[at:]
                if forward is not None and api_key not in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
                    if api_key != API_VERSIONS and not recorded:
                        self.clients.append((client_id, logged_in))
                        recorded = True
                    forward.write(struct.pack(">i", size) + request)
                    await forward.drain()
                    continue
                if api_key == API_VERSIONS:
                    keys = [(API_VERSIONS, 0, 0), (SASL_HANDSHAKE, 0, 1), (SASL_AUTHENTICATE, 0, 1)]
                    payload = struct.pack(">hi", 0, len(keys)) + b"".join(
                        struct.pack(">hhh", *k) for k in keys
                    )
                elif api_key == SASL_HANDSHAKE:
                    mechanism, _ = _read_string(body, 0)
                    error = 0 if mechanism in self.mechanisms else 33
                    payload = struct.pack(">hi", error, len(self.mechanisms)) + b"".join(
                        _string(m) for m in self.mechanisms
                    )
                    if mechanism in HASHES:
                        scram = _Scram(mechanism, self.password)
                elif api_key == SASL_AUTHENTICATE:
                    (length,) = struct.unpack_from(">i", body)
                    payload, accepted = self._authenticate(
                        mechanism, scram, body[4 : 4 + length].decode()
                    )
                    logged_in = logged_in or accepted
                else:
                    return  # only logins are served
                response = struct.pack(">i", correlation) + payload
                writer.write(struct.pack(">i", len(response)) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            if forward is not None:
                forward.close()
            if relay is not None:
                relay.cancel()

    @staticmethod
    async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """The broker's responses, back to the client a whole frame at a time."""
        try:
            while True:
                size = await source.readexactly(4)
                sink.write(size + await source.readexactly(struct.unpack(">i", size)[0]))
                await sink.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            sink.close()

    def _authenticate(
        self, mechanism: str, scram: _Scram | None, message: str
    ) -> tuple[bytes, bool]:
        """The SaslAuthenticate response, and whether it completes an accepted login."""

        def answer(error: int, text: str | None, data: str) -> bytes:
            return struct.pack(">h", error) + _string(text) + _bytes(data.encode()) + b"\0" * 8

        if mechanism == "PLAIN":
            _, user, password = message.split("\0")
            accepted = user == self.username and password == self.password
            self.logins.append((mechanism, user, accepted))
            return (answer(0, None, "") if accepted else self._refuse(answer)), accepted
        assert scram is not None
        if message.startswith("n,,"):
            return answer(0, None, scram.first(message)), False
        user = dict(p.split("=", 1) for p in scram.first_bare.split(","))["n"]
        signature = scram.final(message) if user == self.username else None
        self.logins.append((mechanism, user, signature is not None))
        if signature is not None:
            return answer(0, None, f"v={signature}"), True
        return self._refuse(answer), False

    def _refuse(self, answer) -> bytes:
        if self.refusal == "scram-error":
            return answer(0, None, "e=invalid-proof")
        return answer(58, "Authentication failed: Invalid username or password", "")
