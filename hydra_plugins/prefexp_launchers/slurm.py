"""``hydra/launcher=slurm``'s class: the code is :mod:`prefexp.launch.slurm_launcher`; Hydra accepts only
plugin classes defined in the ``hydra_plugins`` namespace, hence this one-line subclass."""
from prefexp.launch.slurm_launcher import SlurmLauncher as _SlurmLauncher


class SlurmLauncher(_SlurmLauncher):
    pass
