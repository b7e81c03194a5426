"""python -m stepdeploy_cli: the same as the ``stepdeploy`` console script."""

from .main import cli

cli(prog_name="stepdeploy")
