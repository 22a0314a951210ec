"""Candle files on disk: the schema, where files live, flush pieces and their compaction.

The component that fills them is `twinstar.handlers.storage.CandleStorage`.
Its modules import nothing of twinstar but `twinstar.atomic` and each other,
so the compaction child process starts without loading the exchange adapters.
"""
