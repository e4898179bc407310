"""``python -m prefexp.launch sbatch [overrides]``: print the sbatch script of a SLURM sweep."""
import sys

from .slurm import sbatch_cli

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "sbatch":
        print("usage: python -m prefexp.launch sbatch [hydra overrides, sweeps allowed]", file=sys.stderr)
        sys.exit(2)
    sbatch_cli(args[1:])
