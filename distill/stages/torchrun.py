"""torchrun that ends with the stage which started it: `python -m distill.stages.torchrun <parent pid> <args>`.

The stage's thread waits on this process; if the worker running it is killed (`kill -9` included), the
kernel sends this process SIGTERM (`PR_SET_PDEATHSIG`), and torchrun passes it on to its ranks, which
also die with it (distill.stages.rank). Armed here, after the fork, rather than in a `preexec_fn`: that
runs between fork and exec in a process whose other threads (Prefect's) may hold locks it needs.
"""

from __future__ import annotations

import runpy
import sys

from distill.lifetime import die_with_parent


def main() -> None:
    parent, args = int(sys.argv[1]), sys.argv[2:]
    if not die_with_parent(parent):
        sys.exit(1)
    sys.argv = ["torch.distributed.run", *args]
    runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
