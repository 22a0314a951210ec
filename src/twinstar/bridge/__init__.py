"""The opt-in NATS JetStream bridge: kernels on several hosts share events, remote signals, one recorder.

Each kernel keeps its own in-process bus; `[bridge]` in its config adds a
`Bridge` (selected events out to JetStream, through a local outbox, so a
kernel that loses NATS trades on and catches up) and, with `consume`, a
`RemoteEvents` consumer (other kernels' events for this kernel's venues, such
as remote `SignalFired`, onto the local bus). `python -m twinstar record
--nats URL` writes every kernel's events into one ordinary stream file.
nats-py is imported only here, and only once a bridge connects. The package
imports nothing itself: `python -m twinstar --help` names the `record`
command without loading the bridge.
"""
