"""Finish a Lambda bundle folder after pip: drop what the runtime provides, compile the rest for Python 3.13.

Run by every build Makefile (the layer's and each function's) with the Lambda runtime's Python version
(``LAMBDA_PYTHON``, set by the top-level Makefile), standard library only, as

    python3.13 tools/lambda_bundle.py FOLDER --prefix /var/task      (a function)
    python3.13 tools/lambda_bundle.py FOLDER --prefix /opt/python    (a layer's python/ folder)

1. Every distribution the Lambda python3.13 runtime already has (boto3 and its dependencies, compiled by
   AWS) is removed from FOLDER, files and dist-info, so the runtime's own compiled copy is the one
   imported: a bundle folder comes first on Lambda's path, so a copy shipped there would shadow it.
   pip's console scripts (``bin/``) go too.
2. Every ``.py`` under FOLDER is compiled to ``__pycache__/*.cpython-313.pyc`` with
   ``--invalidation-mode unchecked-hash``: the file records a hash of its source instead of an mtime, so
   the bytes do not depend on when the build ran (a zip keeps mtimes at 2-second precision and a timestamp
   pyc would be stale and compiled again, in memory, at every cold start: the code folder is read-only),
   and the interpreter does not read and hash the source at import either (checked-hash would): a
   deployment package is immutable, a source never changes under its pyc. Paths in code objects are
   written as the Lambda will see them (``--prefix``), not the build's scratch folder, so two builds of
   the same sources give the same bytes.

``--runtime-names`` prints the runtime's distributions (the top-level Makefile installs them, at the
versions constraints.txt pins, as the stand-in runtime the bundle check imports with).
"""

from __future__ import annotations

import argparse
import compileall
import py_compile
import re
import shutil
import sys
from pathlib import Path

# What the AWS Lambda python3.13 runtime puts on the path (/var/runtime, /var/lang) besides the standard
# library: boto3 and its dependencies.
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six")
LAMBDA_PYTHON = (3, 13)


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def remove_distribution(folder: Path, info: Path) -> list[Path]:
    """Delete one installed distribution (every file its RECORD lists, inside ``folder``) and its dist-info."""
    removed: list[Path] = []
    record = info / "RECORD"
    root = folder.resolve()
    for line in record.read_text().splitlines() if record.exists() else []:
        relative = line.split(",", 1)[0]
        target = (folder / relative).resolve()
        if relative and target.is_relative_to(root) and target.is_file():
            target.unlink()
            removed.append(target)
    shutil.rmtree(info, ignore_errors=True)
    for directory in sorted({path.parent for path in removed}, key=lambda path: len(path.parts), reverse=True):
        while directory != root and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent
    return removed


def drop_runtime_distributions(folder: Path) -> list[str]:
    """Remove what the runtime provides from ``folder``, and the console scripts pip put in its ``bin/``
    (nothing runs them in a Lambda); the names of the distributions removed."""
    shutil.rmtree(folder / "bin", ignore_errors=True)
    runtime = {canonical_name(name) for name in RUNTIME_DISTRIBUTIONS}
    dropped = []
    for info in sorted(folder.glob("*.dist-info")):
        name = canonical_name(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name in runtime:
            remove_distribution(folder, info)
            dropped.append(name)
    return dropped


def compile_folder(folder: Path, prefix: str) -> bool:
    """Compile every module under ``folder`` (unchecked-hash pycs, code paths under ``prefix``)."""
    return compileall.compile_dir(
        folder,
        quiet=1,
        workers=0,
        stripdir=str(folder),
        prependdir=prefix,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/lambda_bundle.py")
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--prefix", help="where Lambda puts the folder: /var/task or /opt/python")
    parser.add_argument("--runtime-names", action="store_true", help="print the runtime's distributions")
    args = parser.parse_args(argv)
    if args.runtime_names:
        print(" ".join(RUNTIME_DISTRIBUTIONS))
        return 0
    if args.folder is None or not args.prefix:
        parser.error("FOLDER and --prefix are required")
    if sys.version_info[:2] != LAMBDA_PYTHON:
        print(
            f"lambda_bundle: run me with Python {'.'.join(map(str, LAMBDA_PYTHON))}, not {sys.version}", file=sys.stderr
        )
        return 2
    dropped = drop_runtime_distributions(args.folder)
    if dropped:
        print(f"lambda_bundle: {args.folder}: the runtime provides {', '.join(dropped)}: not shipped")
    return 0 if compile_folder(args.folder, args.prefix) else 1


if __name__ == "__main__":
    sys.exit(main())
