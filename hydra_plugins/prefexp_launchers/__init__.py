"""prefexp's Hydra launcher plugins (Hydra only instantiates launchers defined under hydra_plugins)."""
