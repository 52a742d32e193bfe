"""`python -m ml_connector`: the same as the `ml-connector` command."""

from ml_connector.cli import main

if __name__ == "__main__":
    main(prog_name="ml-connector")
