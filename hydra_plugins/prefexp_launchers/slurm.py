"""``hydra/launcher=slurm``'s class: the code is :mod:`prefexp.slurm_launcher`; Hydra accepts only
plugin classes defined in the ``hydra_plugins`` namespace, hence this one-line subclass."""
from prefexp.slurm_launcher import SlurmLauncher as _SlurmLauncher


class SlurmLauncher(_SlurmLauncher):
    pass
