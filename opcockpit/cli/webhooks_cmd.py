"""`opcockpit webhooks register e2b --url URL | list | delete ID`: E2B's webhook registration.

The signature secret registered is the one `opcockpit serve` verifies with: the
`[webhooks.<provider>]` table's secret (by default the `[webhooks.e2b]` table). It is sent to E2B
once and never printed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from opcockpit.cli.common import EXIT_OK, EXIT_SOURCE, EXIT_USAGE, CliExit, err, load_or_exit
from opcockpit.domain.secrets import redact_url, remember


def run_webhooks(args: Any) -> int:
    try:
        loaded = load_or_exit(args)
    except CliExit as exc:
        return exc.code
    cfg = loaded.config
    provider = getattr(args, "provider", None) or "e2b"
    prov = cfg.providers.get(provider)
    if prov is None or prov.kind != "e2b":
        err(f"opcockpit webhooks: {provider!r} is not a configured e2b provider ([providers.{provider}])")
        return EXIT_USAGE
    from opcockpit.adapters.providers.e2b_webhooks import E2BWebhooks
    from opcockpit.ports.provider import ProviderError

    key = prov.resolve_api_key()
    remember(key)
    client = E2BWebhooks(prov.api_url or "https://api.e2b.app", key, timeout=prov.timeout_s, name=provider)
    try:
        return _run(args, cfg, provider, client)
    except ProviderError as exc:
        err(f"opcockpit webhooks: {exc}")
        return EXIT_SOURCE
    finally:
        client.close()


def _run(args: Any, cfg: Any, provider: str, client: Any) -> int:
    action = args.webhooks_command
    if action == "register":
        sender = cfg.webhooks.get(provider)
        if sender is None or sender.kind != "e2b":
            err(f'opcockpit webhooks: add [webhooks.{provider}] with kind = "e2b" and its secret first')
            return EXIT_USAGE
        secret = sender.resolve_secret()
        if not secret:
            err(f"opcockpit webhooks: webhooks.{provider}: no secret (set {sender.secret_env or 'secret'})")
            return EXIT_USAGE
        remember(secret)
        hook = client.register(args.url, secret, name=getattr(args, "name", None) or "opcockpit")
        print(f"registered {hook.get('id')} -> {redact_url(str(hook.get('url')))}")
        return EXIT_OK
    if action == "list":
        hooks = client.list()
        if getattr(args, "format", "table") == "json":
            json.dump(hooks, sys.stdout, indent=2)
            print()
            return EXIT_OK
        for h in hooks:
            state = "enabled" if h.get("enabled") else "disabled"
            events = ",".join(h.get("events") or [])
            url = redact_url(str(h.get("url")))
            print(f"{h.get('id')}  {state:8}  {url}  {events}")
        if not hooks:
            print("no webhooks registered")
        return EXIT_OK
    client.delete(args.id)
    print(f"deleted {args.id}")
    return EXIT_OK
