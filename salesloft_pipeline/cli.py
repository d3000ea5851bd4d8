"""The `salesloft-pipeline` command."""

from __future__ import annotations

import click

from salesloft_pipeline import __version__
from salesloft_pipeline.demo import demo_command
from salesloft_pipeline.doctor import doctor_command
from salesloft_pipeline.salesloft.cli import extract_command
from salesloft_pipeline.simulator.cli import simulator_command
from salesloft_pipeline.webhooks.cli import webhooks_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="salesloft-pipeline")
def main() -> None:
    """Keep a SalesLoft team's data in a warehouse and turn it into daily engagement metrics."""


main.add_command(simulator_command)
main.add_command(extract_command)
main.add_command(webhooks_group)
main.add_command(demo_command)
main.add_command(doctor_command)


if __name__ == "__main__":
    main()
