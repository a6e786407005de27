"""`opcockpit demo`: a generated LEON fleet, provider doubles on loopback and background drift.

- `fleet.generate_fleet(...) -> DemoFleet`: deterministic LEON-schema sandbox.db + events.db and
  the instances each provider double should hold (with planned drift).
- `drift.DriftSimulator`: seeded background changes, provider-side and LEON-style DB writes.
- `runtime.demo_environment(...)` / `runtime.run_demo(...)`: everything wired together.

Submodules are imported explicitly (no re-exports) so importing the package stays cheap.
"""
