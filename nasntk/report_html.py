"""The HTML leaderboard: one self-contained page a person wants to open.

Order of the page: the title and the study's configuration, the plots (PNG bytes embedded as
data URIs: history, score vs parameters with the Pareto front, score distributions), the rank-1
cell drawn as SVG for cell spaces, then the table (``page.html#candidates`` opens there). The
table shows the columns a user reads first (rank, trial, arch, the objectives, params, FLOPs:
:func:`nasntk.columns.first`) and puts the other scores behind a "more columns" toggle (pure
CSS); it is sortable (click a header; again to reverse), filterable (a text box matching any
cell), each score's header marked with its direction (▲ higher is better, ▼ lower is better),
the spec folded into a collapsible cell. ``arch`` is monospace and wraps only after the text
form's own separators; numbers are right-aligned, tabular and compact (the exact value in the
cell's tooltip). The table scrolls in its own box (sideways, and down under a sticky header), so
the page itself never scrolls sideways. No network: the CSS and the script are inline.

Hooks for the headless browser test: ``page.html#selftest`` makes the script sort, filter and
toggle its own table once and record the outcome in ``<body data-selftest=…>``;
``page.html#layouttest`` records the table's layout in ``<body data-…>`` attributes (the tallest
row and the text line in px, the ``arch`` column's characters per line, the rows within the
first screen from the table's top, the table's top in the document, the document's and the
window's widths; ``data-more-…`` the same with every column shown).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nasntk.tables import format_compact, format_value

__all__ = ["page"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em 2em;color:#222}
h1{font-size:1.4em;overflow-wrap:anywhere}h2{font-size:1.1em;margin-top:1.4em}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:13px}
dl.facts dt{font-weight:600}dl.facts dd{margin:0;overflow-wrap:anywhere}
.plots img{max-width:48%;min-width:min(420px,100%);border:1px solid #ddd;margin:4px}
.cells{overflow-x:auto}
.tablewrap{overflow:auto;max-height:calc(100vh - 12px);width:fit-content;max-width:100%;
border:1px solid #ccc}
table{border-collapse:separate;border-spacing:0;font-size:13px;line-height:1.35}
th,td{border-right:1px solid #ddd;border-bottom:1px solid #ddd;padding:3px 6px;vertical-align:top}
th{background:#f2f2f2;cursor:pointer;position:sticky;top:0;z-index:1;vertical-align:bottom;
text-align:left;font-weight:600}
th.num{text-align:right}
th.asc::after{content:" ↑"}th.desc::after{content:" ↓"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.arch{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
td.arch div{min-width:42ch;max-width:96ch}td.arch span{white-space:nowrap}
tr:nth-child(even){background:#fafafa}tr.hidden{display:none}
#more-columns:not(:checked)~.tablewrap .more{display:none}
.board{margin:6px 0}label.more-toggle{font-size:13px;margin-left:4px;cursor:pointer}
details summary{cursor:pointer;color:#1a5fb4;white-space:nowrap}pre{margin:2px 0;font-size:11px;white-space:pre-wrap}
.dir{color:#777;font-weight:normal;font-size:11px}#filter{margin:6px 8px 6px 0;padding:3px;width:22em;
max-width:100%}
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
  var more=document.getElementById('more-columns');
  function shown(el){return el.getBoundingClientRect().width>0;}
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
      var visible=Array.prototype.filter.call(body.rows,function(r){return !r.classList.contains('hidden');});
      if(visible.length<1||visible.length>body.rows.length) out='fail: filter';
      box.value=''; filter();
      var extra=table.querySelector('th.more');
      if(more&&extra){
        if(shown(extra)) out='fail: more columns shown before the toggle';
        more.click(); if(!shown(extra)) out='fail: the toggle shows no more columns';
        more.click(); if(shown(extra)) out='fail: the toggle does not hide them again';
        document.body.setAttribute('data-more',String(table.querySelectorAll('th.more').length));
      }
      document.body.setAttribute('data-sorted',asc.join(','));
    }catch(e){out='fail: '+e;}
    document.body.setAttribute('data-selftest',out);
  }
  function probe(parent,text){var d=document.createElement('div');d.textContent=text;
    d.style.cssText='white-space:nowrap;display:inline-block;min-width:0;max-width:none';
    parent.appendChild(d);var r=d.getBoundingClientRect();parent.removeChild(d);return r;}
  function measure(prefix){
    var rows=Array.prototype.filter.call(body.rows,function(r){return !r.classList.contains('hidden');});
    var top=table.getBoundingClientRect().top, tall=0, first=0;
    rows.forEach(function(r){var b=r.getBoundingClientRect();tall=Math.max(tall,b.height);
      if(b.bottom-top<=window.innerHeight) first++;});
    var arch=table.querySelector('td.arch div'), num=table.querySelector('td.num');
    var line=Math.max(probe(arch,'0').height,num?probe(num,'0').height:0);
    var td=getComputedStyle(arch.parentNode);
    var pad=['paddingTop','paddingBottom','borderTopWidth','borderBottomWidth'].reduce(function(s,k){return s+parseFloat(td[k]);},0);
    var chars=arch.getBoundingClientRect().width/(probe(arch,'0000000000').width/10);
    var m={'table-top':top+window.scrollY,'row-max':tall,'line':line,'pad':pad,'arch-chars':chars,'first-screen':first,
      'scroll-width':document.documentElement.scrollWidth,'inner-width':window.innerWidth};
    for(var k in m) document.body.setAttribute('data-'+prefix+k,String(Math.round(m[k]*10)/10));
  }
  if(location.hash==='#layouttest'){
    try{
      measure('');
      if(more){more.click();measure('more-');more.click();}
      document.body.setAttribute('data-layouttest','ok');
    }catch(e){document.body.setAttribute('data-layouttest','fail: '+e);}
  }
})();
"""


def _direction_mark(direction: str | None) -> str:
    if direction == "maximize":
        return '&nbsp;<span class="dir" title="higher is better">▲</span>'
    if direction == "minimize":
        return '&nbsp;<span class="dir" title="lower is better">▼</span>'
    return ""


#: Runs of the characters that separate the parts of a space's text form (NB201's ``|`` and
#: ``|+|``, NB101's and the family spaces' ``,``, DARTS's ``, ``): the arch cell wraps only there.
_SEPARATORS = re.compile(r"[^|+,;\s]+[|+,;\s]*|[|+,;\s]+")


def _arch(text: str) -> str:
    """The ``arch`` cell: monospace pieces that never break inside, a break opportunity after
    each run of separators (``<wbr>``)."""
    pieces = _SEPARATORS.findall(text)
    body = "<wbr>".join(f"<span>{html.escape(p)}</span>" for p in pieces)
    return f'<td class="arch"><div title="{html.escape(text)}">{body}</div></td>'


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(col: str, value: Any, klass: str = "") -> str:
    esc = html.escape
    if col == "arch" and isinstance(value, str):
        return _arch(value)
    if not _numeric(value):
        attr = f' class="{klass}"' if klass else ""
        return f"<td{attr}>{esc(format_value(value))}</td>"
    v = float(value)
    data = repr(v) if math.isfinite(v) else "NaN"
    text, full = format_compact(value), format_value(value)
    title = f' title="{esc(full)}"' if full != text else ""
    return f'<td class="{" ".join(["num", klass]).strip()}" data-v="{data}"{title}>{esc(text)}</td>'


def _header(col: str, direction: str | None, klass: str) -> str:
    """A column's header: its name, breakable after each ``_``, and its direction mark."""
    label = "_<wbr>".join(html.escape(part) for part in col.split("_"))
    attr = f' class="{klass}"' if klass else ""
    return f'<th data-col="{html.escape(col)}"{attr}>{label}{_direction_mark(direction)}</th>'


def _table(
    rows: Sequence[Mapping[str, Any]],
    cols: Sequence[str],
    directions: Mapping[str, str],
    primary: Sequence[str] | None,
) -> list[str]:
    """The filter box, the "more columns" toggle (when ``primary`` leaves columns out) and the
    table, in its own horizontally scrolling box."""
    more = [c for c in cols if primary is not None and c not in primary]
    numeric = {c for c in cols if any(_numeric(r.get(c)) for r in rows)}

    def klass(c: str) -> str:
        return " ".join(k for k, on in (("num", c in numeric), ("more", c in more)) if on)

    parts = ['<div class="board">',
             '<input id="filter" type="search" placeholder="filter rows (any text)">']  # fmt: skip
    if more:
        names = ", ".join(more[:4]) + (", …" if len(more) > 4 else "")
        parts.append(f'<input type="checkbox" id="more-columns"><label class="more-toggle" '
                     f'for="more-columns">{len(more)} more columns ({html.escape(names)})</label>')  # fmt: skip
    head = "".join(_header(c, directions.get(c), klass(c)) for c in cols)
    has_spec = any("spec" in r for r in rows)
    if has_spec:
        head += '<th data-col="spec" data-sort="no">spec</th>'
    parts.append(f'<div class="tablewrap"><table id="leaderboard"><thead><tr>{head}</tr></thead>'
                 "<tbody>")  # fmt: skip
    for r in rows:
        cells_html = "".join(_cell(c, r.get(c), "more" if c in more else "") for c in cols)
        if has_spec:
            spec = json.dumps(r.get("spec"), sort_keys=True, indent=1)
            cells_html += (
                f"<td><details><summary>spec</summary><pre>{html.escape(spec)}</pre></details></td>"
            )
        parts.append(f"<tr>{cells_html}</tr>")
    parts.append("</tbody></table></div></div>")
    return parts


def page(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None,
    info: Mapping[str, Any] | None = None,
    images: Mapping[str, bytes] | None = None,
    directions: Mapping[str, str] | None = None,
    cells: Sequence[str] = (),
    primary: Sequence[str] | None = None,
) -> str:
    """The page (module docstring). ``cells``: SVG drawings of the rank-1 cell. ``primary``:
    the columns shown at first (the others behind the "more columns" toggle); ``None``: all."""
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
    parts.append(f'<h2 id="candidates">candidates ({len(rows)})</h2>')
    parts.extend(_table(rows, cols, directions, primary))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
