"""The status page: a small HTML document, readable on a phone, that refreshes itself live.

The server renders the tables (`render_live`) into the page, so the page
shows the status without JavaScript; a short script then follows the
server-sent event stream (`/api/stream?format=html`), whose every message is
the same fragment rendered again, and posts the pause / resume / flatten
commands. The bearer token comes from the page's own `?token=` and goes out
in the Authorization header.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape
from typing import Final

from twinstar.control.status import Status
from twinstar.live_log import num


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _pnl(value: float) -> str:
    return f'<span class="{"up" if value >= 0 else "down"}">{value:+,.2f}</span>'


def _table(name: str, title: str, head: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]]) -> str:
    """A titled table; each row is (its data-key, cells already escaped), with an empty note when none."""
    body = "".join(
        f'<tr data-{name}="{escape(key)}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
        for key, cells in rows
    )
    if not body:
        body = f'<tr class="none"><td colspan="{len(head)}">none</td></tr>'
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<section><h2>{escape(title)}</h2><table id="{name}s"><tr>{header}</tr>{body}</table></section>'


def render_live(status: Status) -> str:
    """The live part of the page: state, venues, feeds, positions, orders and recent activity."""
    e = escape
    state = f"entries {e(status.entries)}" + (f": {e(status.entries_reason)}" if status.entries_reason else "")
    parts = [
        f'<p id="state" class="{e(status.entries)}">kernel {e(status.kernel)} &middot; {state} '
        f"&middot; {_time(status.time_ms)} UTC</p>"
    ]
    parts.append(
        _table(
            "venue",
            "Venues",
            ("venue", "balance", "equity", "PnL today", "clock", "rate limit", "reconciliation"),
            (
                (
                    v.exchange,
                    (
                        e(v.exchange),
                        f"{num(v.balance_total)} {e(v.currency)}" if v.currency else e(v.read_error or "-"),
                        num(v.equity) if v.currency else "-",
                        _pnl(v.realised_pnl_today),
                        f"{v.clock_offset_ms:+,.1f} ms",
                        f"{v.rate_limit_used:,.0f} / {v.rate_limit_capacity:,.0f}" if v.rate_limit_capacity else "-",
                        e(v.reconciliation or "-"),
                    ),
                )
                for v in status.venues
            ),
        )
    )
    parts.append(
        _table(
            "feed",
            "Feeds",
            ("feed", "health", "candles", "last candle", "close", "lag", "reconnects"),
            (
                (
                    f"{f.exchange} {f.symbol} {f.interval}",
                    (
                        e(f"{f.exchange} {f.symbol} {f.interval}"),
                        f'<span class="{e(f.health)}">{e(f.health)}</span>'
                        + (f" <small>{e(f.detail)}</small>" if f.detail else ""),
                        f"{f.candles:,}" + (f" ({f.late_candles:,} late)" if f.late_candles else ""),
                        _time(f.last_open_time_ms),
                        num(f.last_close) if f.candles else "-",
                        f"{f.lag_ms / 1000:,.1f} s" if f.candles else "-",
                        str(f.reconnects),
                    ),
                )
                for f in status.feeds
            ),
        )
    )
    parts.append(
        _table(
            "position",
            "Positions",
            ("position", "side", "size", "entry", "stop", "mark", "open PnL", ""),
            (
                (
                    f"{p.exchange} {p.symbol}",
                    (
                        e(f"{p.exchange} {p.symbol}"),
                        e(p.side),
                        num(p.qty),
                        num(p.entry_price),
                        num(p.stop_price) if p.stop_price else '<span class="down">none</span>',
                        num(p.mark_price),
                        _pnl(p.unrealised_pnl),
                        f'<button data-flatten="{e(p.exchange)}" data-symbol="{e(p.symbol)}">flatten</button>',
                    ),
                )
                for p in status.positions
            ),
        )
    )
    parts.append(
        _table(
            "order",
            "Open orders",
            ("order", "symbol", "side", "size", "stop"),
            (
                (
                    o.client_order_id,
                    (
                        e(o.client_order_id or "-"),
                        e(f"{o.exchange} {o.symbol}"),
                        e(o.side),
                        num(o.qty),
                        num(o.stop_price) if o.stop_price else "-",
                    ),
                )
                for o in status.orders
            ),
        )
    )
    recent = "".join(
        f'<li class="{e(line.level.lower())}">{_time(line.time_ms)[11:]} {e(line.text)}</li>'
        for line in reversed(status.recent)
    )
    parts.append(f'<section><h2>Recent</h2><ul id="recent">{recent}</ul></section>')
    return "".join(parts)


_STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:8px;background:#fafafa;color:#222}
h1{font-size:18px;margin:4px 0}h2{font-size:15px;margin:14px 0 4px}
section{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:4px 6px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
.up{color:#070}.down,.stopped,.error,.critical{color:#b00}.degraded,.lagging,.warning{color:#a60}.ok{color:#070}
#state{padding:6px;background:#eef}#state.paused,#state.blocked{background:#fdd}
#controls button,td button{font-size:14px;padding:6px 10px;margin:2px}
#recent{padding-left:18px;font-size:13px;max-height:300px;overflow-y:auto}
#conn{font-size:12px;color:#888}
@media (max-width:600px){th,td{white-space:normal;padding:3px 4px;font-size:13px}}
"""

_SCRIPT: Final = """
const token = new URLSearchParams(location.search).get("token") || "";
const headers = token ? {Authorization: "Bearer " + token} : {};
const conn = document.getElementById("conn");
async function command(path, body) {
  const reply = await fetch(path, {method: "POST", headers: {...headers, "Content-Type": "application/json"},
                                   body: JSON.stringify(body || {})});
  if (!reply.ok) alert(path + ": " + (await reply.text()));
}
document.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.id === "pause") command("/api/pause", {reason: "from the status page"});
  else if (button.id === "resume") command("/api/resume");
  else if (button.id === "flatten-all") { if (confirm("Close every position at market?")) command("/api/flatten"); }
  else if (button.dataset.flatten !== undefined) {
    const symbol = button.dataset.symbol;
    if (confirm("Close " + symbol + " at market?")) command("/api/flatten", {exchange: button.dataset.flatten, symbol});
  }
});
async function follow() {
  for (;;) {
    try {
      const reply = await fetch("/api/stream?format=html", {headers});
      const reader = reply.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      conn.textContent = "live";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        let end;
        while ((end = buffer.indexOf("\\n\\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message.split("\\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("");
          if (data) document.getElementById("live").innerHTML = JSON.parse(data).html;
        }
      }
    } catch (error) { /* the kernel went away: try again below */ }
    conn.textContent = "reconnecting...";
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
follow();
"""


def render_page(status: Status) -> str:
    """The whole status page, with the live part rendered in."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>TwinStar status</title><style>{_STYLE}</style></head><body>"
        '<h1>TwinStar <span id="conn">loading...</span></h1>'
        '<div id="controls"><button id="pause">pause entries</button><button id="resume">resume</button>'
        '<button id="flatten-all">flatten all</button></div>'
        f'<div id="live">{render_live(status)}</div>'
        f"<script>{_SCRIPT}</script></body></html>"
    )
