"""Talking to other machines: SSH connections (ssh.py), host key trust (known_hosts.py), login (auth.py),
typed ``xe`` calls (xe.py) and ``host check`` (check.py). Nothing here imports paramiko at module level."""
