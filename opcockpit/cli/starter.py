"""The commented starter config written by `opcockpit config init` (== config.example.toml)."""

STARTER_CONFIG = """\
# opcockpit configuration (TOML).
#
# Everything here is optional: with no file at all opcockpit follows LEON's own conventions
#   sandbox.db  $LEON_SANDBOX_DB_PATH, else ~/.leon/sandbox.db
#   events.db   $LEON_RUN_EVENT_DB_PATH, else events.db beside leon.db ($LEON_DB_PATH or ~/.leon/leon.db)
#   providers   ~/.leon/sandboxes/<name>.json (the file stem is the provider name), plus built-in `local`
# Precedence: command-line flags > this file > LEON defaults > built-in defaults.
# Where is this file? `opcockpit config paths`.  What is in effect? `opcockpit config show`.

# Seconds between refreshes in the cockpit (minimum 0.5).
# refresh_s = 2.0
# Hide and refuse every action that changes a sandbox (same as --read-only).
# read_only = false
# Wall-clock budget for listing one provider (all pages and retries).
# list_timeout_s = 20.0

[sources]
# sandbox_db = "~/.leon/sandbox.db"
# events_db = "~/.leon/events.db"          # optional
# LEON writes naive local times: the zone of the host it ran on (default: this host's zone).
# Set it when the cockpit runs elsewhere, e.g. on a UTC bastion reading a DB written at UTC+8.
# timezone = "Asia/Shanghai"

# [tui]
# "all": every action asks first (pause/resume with one key); "destructive": only destroy and
# adopt ask, pause and resume run at once.
# confirm = "all"

# One table per provider; the table name is the provider name used in sandbox_leases.provider_name.
# A table with the same name as a LEON ~/.leon/sandboxes/<name>.json overrides it key by key.

# [providers.docker]
# kind = "docker"
# host = "unix:///run/docker.sock"          # or tcp://host:2375; default: $DOCKER_HOST
# label_filter = { team = "sre" }          # optional: only instances carrying these labels

# [providers.e2b]
# kind = "e2b"
# api_url = "https://api.e2b.app"
# api_key_env = "E2B_API_KEY"               # the NAME of the env var holding the key (default per kind)

# [providers.daytona_selfhost]
# kind = "daytona"
# api_url = "https://daytona.example.internal/api"
# api_key_env = "DAYTONA_API_KEY"
# timeout_s = 10.0                          # per request
# retries = 3
# max_concurrency = 8

# [providers.agentbay]
# kind = "agentbay"
# region = "cn-hangzhou"                    # api_url defaults to https://agentbay.<region>.aliyuncs.com
# api_key_env = "AGENTBAY_API_KEY"

# [providers.old_e2b]
# kind = "e2b"
# enabled = false                           # keep the table, skip the provider
"""
