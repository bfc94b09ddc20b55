"""`banners`: the command line of the banner server (sample-data, load, versions, rollback,
show, status, serve, export, redis).

Each command is a thin shell over the packages: `loader` computes and publishes,
`banner_server` serves.  Without --redis-url the commands share an embedded Redis
kept in the state folder (BANNERS_STATE_DIR, default ./var).

One module per family of commands; common.py holds the exit statuses, the options
that are BANNERS_* variables, the connection step and the tables.
"""

from __future__ import annotations

import click

from . import data, embedded, export, load, serve, versions


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="banner-server")
def main():
    """Pick each campaign's best banners per quarter of an hour, and serve them.

    \b
    Typical session:
      banners sample-data data/           # or your marketing exports
      banners load data/ --seed 7         # validate, compute, publish
      banners show --campaign 7           # what was selected
      banners rollback                    # back to the version loaded before
      banners serve --bind 127.0.0.1:8000
    """


# In the order of a session (click lists them sorted by name in --help anyway).
for _command in (data.sample_data, load.load, versions.versions, versions.rollback, data.show, data.status,
                serve.serve, export.export, embedded.redis_group):
    main.add_command(_command)

if __name__ == "__main__":
    main()
