"""The course kernel: ipykernel, with TensorFlow's thread pools capped to the CPU limit.

``etc/kernel/kernel.json`` starts ``python -m dpcourse.kernel_launcher -f {connection_file}``
instead of ``python -m ipykernel_launcher``: this module sets the thread variables of
:mod:`dpcourse.threads` (before any lesson imports TensorFlow), then runs ipykernel
exactly as ``ipykernel_launcher`` does.
"""

from __future__ import annotations

import sys

from dpcourse import threads


def main() -> None:
    try:
        threads.apply()
    except ValueError as err:  # a malformed CPU_LIMIT must not stop the kernel
        print(f"dpcourse: TensorFlow threads not capped: {err}", file=sys.stderr)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
