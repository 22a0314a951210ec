"""`python -m twinstar record --nats URL --out FILE`: one recording of every kernel on the bridge."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from twinstar.config import BridgeConfig, Config, ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `record` command's options."""
    parser.add_argument("--nats", required=True, metavar="URL", help="NATS server, e.g. nats://10.0.0.5:4222")
    parser.add_argument("--out", required=True, help="stream file to write (continued after a restart)")
    parser.add_argument(
        "--config", help="config stored in the recording's header, which replay runs (default: built-in)"
    )
    parser.add_argument("--stream", default="TWINSTAR", help="JetStream stream (bridge.stream; default TWINSTAR)")
    parser.add_argument("--prefix", default="twinstar", help="subject prefix (bridge.subject_prefix; default twinstar)")
    parser.add_argument("--durable", default="recorder", help="durable consumer name, one per recorder")


async def run(args: argparse.Namespace) -> int:
    """Record until SIGINT or SIGTERM."""
    from twinstar.bridge.recorder import NatsRecorder

    try:
        Config(bridge=BridgeConfig(url=args.nats)).validate()  # the checks of a kernel's bridge.url
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("bridge.url", "--nats")) from None
    config = Config.load(args.config) if args.config else Config()
    recorder = NatsRecorder(
        args.nats,
        args.out,
        config=config.to_dict(),
        stream=args.stream,
        subjects=f"{args.prefix}.>",
        durable=args.durable,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, recorder.request_stop)
    print(f"twinstar: recording {args.stream} from {args.nats} to {args.out} (Ctrl-C stops)", file=sys.stderr)
    await recorder.run()
    print(f"recorded {recorder.events_written} events to {args.out} (stream sequence {recorder.sequence})")
    return 0
