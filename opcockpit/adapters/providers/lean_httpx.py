"""`from opcockpit.adapters.providers.lean_httpx import httpx`: httpx, without its command-line client.

httpx's package init also imports its command-line client (`httpx._main`: click, pygments,
rich.syntax, rich.progress) whenever click is installed, and uvicorn (`opcockpit serve`) brings
click. The cockpit never runs that client: keeping it out saves ~60 ms of every start-up that
talks to a provider and ~6 MB of every such process (issues 9 and 10). httpx already falls back
to a stub `main` when that import fails; the marker that fails it is removed right after, so an
explicit `import httpx._main` elsewhere still works.
"""

import sys

if "httpx" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]  # `import httpx._main` -> ImportError
    try:
        import httpx
    finally:
        if sys.modules.get("httpx._main", False) is None:
            del sys.modules["httpx._main"]
else:
    import httpx

__all__ = ["httpx"]
