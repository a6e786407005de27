"""KeyedTable's rendering (a mixin of widget.KeyedTable): the line API over the model's view.

Only visible lines are rendered (`render_line`), from a per-row Strip cache stamped with the row
version, cursor, mark and flash state, so unchanged rows reuse their strip across refreshes; the
pinned key column stays put while the others scroll sideways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.strip import Strip

from opcockpit.domain.tablediff import Cells
from opcockpit.tui.table.model import Align, Column, TableModel

if TYPE_CHECKING:
    from textual.scroll_view import ScrollView

    _Base = ScrollView
else:
    _Base = object

GUTTER = 1  # leading cell per row: "*" marked, ">" cursor

__all__ = ["GUTTER", "TableRender", "fit"]


class TableRender(_Base):
    """render_line and the strips behind it (see the module docstring)."""

    model: TableModel
    empty_text: str
    strips_rendered: int
    _strips: LRUCache[str, tuple[tuple[Any, ...], Strip]]
    _header: Strip | None
    _row_tag: Callable[[Cells], str | None] | None
    _disp: tuple[int, ...]
    _total_width: int
    _pin_w: int

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.model.columns

    def _style(self, name: str) -> Style:
        raise NotImplementedError  # widget.KeyedTable's (memoized component styles)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x, scroll_y = self.scroll_offset
        base = self.rich_style
        if y == 0:
            strip = self._header_strip()
        else:
            index = scroll_y + y - 1
            model = self.model
            if index < model.view_count:
                strip = self._row_strip(model.view_key(index))
            elif index == 0:
                text = self.empty_text
                if model.filter_expr:
                    text = f"no rows match filter {model.filter_expr!r}"
                strip = Strip([Segment(" " + text, base + self._style("empty"))])
            else:
                return Strip.blank(width, base)
        return self._visible_part(strip, scroll_x, width, base, header=y == 0)

    def _visible_part(self, strip: Strip, scroll_x: int, width: int, base: Style, *, header: bool) -> Strip:
        """The pinned cells, then the scrolled columns; the header shows ◂ ▸ where more columns are."""
        pin = min(self._pin_w, width)
        if scroll_x == 0 or pin <= 0:
            out = strip.crop_extend(scroll_x, scroll_x + width, base)
        else:
            out = Strip.join(
                [strip.crop_extend(0, pin, base), strip.crop_extend(pin + scroll_x, scroll_x + width, base)]
            )
        if header and width > 2:
            style = self.rich_style + self._style("header")
            if scroll_x > 0:
                out = Strip.join([Strip([Segment("◂", style)], 1), out.crop(1, width)])
            if self._total_width > scroll_x + width:
                out = Strip.join([out.crop(0, width - 1), Strip([Segment("▸", style)], 1)])
        return out

    def _header_strip(self) -> Strip:
        if self._header is None:
            base = self.rich_style + self._style("header")
            sorted_style = self.rich_style + self._style("header-sorted")
            sort_col, reverse = self.model.sort_index, self.model.sort_reverse
            segs: list[Segment] = [Segment(" " * GUTTER, base)]
            columns = self.columns
            for i in self._disp:
                c = columns[i]
                label = c.label
                style = base
                if i == sort_col:
                    label = f"{label}{'▼' if reverse else '▲'}"
                    style = sorted_style
                segs.append(Segment(fit(label, c.width, c.align), style))
                segs.append(Segment(" ", base))
            self._header = Strip(segs, self._total_width)
        return self._header

    def _row_strip(self, key: str) -> Strip:
        model = self.model
        version = model.row_version(key)
        flash_cols = model.flashing(key)
        is_cursor = key == model.cursor_key
        is_marked = model.is_marked(key)
        stamp = (version, is_cursor, is_marked, bool(flash_cols))
        hit = self._strips.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        self.strips_rendered += 1
        style = self.rich_style
        tag = self._row_tag(model.get_row(key)) if self._row_tag else None
        if tag:
            style = style + self._style(tag)
        if is_marked:
            style = style + self._style("marked")
        if is_cursor:
            style = style + self._style("cursor")
        changed_style = style + self._style("changed") if flash_cols else style
        # The gutter carries state as glyphs too, so it survives NO_COLOR: marked, cursor.
        gutter = "*" if is_marked else (">" if is_cursor else " ")
        segs: list[Segment] = [Segment(gutter, style)]
        texts = model.get_texts(key)
        columns = self.columns
        for i in self._disp:
            c = columns[i]
            text = texts[i] if i < len(texts) else ""
            segs.append(Segment(fit(text, c.width, c.align), changed_style if i in flash_cols else style))
            segs.append(Segment(" ", style))
        strip = Strip(segs, self._total_width)
        if hit is not None:
            self._strips.discard(key)  # textual's LRUCache.set never overwrites an existing key
        self._strips[key] = (stamp, strip)
        return strip


def fit(text: str, width: int, align: Align) -> str:
    """Pad or truncate (with an ellipsis) to exactly `width` cells."""
    n = cell_len(text)
    if n > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    if n == width:
        return text
    pad = width - n
    if align == "right":
        return " " * pad + text
    if align == "center":
        left = pad // 2
        return " " * left + text + " " * (pad - left)
    return text + " " * pad
