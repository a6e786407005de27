"""The `opcockpit` command line. Importing it first installs pydantic's empty plugin loader
(cli/pydantic_plugins.py: start-up), before anything builds a validator."""

from opcockpit.cli import pydantic_plugins

pydantic_plugins.disable()
