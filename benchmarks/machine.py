"""The CPU a benchmark ran on, to print beside every figure (Zen 4 and Zen 5, or two Xeon generations,
share one model name and give different ratios, so the family and model numbers come too)."""

import platform


def cpu():
    """'model name (family F model M)' from /proc/cpuinfo; the platform's name where there is none."""
    info = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in info:
        return platform.processor() or platform.machine()
    return f"{info['model name']} (family {info.get('cpu family', '?')} model {info.get('model', '?')})"
