"""`banners`, the command line: the design card's top-level cli.py.

The commands live in the package (banner_server/cli/), so that an installed wheel
has them and installs no generic top-level `cli` module; this file keeps
`python -m cli` and `import cli` working in a checkout.
"""

from banner_server.cli import main

if __name__ == "__main__":
    main()
