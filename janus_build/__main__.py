"""Entry point for ``python -m janus_build``."""

from janus_build.cli import main

if __name__ == "__main__":
    main()
