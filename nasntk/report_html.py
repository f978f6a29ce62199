"""The HTML leaderboard: one self-contained page a person wants to open.

Order of the page: the title and the study's configuration, the plots (PNG bytes embedded as
data URIs: history, score vs parameters with the Pareto front, score distributions), the rank-1
cell drawn as SVG for cell spaces, then the table: sortable (click a header; again to reverse),
filterable (a text box matching any cell), each score's header marked with its direction
(▲ higher is better, ▼ lower is better), the spec folded into a collapsible cell. No network:
the CSS and the script are inline. Opening ``page.html#selftest`` makes the script sort and
filter its own table once and record the outcome in ``<body data-selftest=…>`` (the headless
browser test reads it).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from nasntk.tables import format_value

__all__ = ["page"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em 2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.4em}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:13px}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
.plots img{max-width:48%;min-width:420px;border:1px solid #ddd;margin:4px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px}
th{background:#f2f2f2;cursor:pointer;white-space:nowrap;position:sticky;top:0}
th.asc::after{content:" ↑"}th.desc::after{content:" ↓"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.arch{font-family:ui-monospace,monospace;font-size:12px;max-width:34em;word-break:break-all}
tr:nth-child(even){background:#fafafa}tr.hidden{display:none}
details summary{cursor:pointer;color:#1a5fb4}pre{margin:2px 0;font-size:11px;white-space:pre-wrap}
.dir{color:#777;font-weight:normal;font-size:11px}#filter{margin:6px 0;padding:3px;width:22em}
""".strip()

_SCRIPT = r"""
(function(){
  var table=document.getElementById('leaderboard'); if(!table) return;
  var body=table.tBodies[0];
  function cell(row,i){var c=row.cells[i];return c.hasAttribute('data-v')?parseFloat(c.getAttribute('data-v')):c.textContent.trim().toLowerCase();}
  function sortBy(i,th){
    var asc=!th.classList.contains('asc');
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.classList.remove('asc','desc');});
    th.classList.add(asc?'asc':'desc');
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=cell(a,i),y=cell(b,i);
      if(typeof x==='number'&&isNaN(x)) return 1; if(typeof y==='number'&&isNaN(y)) return -1;
      return (x<y?-1:x>y?1:0)*(asc?1:-1);});
    rows.forEach(function(r){body.appendChild(r);});
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
    if(th.getAttribute('data-sort')!=='no') th.addEventListener('click',function(){sortBy(i,th);});});
  var box=document.getElementById('filter');
  function filter(){var q=box.value.trim().toLowerCase();
    Array.prototype.forEach.call(body.rows,function(r){
      r.classList.toggle('hidden',q!==''&&r.textContent.toLowerCase().indexOf(q)<0);});}
  box.addEventListener('input',filter);
  if(location.hash==='#selftest'){
    var out='ok';
    try{
      var heads=table.tHead.rows[0].cells, t=-1;
      for(var i=0;i<heads.length;i++){if(heads[i].getAttribute('data-col')==='trial'){t=i;}}
      heads[t].click();
      var asc=Array.prototype.map.call(body.rows,function(r){return cell(r,t);});
      heads[t].click();
      var desc=Array.prototype.map.call(body.rows,function(r){return cell(r,t);});
      for(var k=1;k<asc.length;k++){if(asc[k-1]>asc[k]||desc[k-1]<desc[k]) out='fail: not sorted';}
      box.value=body.rows[0].cells[t].textContent.trim(); filter();
      var shown=Array.prototype.filter.call(body.rows,function(r){return !r.classList.contains('hidden');});
      if(shown.length<1||shown.length>body.rows.length) out='fail: filter';
      box.value=''; filter();
      document.body.setAttribute('data-sorted',asc.join(','));
    }catch(e){out='fail: '+e;}
    document.body.setAttribute('data-selftest',out);
  }
})();
"""


def _direction_mark(direction: str | None) -> str:
    if direction == "maximize":
        return ' <span class="dir" title="higher is better">▲</span>'
    if direction == "minimize":
        return ' <span class="dir" title="lower is better">▼</span>'
    return ""


def _cell(col: str, value: Any) -> str:
    esc = html.escape
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        klass = ' class="arch"' if col == "arch" else ""
        return f"<td{klass}>{esc(format_value(value))}</td>"
    v = float(value)
    data = repr(v) if math.isfinite(v) else "NaN"
    return f'<td class="num" data-v="{data}">{esc(format_value(value))}</td>'


def page(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None,
    info: Mapping[str, Any] | None = None,
    images: Mapping[str, bytes] | None = None,
    directions: Mapping[str, str] | None = None,
    cells: Sequence[str] = (),
) -> str:
    """The page (module docstring). ``cells``: SVG drawings of the rank-1 cell."""
    esc = html.escape
    title = title or "nasntk leaderboard"
    directions = directions or {}
    cols = [c for c in columns if c != "spec"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if info:
        facts = "".join(
            f"<dt>{esc(str(k))}</dt><dd>{esc(format_value(v))}</dd>" for k, v in info.items()
        )
        parts.append(f'<details open><summary>study configuration</summary><dl class="facts">'
                     f"{facts}</dl></details>")  # fmt: skip
    if images:
        parts.append('<h2>plots</h2><div class="plots">')
        for name, png in images.items():
            data = base64.b64encode(png).decode("ascii")
            label = esc(name.replace("_", " "))
            parts.append(f'<img alt="{label}" title="{label}" src="data:image/png;base64,{data}">')
        parts.append("</div>")
    if cells:
        parts.append('<h2>the rank-1 cell</h2><div class="cells">' + "\n".join(cells) + "</div>")
    parts.append(f"<h2>candidates ({len(rows)})</h2>")
    parts.append('<input id="filter" type="search" placeholder="filter rows (any text)">')
    head = "".join(
        f'<th data-col="{esc(c)}">{esc(c)}{_direction_mark(directions.get(c))}</th>' for c in cols
    )
    has_spec = any("spec" in r for r in rows)
    if has_spec:
        head += '<th data-col="spec" data-sort="no">spec</th>'
    parts.append(f'<table id="leaderboard"><thead><tr>{head}</tr></thead><tbody>')
    for r in rows:
        cells_html = "".join(_cell(c, r.get(c)) for c in cols)
        if has_spec:
            spec = json.dumps(r.get("spec"), sort_keys=True, indent=1)
            cells_html += (
                f"<td><details><summary>spec</summary><pre>{esc(spec)}</pre></details></td>"
            )
        parts.append(f"<tr>{cells_html}</tr>")
    parts.append("</tbody></table>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
