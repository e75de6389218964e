"""``python -m mdp_sim`` and the ``mdp-sim`` console script."""

from mdp_sim.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
