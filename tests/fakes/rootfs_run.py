#!/usr/bin/env python3
"""Run a command inside an image's exported root filesystem, as a container
runtime would, but in the host's network namespace (so loopback reaches the
test's fakes).  Needs root.

    rootfs_run.py [--user UID:GID] [--env K=V]... [--keep NAME]... [--keep-prefix P]...
                  ROOTFS -- COMMAND [ARG...]

The process gets a mount namespace of its own (every mount private), with
ROOTFS bind-mounted onto itself, a fresh /proc, a small /dev (a tmpfs with
null, zero, full, random, urandom and tty bound from the host, /dev/shm, the
fd links), and the host's /etc/hosts and /etc/resolv.conf bound in, as a
runtime provides them.  It then enters ROOTFS with pivot_root and detaches
the old root, so its root directory is its mount namespace's root: unlike
after chroot(2), the kernel lets it create user namespaces (ccr job's
sandbox).  Finally it drops to UID:GID with no supplementary groups and
execs COMMAND (looked up in ROOTFS) with exactly this environment: the
--env pairs (the image's Env), then the variables of its own environment
named by --keep or starting with a --keep-prefix (what the Cloud Run job
and execution set).
"""
import argparse
import ctypes
import os
import platform
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

libc = ctypes.CDLL(None, use_errno=True)


def check(ret, what):
    if ret != 0:
        e = ctypes.get_errno()
        sys.exit(f"rootfs_run: {what}: {os.strerror(e)}")


def mount(src, dst, fstype, flags, data=None):
    check(libc.mount(src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None,
                     ctypes.c_ulong(flags), data.encode() if data else None),
          f"mount {src or fstype} on {dst}")


def bind_file(host, inside):
    if not os.path.exists(host):
        return
    if not os.path.lexists(inside):
        os.makedirs(os.path.dirname(inside), exist_ok=True)
        open(inside, "a").close()
    elif os.path.islink(inside):
        return  # the image links it elsewhere; leave it as the image has it
    mount(host, inside, None, MS_BIND)


def make_dev(root):
    dev = os.path.join(root, "dev")
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k")
    for name in DEVICES:
        bind_file("/dev/" + name, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "shm"), 0o1777)
    mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777")
    os.mkdir(os.path.join(dev, "pts"), 0o755)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", os.path.join(dev, name))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))


def enter(root):
    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(root, root, None, MS_BIND | MS_REC)
    proc = os.path.join(root, "proc")
    os.makedirs(proc, exist_ok=True)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    make_dev(root)
    for f in ("hosts", "resolv.conf"):
        bind_file("/etc/" + f, os.path.join(root, "etc", f))
    nr = SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        sys.exit(f"rootfs_run: no pivot_root number for {platform.machine()}")
    os.chdir(root)
    check(libc.syscall(ctypes.c_long(nr), b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "detaching the old root")
    os.chdir("/")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--user", default="0:0")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--keep", action="append", default=[])
    ap.add_argument("--keep-prefix", action="append", default=[])
    ap.add_argument("rootfs")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        sys.exit("rootfs_run: no command")
    env = dict(kv.split("=", 1) for kv in a.env)
    env.update({k: v for k, v in os.environ.items()
                if k in a.keep or any(k.startswith(p) for p in a.keep_prefix)})
    uid, gid = (int(x) for x in a.user.split(":"))
    enter(os.path.realpath(a.rootfs))
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.execve(cmd[0], cmd, env)
    except OSError as e:
        sys.exit(f"rootfs_run: cannot run {cmd[0]} in the image: {e.strerror}")


if __name__ == "__main__":
    main()
