"""One module per tab: its view, bindings and handlers (app.py composes them)."""
