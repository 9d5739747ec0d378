"""The one error the command line shows to users: one clear line per problem, exit code 2."""

from __future__ import annotations

import click

__all__ = ["UserError"]


class UserError(click.ClickException):
    """A problem the user can fix; shown without a traceback, exit code 2."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(self.format_message(), err=True)
