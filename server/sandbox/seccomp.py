"""The seccomp profile of sandbox containers: everything allowed except tracing other
processes (ptrace, process_vm_*), and what a container without capabilities has no use for
(namespaces, keyrings, kernel modules and clocks, mounts, BPF, userfaultfd, perf).

A custom profile replaces the engine's default one, so this list also carries what that
default denies to an unprivileged container. Only the native 64-bit ABIs are listed: a call
through another ABI (e.g. 32-bit int 0x80 on x86_64) is refused, so none bypasses the list.
"""

from __future__ import annotations

import errno
import json
from functools import cache
from typing import Any

_DENIED = (
    # Tracing and reading other processes' memory.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "pidfd_getfd",
    # Namespaces and mounts.
    "unshare",
    "setns",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    # Keyrings, BPF, page-fault handling, performance counters.
    "add_key",
    "keyctl",
    "request_key",
    "bpf",
    "userfaultfd",
    "perf_event_open",
    "fanotify_init",
    "lookup_dcookie",
    # The kernel itself: modules, reboot, clocks, swap, accounting, quotas, I/O ports.
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "iopl",
    "ioperm",
    "syslog",
    "vhangup",
    "sethostname",
    "setdomainname",
    "uselib",
    "sysfs",
    "_sysctl",
    "ustat",
    "nfsservctl",
    "personality",
    "mbind",
    "set_mempolicy",
    "migrate_pages",
    "move_pages",
)

# Namespace flags of clone(2): NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID,
# NEWNET.
_CLONE_NAMESPACE_FLAGS = (
    0x80,
    0x20000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
)


@cache
def profile() -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": list(_DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
            *(
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": errno.EPERM,
                    "args": [
                        {"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
                    ],
                }
                for flag in _CLONE_NAMESPACE_FLAGS
            ),
            # clone3 passes its flags in memory, out of seccomp's sight: ENOSYS makes the
            # C library fall back to clone, checked above.
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        ],
    }


def seccomp_option() -> str:
    """The engine's security option carrying the profile."""
    return "seccomp=" + json.dumps(profile(), separators=(",", ":"))
