"""Entry point: `edgeslm COMMAND`. Commands import their heavy libraries only when they run."""

from __future__ import annotations

import click

from edgeslm import __version__
from edgeslm.cli import bench, bundle, calibrate, compress, data, demo, evaluate, gguf, keys, models, profiles, replay, serve, train
from edgeslm.cli import select as select_cmd
from edgeslm.cli.common import setup_logging
from edgeslm.cli.fleet import fleet


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeslm")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
def cli(verbose: bool) -> None:
    """Small language models on edge devices: train, compress, bundle, serve, benchmark."""
    setup_logging(verbose)


cli.add_command(models.models)
cli.add_command(data.data)
cli.add_command(train.train)
cli.add_command(bundle.export)
cli.add_command(bundle.inspect)
cli.add_command(evaluate.eval_)
cli.add_command(compress.compress)
cli.add_command(compress.compare)
cli.add_command(gguf.quantize_gguf)
cli.add_command(select_cmd.select)
cli.add_command(demo.demo)
cli.add_command(profiles.profiles)
cli.add_command(serve.serve)
cli.add_command(bench.bench)
cli.add_command(replay.replay)
cli.add_command(calibrate.calibrate)
cli.add_command(keys.keys)
cli.add_command(keys.sign)
cli.add_command(keys.verify)
cli.add_command(fleet)


if __name__ == "__main__":
    cli()
