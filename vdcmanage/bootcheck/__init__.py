"""``vdc-manage image boot-check``: boot a prepared image under qemu and prove it is reachable.

The image is booted the way XenServer boots a PV guest: its boot loader configuration is read as
pygrub reads it (:mod:`vdcmanage.prepare.bootconf`) and the default entry's kernel, initrd and
command line are handed to qemu directly. The disk is a throw-away copy-on-write overlay (the
image is opened read-only and never changes), the network is qemu's user networking restricted
to two forwards: the instance's SSH port to 127.0.0.1, and 169.254.169.254:80 to a stand-in
EC2-style metadata server that hands out a fresh host name and a fresh SSH key.

- :mod:`guest`: what pygrub would boot, read from the image; the qemu command line derived from it;
- :mod:`qemu`: finding qemu, choosing KVM or TCG, the qemu argv, the overlay;
- :mod:`metadata`: the stand-in metadata server, and :mod:`relay` which qemu runs per connection;
- :mod:`console`: the serial console log, watched for milestones as it is written;
- :mod:`probe`: the SSH port, the host key, the login with the handed-out key;
- :mod:`run`: the whole check, with times; :mod:`report`: its text and JSON.

Nothing here imports typer or rich.
"""
