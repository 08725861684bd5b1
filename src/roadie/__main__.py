"""`python -m roadie`, the same as the `roadie` console script."""

from roadie.cli.main import app

app()
