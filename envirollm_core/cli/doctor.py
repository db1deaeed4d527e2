"""`envirollm doctor`: is the database whole, what of it is readable, and a copy of every readable run."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from envirollm_core.cli.common import add_db_option, add_json_option, db_path, emit_json, info


def register(subcommands: argparse._SubParsersAction) -> None:
    doctor = subcommands.add_parser(
        "doctor", help="check the database; copy every readable run of a damaged one into a new file",
        description="Read every block of the database (DuckDB checks each block's checksum), say whether it is "
                    "whole and how many runs can be read; with --copy-to, copy every readable run (with its "
                    "samples where they can be read) into a new database. The checked file is never changed. "
                    "Exit 0 when whole, 1 when damaged.",
    )
    doctor.add_argument("--copy-to", type=Path, default=None, metavar="NEW",
                        help="a new database file to copy every readable run into")
    add_db_option(doctor)
    add_json_option(doctor)
    doctor.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from envirollm_core.store.doctor import examine

    report = examine(db_path(args), args.copy_to)
    if args.json:
        emit_json(dataclasses.asdict(report))
    listed = "?" if report.runs_listed is None else str(report.runs_listed)
    if report.healthy:
        info(f"{report.path} is whole: every block reads back; {report.runs_readable} run(s)")
    else:
        info(f"{report.path} is damaged: {report.problem}")
        info(f"readable: {report.runs_readable} of {listed} run(s)"
             + (f" ({report.runs_without_samples} without their samples)" if report.runs_without_samples else ""))
    if report.copied_to is not None:
        info(f"copied {report.runs_readable} run(s) to {report.copied_to}"
             + ("" if report.healthy else f"; use it with --db {report.copied_to}, or move it in place of the damaged file"))
    elif not report.healthy:
        info(f"to keep what is readable: envirollm doctor --db {report.path} --copy-to NEW.duckdb")
    return 0 if report.healthy else 1
