"""Guest trees and raw images for the prepare tests: a CentOS 5-like and an Ubuntu 10.04-like root.

The CentOS tree follows the CloudStack procedure's example: kernels 2.6.18-164.el5 (not Xen),
2.6.18-164.el5xen (no lib/modules) and 2.6.18-194.el5xen (complete), SCSI device names in fstab,
a MAC in ifcfg-eth0, host keys, logs. Initrds are real gzip'ed newc cpio archives.

Images are built without mounting anything: ``mkfs.ext4 -d TREE`` copies a tree into a new
filesystem, at an offset inside a disk partitioned with sfdisk for the partitioned case.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import subprocess
from pathlib import Path

CENTOS_XEN_KERNEL = "2.6.18-194.el5xen"
CENTOS_KERNELS = ("2.6.18-164.el5", "2.6.18-164.el5xen", "2.6.18-194.el5xen")
UBUNTU_KERNEL = "2.6.32-38-server"
SECTOR = 512
BUSYBOX = "/usr/bin/busybox"


def cpio_newc(members: dict[str, bytes]) -> bytes:
    """A newc cpio archive of regular files (directories implied), as the kernel reads them."""
    out = bytearray()

    def add(name: str, data: bytes, mode: int) -> None:
        encoded = name.encode() + b"\0"
        fields = [1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out.extend(b"070701" + b"".join(b"%08X" % value for value in fields) + encoded)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for name, data in members.items():
        add(name, data, 0o100644)
    add("TRAILER!!!", b"", 0)
    return bytes(out)


def initrd_image(modules: list[str]) -> bytes:
    """A gzip'ed initrd with an init script loading the given modules from /lib."""
    init = "#!/bin/nash\n" + "".join(f"insmod /lib/{m}.ko\n" for m in modules)
    members = {"init": init.encode(), **{f"lib/{m}.ko": b"\x7fELF fake module " + m.encode() for m in modules}}
    return gzip.compress(cpio_newc(members), mtime=0)


def write(root: Path, path: str, content: str | bytes, mode: int = 0o644) -> Path:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content.encode() if isinstance(content, str) else content)
    target.chmod(mode)
    return target


def fake_elf(machine: int) -> bytes:
    """The first bytes of an ELF executable for a given e_machine (enough for the arch check)."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5], header[6] = 2, 1, 1
    header[16:18] = (2).to_bytes(2, "little")
    header[18:20] = machine.to_bytes(2, "little")
    return bytes(header)


CENTOS_FSTAB = """\
{root}               /                       ext3    defaults        1 1
/dev/sdb                /mnt                    ext3    defaults        0 0
none                    /dev/pts                devpts  gid=5,mode=620  0 0
none                    /proc                   proc    defaults        0 0
none                    /sys                    sysfs   defaults        0 0
"""

CENTOS_INITTAB = """\
id:3:initdefault:
si::sysinit:/etc/rc.d/rc.sysinit
l3:3:wait:/etc/rc.d/rc 3
ca::ctrlaltdel:/sbin/shutdown -t3 -r now
1:2345:respawn:/sbin/mingetty tty1
2:2345:respawn:/sbin/mingetty tty2
"""

CENTOS_SSHD = """\
#Protocol 2,1
Protocol 2
SyslogFacility AUTHPRIV
#PermitRootLogin yes
PasswordAuthentication yes
ChallengeResponseAuthentication no
UsePAM yes
X11Forwarding yes
Subsystem\tsftp\t/usr/libexec/openssh/sftp-server
"""

CENTOS_RC_LOCAL = """\
#!/bin/sh
#
# This script will be executed *after* all the other init scripts.
# You can put your own initialization stuff in here if you don't
# want to do the full Sys V style init stuff.

touch /var/lock/subsys/local
"""


def centos5_tree(root: Path, *, root_device: str = "/dev/sda1", with_busybox: bool = False) -> Path:
    """A CentOS 5-like root. ``with_busybox``: a static busybox as /bin/sh and a fake /sbin/mkinitrd
    that really builds a gzip'ed cpio holding xenblk/xennet (so the chroot path runs for real)."""
    write(root, "etc/redhat-release", "CentOS release 5.5 (Final)\n")
    write(root, "etc/fstab", CENTOS_FSTAB.format(root=root_device))
    write(root, "etc/inittab", CENTOS_INITTAB)
    write(root, "etc/securetty", "console\nvc/1\nvc/2\ntty1\ntty2\n")
    write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n")
    write(
        root,
        "etc/shadow",
        "root:$1$oldsalt$oldhasholdhasholdhash1:14000:0:99999:7:::\nbin:*:14000:0:99999:7:::\n",
        0o400,
    )
    write(root, "etc/ssh/sshd_config", CENTOS_SSHD, 0o600)
    for key in ("ssh_host_key", "ssh_host_rsa_key", "ssh_host_dsa_key"):
        write(root, f"etc/ssh/{key}", f"PRIVATE {key}\n", 0o600)
        write(root, f"etc/ssh/{key}.pub", f"PUBLIC {key}\n")
    write(root, "etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=localhost.localdomain\n")
    write(
        root,
        "etc/sysconfig/network-scripts/ifcfg-eth0",
        "DEVICE=eth0\nBOOTPROTO=dhcp\nHWADDR=00:16:3E:5A:12:34\nONBOOT=yes\n",
    )
    write(root, "etc/sysconfig/network-scripts/ifcfg-lo", "DEVICE=lo\nIPADDR=127.0.0.1\n")
    (root / "etc/sysconfig/modules").mkdir(parents=True)
    (root / "etc/udev/rules.d").mkdir(parents=True)
    write(root, "etc/rc.d/rc.local", CENTOS_RC_LOCAL, 0o755)
    os.symlink("rc.d/rc.local", root / "etc/rc.local")
    write(root, "etc/resolv.conf", "search example.com\nnameserver 10.0.0.1\n")
    write(root, "etc/hosts", "127.0.0.1\tlocalhost.localdomain localhost\n")
    write(
        root,
        "boot/grub/grub.conf",
        "default=0\ntimeout=5\ntitle CentOS (2.6.18-164.el5)\n\troot (hd0,0)\n"
        "\tkernel /boot/vmlinuz-2.6.18-164.el5 ro root=/dev/sda1\n\tinitrd /boot/initrd-2.6.18-164.el5.img\n",
    )
    for version in CENTOS_KERNELS:
        write(root, f"boot/vmlinuz-{version}", b"\x00kernel " + version.encode())
        write(root, f"boot/initrd-{version}.img", initrd_image(["ehci-hcd", "ext3", "jbd"]))
        if version != "2.6.18-164.el5xen":  # the example's incomplete Xen kernel
            write(root, f"lib/modules/{version}/modules.dep", "")
    write(root, "var/log/messages", "Jan  1 00:00:01 localhost kernel: booted\n" * 50)
    write(root, "var/log/secure", "sshd[1]: Accepted password for root\n")
    write(root, "var/log/messages.1.gz", gzip.compress(b"old messages\n", mtime=0))
    write(root, "var/log/cups/access_log", "GET / HTTP/1.1\n")
    write(root, "var/log/cups/error_log.2.gz", gzip.compress(b"old\n", mtime=0))
    write(root, "var/log/wtmp", b"\x07\x00\x00\x00binary login records")
    write(root, "var/log/empty.log", "")
    (root / "root").mkdir(mode=0o700)
    (root / "tmp").mkdir(mode=0o1777)
    for directory in ("proc", "sys", "dev", "usr/bin", "usr/local/sbin"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    write(root, "usr/bin/curl", "#!/bin/sh\n# stands for CentOS 5's curl\n", 0o755)
    if with_busybox:
        add_busybox_mkinitrd(root)
    else:
        # The guest's mkinitrd is for another CPU here: the "cannot rebuild here" path.
        write(root, "bin/bash", fake_elf(183), 0o755)  # aarch64
        write(root, "sbin/mkinitrd", "#!/bin/bash\necho mkinitrd\n", 0o755)
    return root


FAKE_MKINITRD = """\
#!/bin/sh
# Stand-in for CentOS 5's mkinitrd: parses the same options and really builds a gzip'ed newc
# cpio with the modules it was asked for (--with / --preload), as /lib/<name>.ko.
echo "$@" > /tmp/mkinitrd.args
[ -f /tmp/mkinitrd.sleep ] && { echo started > /tmp/mkinitrd.started; sleep "$(cat /tmp/mkinitrd.sleep)"; }
force=no; modules=""; image=""; version=""
for arg in "$@"; do
    case $arg in
        -f) force=yes ;;
        --with=*) modules="$modules ${arg#--with=}" ;;
        --preload=*) modules="$modules ${arg#--preload=}" ;;
        --omit-scsi-modules) ;;
        -*) echo "mkinitrd: unknown option $arg" >&2; exit 1 ;;
        *) if [ -z "$image" ]; then image=$arg; else version=$arg; fi ;;
    esac
done
[ -d "/lib/modules/$version" ] || { echo "mkinitrd: no modules for $version" >&2; exit 1; }
[ -e "$image" ] && [ "$force" != yes ] && { echo "mkinitrd: $image exists" >&2; exit 1; }
work=/tmp/initrd.$$
mkdir -p "$work/lib"
echo '#!/bin/nash' > "$work/init"
for m in $modules; do echo "module $m" > "$work/lib/$m.ko"; echo "insmod /lib/$m.ko" >> "$work/init"; done
(cd "$work" && find . | cpio -o -H newc 2>/dev/null | gzip -9) > "$image" || exit 1
rm -rf "$work"
"""


def add_busybox_mkinitrd(root: Path) -> None:
    """A static busybox (runs in any chroot) providing sh, cpio, gzip ..., and the fake mkinitrd."""
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    for applet in ("sh", "cpio", "gzip", "find", "mkdir", "rm", "sleep", "cat"):
        os.symlink("busybox", root / "bin" / applet)
    write(root, "sbin/mkinitrd", FAKE_MKINITRD, 0o755)


UBUNTU_FSTAB = """\
# /etc/fstab: static file system information.
proc            /proc           proc    nodev,noexec,nosuid 0       0
UUID=1b3c6f2a-6a51-4f1e-9d3c-5a2f1e7d9b10 /               ext4    errors=remount-ro 0       1
/dev/sda5       none            swap    sw              0       0
"""

UBUNTU_SSHD = """\
# Package generated configuration file
Port 22
Protocol 2
HostKey /etc/ssh/ssh_host_rsa_key
HostKey /etc/ssh/ssh_host_dsa_key
PermitRootLogin yes
#PasswordAuthentication yes
UsePAM yes
"""

UBUNTU_RC_LOCAL = """\
#!/bin/sh -e
#
# rc.local
#
# This script is executed at the end of each multiuser runlevel.

exit 0
"""


def ubuntu1004_tree(root: Path) -> Path:
    write(root, "etc/debian_version", "squeeze/sid\n")
    write(
        root, "etc/lsb-release", 'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.04\nDISTRIB_DESCRIPTION="Ubuntu 10.04.4 LTS"\n'
    )
    write(root, "etc/fstab", UBUNTU_FSTAB)
    write(root, "etc/hostname", "ubuntu\n")
    write(root, "etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tubuntu\n")
    write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    write(root, "etc/shadow", "root:!:15000:0:99999:7:::\n", 0o640)
    write(root, "etc/modules", "# /etc/modules: kernel modules to load at boot time.\n\nlp\n")
    write(root, "etc/rc.local", UBUNTU_RC_LOCAL, 0o755)
    write(root, "etc/network/interfaces", "auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet dhcp\n")
    write(
        root,
        "etc/udev/rules.d/70-persistent-net.rules",
        '# PCI device 0x10ec:0x8139 (8139too)\nSUBSYSTEM=="net", ACTION=="add", ATTR{address}=="52:54:00:12:34:56", '
        'NAME="eth0"\n',
    )
    write(root, "etc/ssh/sshd_config", UBUNTU_SSHD)
    for key in ("ssh_host_rsa_key", "ssh_host_dsa_key"):
        write(root, f"etc/ssh/{key}", f"PRIVATE {key}\n", 0o600)
        write(root, f"etc/ssh/{key}.pub", f"PUBLIC {key}\n")
    write(root, "etc/resolv.conf", "nameserver 192.168.122.1\n")
    write(root, f"boot/vmlinuz-{UBUNTU_KERNEL}", b"\x00kernel")
    write(root, f"boot/initrd.img-{UBUNTU_KERNEL}", initrd_image(["xen-blkfront", "xen-netfront"]))
    write(root, f"lib/modules/{UBUNTU_KERNEL}/modules.dep", "")
    write(root, "usr/sbin/update-initramfs", "#!/bin/sh\n", 0o755)
    write(root, "usr/bin/wget", "#!/bin/sh\n# stands for Ubuntu's wget\n", 0o755)
    write(root, "var/log/syslog", "Jan  1 kernel: hello\n" * 20)
    write(root, "var/log/syslog.1", "older\n")
    write(root, "var/log/dmesg.0.gz", gzip.compress(b"dmesg\n", mtime=0))
    write(root, "var/log/apt/term.log", "Setting up foo\n")
    write(root, "var/log/apt/history.log.1.gz", gzip.compress(b"history\n", mtime=0))
    for directory in ("bin", "sbin", "usr/bin", "root", "proc", "sys", "dev", "tmp"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    return root


# -- images ---------------------------------------------------------------------------------


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def bare_image(tree: Path, image: Path, size_mib: int = 48) -> Path:
    """The AMI case: the whole file is one ext4 filesystem holding the tree."""
    run("truncate", "-s", f"{size_mib}M", str(image))
    run("mkfs.ext4", "-q", "-F", "-d", str(tree), str(image))
    return image


def partitioned_image(tree: Path, image: Path, *, first_mib: int = 8, root_mib: int = 48) -> Path:
    """A disk with an sfdisk (dos) table: partition 1 an ext4 without a root, partition 2 the root tree."""
    first_start = 2048
    first_sectors = first_mib * 1024 * 1024 // SECTOR
    root_start = first_start + first_sectors
    root_sectors = root_mib * 1024 * 1024 // SECTOR
    total = (root_start + root_sectors) * SECTOR
    run("truncate", "-s", str(total), str(image))
    layout = f"label: dos\n{first_start},{first_sectors},83\n{root_start},{root_sectors},83\n"
    subprocess.run(["sfdisk", "-q", str(image)], input=layout.encode(), check=True, capture_output=True)
    data = tree.parent / f"{tree.name}-data"
    write(data, "README", "a data partition, not a root\n")
    run(
        "mkfs.ext4",
        "-q",
        "-F",
        "-E",
        f"offset={first_start * SECTOR}",
        "-d",
        str(data),
        str(image),
        f"{first_mib * 1024}k",
    )
    run(
        "mkfs.ext4",
        "-q",
        "-F",
        "-E",
        f"offset={root_start * SECTOR}",
        "-d",
        str(tree),
        str(image),
        f"{root_mib * 1024}k",
    )
    return image


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> kind:mode:content-hash (or link target) of every entry: equal digests, equal trees."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                result[rel] = f"link:{os.readlink(path)}"
            elif stat.S_ISREG(st.st_mode):
                result[rel] = f"file:{stat.S_IMODE(st.st_mode):o}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
            else:
                result[rel] = f"dir:{stat.S_IMODE(st.st_mode):o}"
    return result


# -- a Debian 12 (bookworm)-like root: systemd, grub 2, zstd initrd ---------------------------

DEBIAN_KERNEL = "6.1.0-28-amd64"
DEBIAN_ROOT_UUID = "5f0d3c8e-2b1a-4f7e-9d6c-1a2b3c4d5e6f"
DEBIAN_GRUB_CFG = """\
#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${{next_entry}}" ] ; then
   set default="${{next_entry}}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
set timeout=5
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
function gfxmode {{
	set gfxpayload="${{1}}"
}}
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-{uuid}' {{
	load_video
	insmod gzio
	insmod part_msdos
	insmod ext2
	search --no-floppy --fs-uuid --set=root {uuid}
	echo	'Loading Linux {kernel} ...'
	linux	/boot/vmlinuz-{kernel} root={root} ro  quiet
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-{kernel}
}}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-{uuid}' {{
	menuentry 'Debian GNU/Linux, with Linux {kernel}' --class debian $menuentry_id_option 'gnulinux-{kernel}-advanced-{uuid}' {{
		linux	/boot/vmlinuz-{kernel} root={root} ro  quiet
		initrd	/boot/initrd.img-{kernel}
	}}
	menuentry 'Debian GNU/Linux, with Linux {kernel} (recovery mode)' --class debian $menuentry_id_option 'gnulinux-{kernel}-recovery-{uuid}' {{
		linux	/boot/vmlinuz-{kernel} root={root} ro single
		initrd	/boot/initrd.img-{kernel}
	}}
}}
### END /etc/grub.d/10_linux ###
"""
DEBIAN_DEFAULT_GRUB = """\
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
"""
UNIT_SSH = """\
[Unit]
Description=OpenBSD Secure Shell server
After=network.target auditd.service

[Service]
ExecStartPre=/usr/sbin/sshd -t
ExecStart=/usr/sbin/sshd -D $SSHD_OPTS
Restart=on-failure

[Install]
WantedBy=multi-user.target
Alias=sshd.service
"""
UNIT_NETWORKD = """\
[Unit]
Description=Network Configuration

[Service]
ExecStart=!!/lib/systemd/systemd-networkd

[Install]
WantedBy=multi-user.target
Also=systemd-networkd.socket
Alias=dbus-org.freedesktop.network1.service
Also=systemd-network-generator.service
Also=systemd-networkd-wait-online.service
"""
SMALL_UNITS = {
    "systemd-networkd.socket": "[Socket]\nListenNetlink=route 1361\n\n[Install]\nWantedBy=sockets.target\n",
    "systemd-network-generator.service": "[Service]\nType=oneshot\n\n[Install]\nWantedBy=sysinit.target\n",
    "systemd-networkd-wait-online.service": "[Service]\nType=oneshot\n\n[Install]\nWantedBy=network-online.target\n",
    "rc-local.service": "[Unit]\nAfter=network.target\n\n[Service]\nType=forking\nExecStart=/etc/rc.local start\n",
}


def compressed_cpio(tree: Path, compressor: list[str]) -> bytes:
    """A newc archive of ``tree`` made by GNU cpio, compressed by a real tool (as mkinitramfs does)."""
    names = subprocess.run(["find", "."], cwd=tree, capture_output=True, check=True).stdout
    archive = subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc"], cwd=tree, input=names, capture_output=True, check=True
    ).stdout
    return subprocess.run(compressor, input=archive, capture_output=True, check=True).stdout if compressor else archive


def debian_initrd(work: Path, modules: list[str]) -> bytes:
    """Debian 12's layout: an uncompressed early-microcode cpio, then the zstd-compressed main archive."""
    early, main = work / "early", work / "main"
    write(early, "kernel/x86/microcode/GenuineIntel.bin", b"\x01" * 2048)
    write(main, "init", "#!/bin/sh\n", 0o755)
    for module in modules:
        write(main, f"usr/lib/modules/{DEBIAN_KERNEL}/kernel/drivers/{module}", b"\x7fELF module")
    return compressed_cpio(early, []) + compressed_cpio(main, ["zstd", "-q", "-3", "-c"])


def debian12_tree(root: Path, *, grub_root: str = f"UUID={DEBIAN_ROOT_UUID}", http_client: bool = True) -> Path:
    """A Debian 12-like root as debootstrap + a kernel + grub-pc leave it (usrmerge, systemd)."""
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        (root / target).mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / link)
    write(root, "usr/lib/systemd/systemd", fake_elf(62), 0o755)
    os.symlink("../lib/systemd/systemd", root / "usr/sbin/init")
    write(root, "etc/debian_version", "12.8\n")
    write(root, "etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    write(root, "etc/fstab", f"UUID={DEBIAN_ROOT_UUID} / ext4 errors=remount-ro 0 1\n")
    write(root, "etc/hostname", "debian12-template\n")
    write(root, "etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tdebian12-template\n")
    write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    write(root, "etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640)
    write(root, "etc/machine-id", "3fff60176399433f8a06347303fd2bb5\n", 0o444)
    write(root, "var/lib/dbus/machine-id", "3fff60176399433f8a06347303fd2bb5\n")
    write(root, "var/lib/systemd/random-seed", os.urandom(512), 0o600)
    write(root, "etc/resolv.conf", "domain build.example\nsearch build.example\nnameserver 10.9.8.7\n")
    write(root, "etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n")
    for key_type in ("rsa", "ecdsa", "ed25519"):
        write(root, f"etc/ssh/ssh_host_{key_type}_key", f"PRIVATE {key_type}\n", 0o600)
        write(root, f"etc/ssh/ssh_host_{key_type}_key.pub", f"ssh-{key_type} AAAA template\n")
    write(root, "usr/sbin/sshd", fake_elf(62) + b"\0OpenSSH_9.2p1 Debian-2+deb12u3\0", 0o755)
    write(root, "usr/bin/ssh-keygen", fake_elf(62), 0o755)
    if http_client:
        write(root, "usr/bin/curl", fake_elf(62), 0o755)
    write(root, "usr/lib/systemd/system/ssh.service", UNIT_SSH)
    write(root, "usr/lib/systemd/system/systemd-networkd.service", UNIT_NETWORKD)
    for name, text in SMALL_UNITS.items():
        write(root, f"usr/lib/systemd/system/{name}", text)
    (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    os.symlink("/lib/systemd/system/ssh.service", root / "etc/systemd/system/multi-user.target.wants/ssh.service")
    os.symlink("/lib/systemd/system/ssh.service", root / "etc/systemd/system/sshd.service")
    write(root, f"boot/vmlinuz-{DEBIAN_KERNEL}", b"\x00kernel")
    write(root, f"boot/initrd.img-{DEBIAN_KERNEL}",
          debian_initrd(root.parent / f"{root.name}-initrd", ["block/xen-blkfront.ko", "net/xen-netfront.ko"]))  # fmt: skip
    write(root, f"usr/lib/modules/{DEBIAN_KERNEL}/modules.dep", "kernel/drivers/block/xen-blkfront.ko:\n")
    write(root, f"usr/lib/modules/{DEBIAN_KERNEL}/modules.builtin", "kernel/drivers/xen/xenbus/xenbus.ko\n")
    cfg = DEBIAN_GRUB_CFG.format(uuid=DEBIAN_ROOT_UUID, kernel=DEBIAN_KERNEL, root=grub_root)
    write(root, "boot/grub/grub.cfg", cfg, 0o444)
    write(root, "etc/default/grub", DEBIAN_DEFAULT_GRUB)
    write(root, "etc/modules", "# /etc/modules: kernel modules to load at boot time.\n")
    write(root, "var/log/dpkg.log", "2024-11-09 status installed\n" * 20)
    write(root, "var/log/dpkg.log.1", "older\n")
    write(root, "var/log/apt/history.log.1.gz", gzip.compress(b"history\n", mtime=0))
    write(root, "var/log/alternatives.log.2.xz", lzma.compress(b"alternatives\n"))
    write(root, "var/log/apt/term.log.3.zst", subprocess.run(["zstd", "-q", "-c"], input=b"term\n",
                                                             capture_output=True, check=True).stdout)  # fmt: skip
    write(root, "var/log/syslog.4.bz2", bz2.compress(b"syslog\n"))
    write(root, "var/log/journal/3fff60176399433f8a06347303fd2bb5/system.journal", b"LPKSHHRH" + b"\0" * 1024, 0o640)
    write(root, "var/log/wtmp", b"\x07\x00\x00\x00records")
    for directory in ("root", "tmp", "proc", "sys", "dev", "run", "usr/local/sbin"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    return root
