"""`python -m app` is the `acedata-proxy` command."""

from app.cli import main

if __name__ == "__main__":
    main()
