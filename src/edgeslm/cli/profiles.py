"""`edgeslm profiles`: the device profiles the governor and the energy estimate can use."""

from __future__ import annotations

import click

from edgeslm.cli.common import emit, handle_errors, json_option
from edgeslm.report.text import table


@click.command("profiles")
@click.argument("name", required=False)
@json_option
@handle_errors
def profiles(name: str | None, as_json: bool) -> None:
    """List device profiles, or show NAME (a built-in, a YAML file, or one in $EDGESLM_PROFILES)."""
    from edgeslm.runtime.profiles import check_fits, list_profiles, load_profile

    if name:
        profile = load_profile(name)
        emit({**profile.to_dict(), "warnings_on_this_machine": check_fits(profile)}, as_json)
        return
    rows = []
    for n, source in list_profiles().items():
        p = load_profile(n)
        rows.append({"name": n, "source": source, "memory_budget_mb": p.memory_budget_mb, "cores": p.cores,
                     "threads": p.threads, "watts_idle": p.watts_idle, "watts_busy": p.watts_busy,
                     "queue_limit": p.queue_limit, "max_batch": p.max_batch})
    emit(rows, as_json, lambda rs: table([[r["name"], r["memory_budget_mb"], r["cores"], r["threads"],
                                           f"{r['watts_idle']:g}-{r['watts_busy']:g} W", r["queue_limit"],
                                           r["max_batch"], r["source"]] for r in rs],
                                         ["profile", "memory MB", "cores", "threads", "power", "queue", "batch",
                                          "source"]))
