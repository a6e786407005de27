"""The one place that decides what a secret looks like and how it is shown.

- `redact(value)`: a key shown so keys can be told apart, never used: 'e2b_…7f' or '***'.
- `is_secret_name(name)` / `redact_mapping(m)`: by key name (headers, query params, env vars):
  authorization, token, secret, password, api_key, key, signature, cookie, session, credential.
- `redact_url(url)`: by URL shape: `user:pass@` with or without a scheme, secret-named query
  values; `hide_path=True` for chat webhooks (the token is the path) keeps scheme://host/… only.
- `remember(value)` / `remember_url(url)`: values the config loader saw; `scrub(text)` replaces
  them (also escaped, repr'd and percent-encoded) and anything credential-shaped in free text.
- `http_url_problem(url)`: why a string cannot be an http(s) URL, without echoing a secret.

opcockpit.settings.config re-exports these (its historical home); providers and notify use them directly.
No opcockpit imports here: everything may import this module.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = [
    "http_url_problem",
    "is_secret_name",
    "redact",
    "redact_mapping",
    "redact_url",
    "remember",
    "remember_url",
    "scrub",
    "url_secrets",
]

MASK = "***"

# Names (query parameters, headers, env vars) whose values are credentials, lower-cased. `key` on
# its own or as a word part (api_key, x-api-key, DAYTONA_API_KEY), not inside `monkey`.
_SECRET_NAME = re.compile(
    r"token|secret|passw|passphrase|pwd|auth|cred|session|cookie|signature|private|"
    r"(?:^|[^a-z])pass(?:$|[^a-z])|"
    r"(?:^|[^a-z])sig(?:$|[^a-z])|(?:^|[^a-z])code(?:$|[^a-z])|"
    r"(?:^|[^a-z])(?:api)?key(?:s)?(?:$|[^a-z])|apikey"
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name.lower()))


def redact(secret: str | None) -> str:
    """Show enough of a key to tell keys apart, never enough to use it: 'e2b_…7f' or '***'."""
    if not secret:
        return "(unset)"
    if len(secret) < 16:
        return MASK
    prefix = secret.split("_", 1)[0] + "_" if "_" in secret[:8] else ""
    return f"{prefix}…{secret[-2:]}"


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """A copy with the values of secret-named keys replaced by ***."""
    return {k: (MASK if is_secret_name(k) else v) for k, v in values.items()}


# --------------------------------------------------------------------------- URLs


def _authority(url: str) -> tuple[str, object] | None:
    """(scheme or "", urlsplit result) for URLs with an authority, including `user:pw@host/...`
    written without a scheme (urlsplit would read `user` as the scheme and hide nothing)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.netloc:
        return parts.scheme, parts
    head = url.split("/", 1)[0]
    if "@" in head and "://" not in url:
        try:
            bare = urlsplit("//" + url)
            bare.port  # noqa: B018
        except ValueError:
            return None
        if bare.netloc:
            return "", bare
    return None


def url_secrets(url: str | None) -> list[str]:
    """The credential parts of a URL: the userinfo password (or a token-long bare user name) and
    the values of secret-named query parameters."""
    if not url:
        return []
    found: list[str] = []
    got = _authority(url)
    if got is not None:
        parts = got[1]
        if parts.password:  # type: ignore[attr-defined]
            found.append(parts.password)  # type: ignore[attr-defined]
        elif parts.username and len(parts.username) >= 16:  # type: ignore[attr-defined]
            found.append(parts.username)  # type: ignore[attr-defined]
    query = url.split("?", 1)[1].split("#", 1)[0] if "?" in url else ""
    found += [v for k, v in parse_qsl(query, keep_blank_values=False) if is_secret_name(k)]
    return found


def redact_url(url: str | None, *, hide_path: bool = False) -> str:
    """A URL fit to show: `user:pass@` -> `user:***@` (a bare user -> `***@`), secret-named query
    values -> `***`. `hide_path` (chat webhooks carry their token in the path) keeps only
    scheme://host:port/…; a string that is no URL at all is then not shown either."""
    if url is None:
        return "(unset)"
    got = _authority(url)
    if got is None:
        if hide_path:
            return "<not an http(s) URL>"
        return scrub_shapes(url)  # not a URL with an authority (unix:///path, garbage)
    scheme, parts = got
    host = parts.hostname or ""  # type: ignore[attr-defined]
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if parts.port is not None:  # type: ignore[attr-defined]
        host += f":{parts.port}"  # type: ignore[attr-defined]
    if parts.password is not None:  # type: ignore[attr-defined]
        host = f"{parts.username}:{MASK}@{host}"  # type: ignore[attr-defined]
    elif parts.username:  # type: ignore[attr-defined]
        host = f"{MASK}@{host}"
    lead = f"{scheme}://{host}" if scheme else host
    if hide_path:
        return f"{lead}/…"
    out = lead + parts.path  # type: ignore[attr-defined]
    if parts.query:  # type: ignore[attr-defined]
        pairs = parse_qsl(parts.query, keep_blank_values=True)  # type: ignore[attr-defined]
        out += "?" + "&".join(
            f"{quote(k, safe='')}=" + (MASK if is_secret_name(k) else quote(v, safe="")) for k, v in pairs
        )
    if parts.fragment:  # type: ignore[attr-defined]
        out += "#…"
    return out


def http_url_problem(url: str, example: str = "https://api.e2b.app") -> str | None:
    """Why `url` cannot be an http(s) URL with a host (None: it can). Never echoes a credential."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL: {shown!r} ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        bare = _authority(url)
        got = f"scheme {parts.scheme!r}" if parts.scheme and not (bare and not bare[0]) else "no scheme"
        return f"not an http(s) URL: {shown!r} ({got}; scheme http or https required, e.g. {example})"
    if not parts.netloc or not parts.hostname or any(c.isspace() for c in url):
        return f"not a valid URL: {shown!r} (no host, or spaces; e.g. {example})"
    return None


# --------------------------------------------------------------------------- free text

_KNOWN: set[str] = set()

_NAME = r"[\w.-]*?(?:token|secret|passw|pwd|auth|cred|session|signature|sig|api[_-]?key|key)[\w.-]*"
# Credential-shaped fragments, scrubbed even when we were never told the secret. Group 1 is kept.
_SHAPES = (
    re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s@:]*:)[^/\s@]+(?=@)"),  # scheme://user:password@
    # user:pw@host without a scheme (a DSN-ish api_url quoted in an error)
    re.compile(r"(?i)(?<![\w/:.@%-])([\w.+-]+:)[^\s/@:'\"]+(?=@[\w-]+(?:\.[\w-]+)*(?:[:/\s'\"]|$))"),
    re.compile(rf"(?i)([?&;]{_NAME}=)[^&\s#'\"]+"),  # ?token=...
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(x-api-key\s*[:=]\s*)\S+"),
    re.compile(r"(?i)(authorization\s*[:=]\s*)(?:bearer\s+|basic\s+|token\s+)?(?!\*\*\*)\S+"),
    re.compile(r"(?i)(api[_-]?key\s*[:=]\s*)\S+"),
    re.compile(r"\b(e2b_)[A-Za-z0-9]{8,}"),
    re.compile(r"\b(dtn_)[A-Za-z0-9]{8,}"),
    re.compile(r"\b(akm-)[A-Za-z0-9-]{8,}"),
)


def remember(value: str | None) -> None:
    """Register a secret value so `scrub` removes it from any text."""
    if value and len(value) >= 4:
        _KNOWN.add(value)


def remember_url(url: object, *, whole: bool = False) -> None:
    """Register a URL's credentials (and, for chat webhooks, the URL itself).

    Short values are left to the shape-based scrubbing: replacing a 4-letter password (or a user
    name like 'admin') everywhere in every message would mangle ordinary words."""
    if not isinstance(url, str):
        return
    for secret in url_secrets(url):
        if len(secret) >= 6:
            remember(secret)
    if whole:
        remember(url)


def _spellings(secret: str) -> set[str]:
    """The ways a secret shows up in text: as is, escaped (repr of str/bytes), percent-encoded."""
    return {
        secret,
        secret.encode("unicode_escape").decode("ascii"),
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
    }


@functools.lru_cache(maxsize=4096)
def _replacement(secret: str) -> tuple[tuple[str, ...], str]:
    """A secret's spellings (longest first) and its redacted form: computed once per secret."""
    return tuple(v for v in sorted(_spellings(secret), key=len, reverse=True) if v), redact(secret)


# Every shape above needs "@", "=" or one of these words (any case) in the text: most text (event
# bodies, reasons) has none and skips the ten substitutions (the ledger scrubs every row it appends).
_TRIGGER_WORDS = (
    "bearer", "x-api-key", "authorization", "apikey", "api_key", "api-key", "e2b_", "dtn_", "akm-",
)  # fmt: skip


def _may_have_shape(text: str) -> bool:
    """Substring tests, not a case-blind alternation regex (that cost ~100 ns a character: 0.3 s
    of a 10k-event ledger append); casefold matches at least what (?i) would."""
    if "@" in text or "=" in text:
        return True
    folded = text.casefold()
    return any(w in folded for w in _TRIGGER_WORDS)


def scrub_shapes(text: str) -> str:
    if not _may_have_shape(text):
        return text
    for pattern in _SHAPES:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def scrub(text: str, extra: Iterable[str | None] = ()) -> str:
    """Replace every known secret (plus `extra`) by its redacted form, in every spelling, then
    anything credential-shaped (URL userinfo with or without a scheme, ?token=, bearer, ...)."""
    secrets = set(_KNOWN)
    secrets.update(s for s in extra if s and len(s) >= 4)
    for secret in sorted(secrets, key=len, reverse=True):
        variants, shown = _replacement(secret)
        for variant in variants:
            if variant in text:
                text = text.replace(variant, shown)
    return scrub_shapes(text)
