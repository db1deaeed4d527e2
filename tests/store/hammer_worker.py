"""One process of the concurrency test: writes runs to, or reads, one database until time is up.

Usage: python hammer_worker.py writer|reader DB SECONDS TAG. Prints a JSON summary on stdout;
any error is a traceback on stderr and a non-zero exit, which fails the test.
"""

import json
import sys
import time
from pathlib import Path

from envirollm_core.store import Store
from tests.fakes.runs import full_run


def main(role: str, db: str, seconds: str, tag: str) -> None:
    deadline = time.monotonic() + float(seconds)
    written: list[str] = []
    reads, last_count, shrank = 0, 0, False
    store = Store(Path(db), read_only=role == "reader")
    while time.monotonic() < deadline:
        if role == "writer":
            run = full_run(id=f"{tag}-{len(written):06d}", batch_id=f"{tag}-{len(written) // 10}")
            store.add_run(run)
            written.append(run.id)
        else:
            count = store.count()
            newest = store.runs_frame(limit=20)
            if newest.height:
                store.trace(newest["id"][0])
            shrank = shrank or count < last_count
            last_count = count
            reads += 1
    print(json.dumps({"written": written, "reads": reads, "last_count": last_count, "count_shrank": shrank}))


if __name__ == "__main__":
    main(*sys.argv[1:])
