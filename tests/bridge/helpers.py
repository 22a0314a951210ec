"""What the bridge tests share: waiting for a condition, reading a JetStream stream back."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import nats

from twinstar.bridge.codec import BridgeMessage, decode_message


async def until(check: Callable[[], bool], what: str, tries: int = 1_500) -> None:
    """Poll `check` (every 20 ms, at most `tries` times) until it holds."""
    for _ in range(tries):
        if check():
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def stream_messages(url: str, stream: str = "TWINSTAR") -> list[tuple[str, str, BridgeMessage]]:
    """Every message in `stream` as (subject, Nats-Msg-Id, decoded message), in stream order."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        found = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await js.get_msg(stream, sequence)
            assert raw.data is not None and raw.subject is not None
            found.append((raw.subject, (raw.headers or {}).get("Nats-Msg-Id", ""), decode_message(raw.data)))
        return found
    finally:
        await client.close()
