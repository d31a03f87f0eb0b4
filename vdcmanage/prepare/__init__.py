"""Offline preparation of a guest root tree: Xen paravirtual boot and cloud hygiene.

``vdc-manage image prepare`` edits the files of a machine image before it is imported into
XenServer or registered for the cloud. The pieces:

- :mod:`root`: a view of the guest's tree where every path, symlinks included, resolves inside it;
- :mod:`steps`, :mod:`xen`, :mod:`cloud`: the named steps, each with check / plan / apply;
- :mod:`mounts`: raw image -> loop device -> mount, always undone;
- :mod:`target`: what TARGET names (directory, raw file, registered image) and opening it;
- :mod:`run`: check, dry-run and apply over a target; :mod:`report`: their text.

Nothing here imports typer or rich: the CLI module is a thin wrapper.
"""
