"""DiffuSeq (Gong et al., ICLR 2023) as a fairseq plugin: ``--user-dir diffuseq_fairseq``.

Importing the package registers the ``diffuseq`` task, model architectures and the
``diffuseq_loss`` criterion with fairseq (fairseq auto-imports ``models/`` and ``tasks/`` of a
user dir, but not ``criterions/``), and allowlists the globals that fairseq checkpoints need
under torch's ``weights_only`` loading, and makes ``--help`` list the plugin's options. The diffusion math (``diffusion``, ``step_sampler``,
``mbr``) does not need fairseq and stays importable without it.
"""
import importlib.util

__version__ = "0.1.0"

if importlib.util.find_spec("fairseq") is not None:
    from . import checkpoints, cli_help

    checkpoints.install()
    cli_help.install()
    from . import criterions, models, optim, tasks  # noqa: F401,E402  (registration side effects)
