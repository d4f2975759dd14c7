"""GraphQL subscriptions over WebSocket: the ``graphql-transport-ws`` protocol.

    client                                   gateway
    connection_init {payload: {Authorization}} →
                                             ← connection_ack   (or close 4403)
    subscribe {id, payload: {query, ...}}     →
                                             ← next {id, payload} ...
                                             ← error {id, payload: [errors]} | complete {id}
    complete {id}                             →  (stops that subscription)
    ping / pong                               ↔

The token is checked once, in ``connection_init`` (4403 when it does not verify); a
``subscribe`` before the ack closes with 4401, a second ``connection_init`` with 4429, a
reused id with 4409, a malformed message with 4400, and no ``connection_init`` within
``_INIT_TIMEOUT_S`` with 4408 (the protocol's codes). Each operation is measured,
priced and charged like one over HTTP (resolvers/engine.py); a connection holds at most
``_MAX_SUBSCRIPTIONS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gateway.auth import TokenError
from gateway.runtime import Runtime
from gateway.viewer import Viewer
from resolvers.engine import MASKED_MESSAGE, Engine, OperationRefused
from resolvers.errors import is_expected_error

__all__ = ["PROTOCOL", "SubscriptionEndpoint"]

log = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
_INIT_TIMEOUT_S = 3.0
_MAX_SUBSCRIPTIONS = 20
_MAX_MESSAGE_BYTES = 64 * 1024
#: How long a closing connection waits for its subscriptions to stop.
_STOP_TIMEOUT_S = 2.0


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class SubscriptionEndpoint:
    """``/graphql`` for WebSocket upgrades."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        runtime: Runtime = websocket.app.state.runtime
        if PROTOCOL not in websocket.scope.get("subprotocols", []):
            await websocket.close(code=4406, reason=f"Subprotocol not acceptable; use {PROTOCOL}")
            return
        await websocket.accept(subprotocol=PROTOCOL)
        connection = _Connection(websocket, runtime, self.engine)
        try:
            await connection.run()
        except _Close as close:
            # The client hears the close at once; its subscriptions stop after.
            if websocket.application_state is not WebSocketState.DISCONNECTED:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await websocket.close(code=close.code, reason=close.reason)
            await connection.stop_all()
        except WebSocketDisconnect:
            await connection.stop_all()


class _Connection:
    def __init__(self, websocket: WebSocket, runtime: Runtime, engine: Engine) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.engine = engine
        self.viewer: Viewer | None = None
        self.initialised = False
        self.running: dict[str, asyncio.Task[None]] = {}
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_text(orjson.dumps(message).decode())

    async def receive(self) -> dict[str, Any]:
        """The next message, as JSON in a text frame or (as graphql-ws's own server
        takes it) UTF-8 JSON in a binary one."""
        frame = await self.websocket.receive()
        if frame["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(frame.get("code", 1000), frame.get("reason"))
        data: str | bytes = frame["text"] if frame.get("text") is not None else frame["bytes"]
        if len(data) > _MAX_MESSAGE_BYTES:
            raise _Close(4400, "Message too large")
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _Close(4400, "Invalid message received") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise _Close(4400, "Invalid message received")
        return message

    async def run(self) -> None:
        try:
            async with asyncio.timeout(_INIT_TIMEOUT_S):
                first = await self.receive()
        except TimeoutError:
            raise _Close(4408, "Connection initialisation timeout") from None
        if first["type"] != "connection_init":
            raise _Close(4401, "Unauthorized")
        await self.initialise(first)
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "connection_init":
                raise _Close(4429, "Too many initialisation requests")
            if kind == "ping":
                await self.send({"type": "pong"})
            elif kind == "pong":
                continue
            elif kind == "subscribe":
                await self.subscribe(message)
            elif kind == "complete":
                self.stop(message.get("id"))
            else:
                raise _Close(4400, f"Unexpected message type {kind!r}")

    async def initialise(self, message: dict[str, Any]) -> None:
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            raise _Close(4400, "connection_init payload must be an object")
        header = payload.get("Authorization", payload.get("authorization"))
        if header is not None and not isinstance(header, str):
            raise _Close(4400, "Authorization must be a string")
        try:
            self.viewer = await self.runtime.authenticator.authenticate(header)
        except TokenError as exc:
            raise _Close(4403, f"Forbidden: {exc}"[:120]) from None
        self.initialised = True
        await self.send({"type": "connection_ack"})

    async def subscribe(self, message: dict[str, Any]) -> None:
        operation_id = message.get("id")
        payload = message.get("payload")
        if not isinstance(operation_id, str) or not operation_id or not isinstance(payload, dict):
            raise _Close(4400, "subscribe needs an id and a payload")
        if operation_id in self.running:
            raise _Close(4409, f"Subscriber for {operation_id} already exists")
        if len(self.running) >= _MAX_SUBSCRIPTIONS:
            await self.send(
                {
                    "type": "error",
                    "id": operation_id,
                    "payload": [
                        {
                            "message": (
                                f"At most {_MAX_SUBSCRIPTIONS} subscriptions per connection."
                            ),
                            "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"},
                        }
                    ],
                }
            )
            return
        task = asyncio.get_running_loop().create_task(self._follow(operation_id, payload))
        self.running[operation_id] = task
        task.add_done_callback(lambda _: self.running.pop(operation_id, None))

    def stop(self, operation_id: Any) -> None:
        task = self.running.pop(operation_id, None) if isinstance(operation_id, str) else None
        if task is not None:
            task.cancel()

    async def stop_all(self) -> None:
        """Cancel every subscription and wait, a bounded while, for them to finish."""
        tasks = list(self.running.values())
        self.running.clear()
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT_S)
        if stuck:
            log.warning("%d subscriptions did not stop within %.0fs", len(stuck), _STOP_TIMEOUT_S)

    async def _follow(self, operation_id: str, payload: dict[str, Any]) -> None:
        # The HTTP view's, shared: a context per operation, and the audit rule.
        from gateway.graphql_view import record_or_withhold, request_context

        assert self.viewer is not None
        state = self.websocket.scope.get("state", {})
        context = request_context(
            self.runtime,
            self.viewer,
            request_id=state.get("request_id") or uuid.uuid4().hex,
            http_method="WEBSOCKET",
            client_address=self.websocket.client.host if self.websocket.client else "-",
        )
        query, variables = payload.get("query"), payload.get("variables")
        name = payload.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict | None):
            await self._error(operation_id, "BAD_REQUEST", "payload needs a query string")
            return
        if not isinstance(name, str | None):
            await self._error(operation_id, "BAD_REQUEST", "operationName must be a string")
            return
        try:
            outcome = await self.engine.subscribe(query, variables, name, context)
        except OperationRefused as refusal:
            await self._error(operation_id, refusal.code, refusal.message)
            return
        if isinstance(outcome, dict):
            await self.send({"type": "error", "id": operation_id, "payload": outcome["errors"]})
            return
        try:
            async for body in outcome:
                if context.audit:  # an operator's or a scoped client's event: recorded first
                    await record_or_withhold(self.runtime, context.audit, body)
                await self.send({"type": "next", "id": operation_id, "payload": body})
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await _close(outcome)
            raise
        except GraphQLError as error:
            # The source stream refused on its first step (an async generator runs
            # only when first iterated): its denial, with its code.
            shown = error if is_expected_error(error) else GraphQLError(MASKED_MESSAGE)
            await self.send({"type": "error", "id": operation_id, "payload": [shown.formatted]})
            return
        except Exception:
            log.exception("subscription %s failed", operation_id)
            await self._error(operation_id, "INTERNAL_SERVER_ERROR", MASKED_MESSAGE)
            return
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.send({"type": "complete", "id": operation_id})

    async def _error(self, operation_id: str, code: str, message: str) -> None:
        await self.send(
            {
                "type": "error",
                "id": operation_id,
                "payload": [{"message": message, "extensions": {"code": code}}],
            }
        )


async def _close(stream: AsyncIterator[Any]) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        await closer()
