"""CPU time and resident memory of a set of processes, from /proc.

CPU is read two ways, both covering every thread of every process:
- /proc/PID/stat utime + stime (fields 14 and 15, clock ticks): what the
  issue names; it counts the whole thread group, exited threads included,
  but only in ticks of 1/CLK_TCK s (10 ms here), too coarse for a ~1 s run;
- /proc/PID/task/TID/schedstat, first field: nanoseconds on CPU per
  thread, exact. The report uses this one and keeps the tick figure in the
  JSON as a cross-check.
The tick figures also split user from kernel time: the report gives each
proxy's kernel share (over many ticks: a run's share is coarse, the
median over rounds is not).
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 first)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name is in parentheses and may hold spaces or ')'.
    return text[text.rindex(")") + 2 :].split()


def children(pid):
    """Direct child process ids of `pid` (nginx's workers)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(entry)[1]) == pid:
                kids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def cpu_ticks_split_s(pids):
    """(utime, stime) summed over the processes (all their threads), in
    seconds."""
    user = system = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        user += int(f[11])  # field 14
        system += int(f[12])  # field 15
    return user / CLK_TCK, system / CLK_TCK


def cpu_exact_s(pids):
    """Time on CPU of every live thread of each process, in seconds."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def cpu(pids):
    """Both CPU readings, for a before/after difference."""
    user, system = cpu_ticks_split_s(pids)
    return {"exact_s": cpu_exact_s(pids), "ticks_s": user + system, "user_ticks_s": user, "sys_ticks_s": system}


def kernel_share(before, after):
    """Kernel part of the CPU time between two `cpu` readings (None when
    no tick was counted)."""
    total = after["ticks_s"] - before["ticks_s"]
    if total <= 0:
        return None
    return (after["sys_ticks_s"] - before["sys_ticks_s"]) / total


def rss_kib(pids):
    """Sum of VmRSS over the processes, KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def alive(pid):
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False
