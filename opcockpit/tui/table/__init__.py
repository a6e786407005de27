"""The keyed table: a pure model (model.py, no Textual) and a thin line-API widget (widget.py)."""
