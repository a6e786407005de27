"""`opcockpit serve [--listen HOST:PORT]`: the provider webhook receiver (Uvicorn, one process).

Binds loopback by default: expose it through a TLS reverse proxy (docs/webhooks.md), never bare.
"""

from __future__ import annotations

from typing import Any

from opcockpit.cli.common import EXIT_OK, EXIT_USAGE, CliExit, err, load_or_exit


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:PORT); ValueError with one line otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen wants HOST:PORT (e.g. 127.0.0.1:8787), got {text!r}")
    return host, int(port)


def run_serve(args: Any) -> int:
    try:
        loaded = load_or_exit(args)
    except CliExit as exc:
        return exc.code
    cfg = loaded.config
    try:
        host, port = parse_listen(getattr(args, "listen", None) or cfg.serve.listen)
    except ValueError as exc:
        err(f"opcockpit serve: {exc}")
        return EXIT_USAGE
    if not cfg.webhooks:
        err("opcockpit serve: no sender configured: add a [webhooks.<provider>] table (docs/webhooks.md)")
        return EXIT_USAGE
    from opcockpit.wiring import build_webhook_receiver

    try:
        receiver = build_webhook_receiver(cfg, ledger_path=getattr(args, "ledger", None))
    except ValueError as exc:
        err(f"opcockpit serve: config error: {exc}")
        return EXIT_USAGE
    for name, sender in sorted(receiver.senders.items()):
        if sender.verifier is None:
            where = cfg.webhooks[name].secret_env or "secret"
            err(f"opcockpit serve: webhooks.{name}: no secret (set {where}); its deliveries are refused")
    import uvicorn

    names = ", ".join(f"/webhooks/{n} ({s.kind})" for n, s in sorted(receiver.senders.items()))
    err(f"opcockpit serve: listening on http://{host}:{port}: {names}")
    config = uvicorn.Config(
        receiver.app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        server_header=False, proxy_headers=True, forwarded_allow_ips="127.0.0.1",
    )  # fmt: skip
    uvicorn.Server(config).run()
    return EXIT_OK
