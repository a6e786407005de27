"""The datasets Explore can query: names, typed fields, the time field, facets. Pure data.

`docs/explore.md` documents these; `tests/test_explore_docs.py` checks every dataset and field is
documented there. Each dataset has one time field: `since:`/`until:` and `| count by time` use it.
"""

from __future__ import annotations

from dataclasses import dataclass

FIELD_TYPES = ("text", "int", "float", "time", "bool")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str  # one of FIELD_TYPES
    doc: str = ""
    facet: bool = False  # value counts shown beside results


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    doc: str
    fields: tuple[Field, ...]
    time_field: str
    key: str  # the field that identifies a row (the detail to open)

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def text_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.type == "text")

    @property
    def facets(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.facet)


def _f(spec: str) -> tuple[Field, ...]:
    """'name:type[*] doc; ...' -> Fields (`*` marks a facet). Keeps the tables below readable."""
    out = []
    for part in spec.strip().split(";"):
        head, _, doc = part.strip().partition(" ")
        name, _, typ = head.partition(":")
        facet = typ.endswith("*")
        out.append(Field(name, typ.rstrip("*"), doc.strip(), facet))
    return tuple(out)


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "leases",
            "the ground-truth rows: one per lease, sandbox.db joined with the provider listings",
            _f("""
                lease_id:text the lease;
                provider:text* provider name;
                thread_id:text primary thread;
                threads:text every bound thread (space separated);
                session_id:text live or latest chat session;
                instance_id:text current instance;
                desired:text* desired_state;
                observed:text* observed_state;
                provider_state:text* what the provider reports (empty when unlisted);
                convergence:text* converged/diverged/unbound/transitioning/stale/unknown;
                reason:text why this convergence;
                last_active:time last activity;
                source:text* lease+provider or lease;
                lease_status:text* active/expired;
                version:int lease version;
                needs_refresh:bool refresh requested;
                last_error:text the lease's last error;
                updated:time updated_at;
                stale_age:float seconds since the provider was last listed (stale rows)
            """),
            "updated",
            "lease_id",
        ),
        Dataset(
            "orphans",
            "instances at a provider that no lease accounts for",
            _f("""
                provider:text* provider name;
                instance_id:text the instance;
                name:text instance name;
                provider_state:text* normalised state;
                raw_state:text the provider's own word;
                labels:text labels as k=v (space separated);
                created:time created at the provider;
                claimed_lease_id:text lease named by its labels;
                claim:text* lease_exists/lease_points_elsewhere/lease_missing;
                confirmed:bool confirmed by a GET (empty: the list is authoritative)
            """),
            "created",
            "instance_id",
        ),
        Dataset(
            "runs",
            "agent runs summarised from events.db run_events (activity streams excluded)",
            _f("""
                run_id:text the run;
                thread_id:text its thread;
                status:text* running/completed/error/cancelled;
                started:time run_start time;
                ended:time run_done time;
                last_event:time latest event;
                error:text the error event's message;
                events:int event count;
                lease_id:text lease of the thread;
                provider:text* provider of that lease
            """),
            "last_event",
            "run_id",
        ),
        Dataset(
            "run_events",
            "every row of events.db run_events",
            _f("""
                seq:int sequence number;
                thread_id:text thread;
                run_id:text run;
                event_type:text* LEON's event type;
                data:text the event's JSON data;
                message_id:text message;
                created:time created_at;
                lease_id:text lease of the thread;
                provider:text* provider of that lease
            """),
            "created",
            "seq",
        ),
        Dataset(
            "commands",
            "terminal_commands with their output (stdout/stderr and the streamed chunks)",
            _f("""
                command_id:text the command;
                terminal_id:text terminal;
                session_id:text chat session;
                thread_id:text thread of the terminal;
                lease_id:text lease of the terminal;
                provider:text* provider;
                command:text the command line;
                cwd:text working directory;
                status:text* LEON's command status;
                exit_code:int* exit code;
                stdout:text stdout;
                stderr:text stderr;
                output:text streamed chunks, in order;
                created:time created_at;
                finished:time finished_at
            """),
            "created",
            "command_id",
        ),
        Dataset(
            "sessions",
            "chat_sessions",
            _f("""
                session_id:text chat session;
                thread_id:text thread;
                terminal_id:text terminal;
                lease_id:text lease;
                provider:text* provider of the lease;
                runtime_id:text runtime;
                status:text* active/idle/paused/closed/failed;
                idle_ttl:int idle_ttl_sec;
                max_duration:int max_duration_sec;
                started:time started_at;
                last_active:time last_active_at;
                ended:time ended_at;
                close_reason:text* why it closed
            """),
            "started",
            "session_id",
        ),
        Dataset(
            "lease_events",
            "sandbox.db lease_events: LEON's intents and observations per lease",
            _f("""
                event_id:text the event;
                lease_id:text lease;
                provider:text* provider of the lease;
                event_type:text* intent.pause, observe.status, provider.error, ...;
                source:text* api/webhook/idle_reaper/...;
                payload:text payload_json;
                error:text error;
                created:time created_at
            """),
            "created",
            "event_id",
        ),
        Dataset(
            "provider_events",
            "sandbox.db provider_events: what providers reported by webhook",
            _f("""
                event_id:int the event;
                provider:text* provider name;
                instance_id:text instance;
                event_type:text* the webhook's event type;
                payload:text payload_json;
                lease_id:text matched lease;
                created:time created_at
            """),
            "created",
            "event_id",
        ),
        Dataset(
            "events",
            "the cockpit's event ledger: every change it observed (types in docs/events.md)",
            _f("""
                id:int ledger row;
                type:text* lease.convergence_changed, instance.appeared, alert.fired, ...;
                occurred_at:time the source's own time (empty when it did not say);
                observed_at:time when the cockpit saw it;
                source:text* provider_list/provider_event/sandbox_db/operator/cockpit;
                lease_id:text lease;
                instance_id:text instance;
                thread_id:text thread;
                provider:text* provider;
                before:text the state before (JSON);
                after:text the state after (JSON)
            """),
            "observed_at",
            "id",
        ),
        Dataset(
            "audit",
            "the cockpit's audit log: every operator action",
            _f("""
                id:int audit row;
                op_id:text operation;
                at:time when;
                operator:text* who;
                action:text* what;
                provider:text* provider;
                lease_id:text lease;
                instance_id:text instance;
                thread_id:text thread;
                result:text* ok/failed/refused/...;
                outcome:text* outcome;
                error:text error;
                duration_ms:int duration;
                dry_run:bool dry run;
                read_only:bool read-only mode;
                convergence:text* settled convergence;
                settled:time when it settled
            """),
            "at",
            "id",
        ),
        Dataset(
            "alerts",
            "the cockpit's alerts, firing and resolved",
            _f("""
                id:int alert;
                rule:text* rule;
                severity:text* severity;
                state:text* firing/resolved;
                key:text alert key;
                summary:text one line;
                scope:text scope;
                fired:time fired_at;
                last_seen:time last seen;
                resolved:time resolved_at;
                acked_by:text* who acked;
                muted:bool muted now
            """),
            "fired",
            "id",
        ),
    )
}


def dataset_names() -> tuple[str, ...]:
    return tuple(DATASETS)
