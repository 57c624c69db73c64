"""The CSM-MIB for pysnmp: compiles the SMIv2 texts in mib/ (the one source of truth) with pysmi.

Generated code is never checked in. `compile_mibs()` writes it to a cache directory named by a
digest of the MIB texts, the module names and the pysmi and pysnmp versions, so an edited MIB or an
upgraded compiler never serves stale code. A directory is built aside and renamed into place, so
processes that compile at the same time each see either nothing or a complete directory.

Modules that pysnmp itself ships (SNMPv2-SMI, SNMPv2-TC, SNMP-FRAMEWORK-MIB, ...) are parsed from
mib/ for their symbols but never generated: pysnmp's own, instrumented copies are the ones loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from importlib import metadata, resources
from pathlib import Path

from pysmi.codegen import PySnmpCodeGen
from pysmi.compiler import MibCompiler
from pysmi.error import PySmiError
from pysmi.parser import SmiV2Parser
from pysmi.reader import FileReader
from pysmi.searcher import StubSearcher
from pysmi.writer import PyFileWriter
from pysnmp.smi.builder import DirMibSource, MibBuilder

# mib/ at the top of the repository: controller/northbound/snmp/mibs.py -> parents[3].
MIB_SOURCE_DIR = Path(__file__).resolve().parents[3] / "mib"
CSM_MIB = "CSM-MIB"
CACHE_ENV = "CSMM_MIB_CACHE"

# pysmi statuses of a module that was not produced (see pysmi.compiler.MibStatus).
_FAILED = ("failed", "missing", "unprocessed")


class MibCompileError(RuntimeError):
    """pysmi could not turn a MIB module into pysnmp code; names the module and the reason."""

    def __init__(self, module: str, reason: str) -> None:
        super().__init__(f"cannot compile MIB module {module}: {reason}")
        self.module = module
        self.reason = reason


def default_cache_dir() -> Path:
    """Where compiled MIBs go: $CSMM_MIB_CACHE, else $XDG_CACHE_HOME/csmm/mibs, else ~/.cache/csmm/mibs."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "csmm" / "mibs"


def compile_mibs(source_dir: Path = MIB_SOURCE_DIR, cache_dir: Path | None = None,
                 modules: Sequence[str] = (CSM_MIB,)) -> Path:
    """Compile `modules` (and what they import, unless pysnmp ships it) from the texts in `source_dir`.

    Args:
        source_dir: the directory of SMIv2 texts (`NAME.txt`), including every module imported.
        cache_dir: the parent of the output directories; `default_cache_dir()` when None.
        modules: the MIB modules to compile.

    Returns:
        The directory holding one `NAME.py` per compiled module, for pysnmp's `DirMibSource`.

    Raises:
        MibCompileError: a module is missing, does not parse, or its generated code is not valid Python.
    """
    source_dir = Path(source_dir)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"pysnmp-{_digest(source_dir, modules)}"
    if all((target / f"{name}.py").is_file() for name in modules):
        return target

    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        _compile_into(building, source_dir, modules)
        try:
            building.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent build that won the race: a real failure
                raise
            shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target


def load_mibs(builder: MibBuilder | None = None, source_dir: Path = MIB_SOURCE_DIR,
              cache_dir: Path | None = None, modules: Sequence[str] = (CSM_MIB,)) -> MibBuilder:
    """Compile (or reuse) `modules` and load them into `builder` (a new MibBuilder when None).

    An SNMP engine passes its own builder (`engine.get_mib_builder()`) so that its agent serves them.
    """
    builder = builder if builder is not None else MibBuilder()
    compiled = compile_mibs(source_dir, cache_dir, modules)
    builder.add_mib_sources(DirMibSource(str(compiled)))
    with warnings.catch_warnings():
        # pysmi 2.0 generates pysnmp's camelCase calls, which pysnmp 7.1 deprecates but still serves.
        warnings.filterwarnings("ignore", r"(import|export)Symbols is deprecated", DeprecationWarning)
        builder.load_modules(*modules)
    return builder


def _compile_into(directory: Path, source_dir: Path, modules: Sequence[str]) -> None:
    writer = PyFileWriter(str(directory)).set_options(pyCompile=False)  # we check the code below
    compiler = MibCompiler(SmiV2Parser(), PySnmpCodeGen(), writer)
    compiler.add_sources(FileReader(str(source_dir), recursive=False))
    compiler.add_searchers(StubSearcher(*_modules_pysnmp_ships()))
    # No borrowers: never fetch precompiled MIBs from the network; everything comes from source_dir.
    try:
        processed = compiler.compile(*modules, genTexts=True, rebuild=True)
    except PySmiError as exc:
        raise MibCompileError(", ".join(modules), str(exc)) from exc
    for name, status in processed.items():
        if status in _FAILED:
            reason = getattr(status, "error", None) or f"not found in {source_dir}"
            raise MibCompileError(name, f"{status}: {reason}")
    for name in modules:
        generated = directory / f"{name}.py"
        if not generated.is_file():
            raise MibCompileError(name, f"pysmi produced no code (status {processed.get(name, 'unknown')})")
        try:
            compile(generated.read_text(), str(generated), "exec")  # pysmi's writer swallows SyntaxError
        except SyntaxError as exc:
            raise MibCompileError(name, f"generated code is not valid Python: {exc}") from exc


def _modules_pysnmp_ships() -> tuple[str, ...]:
    shipped = {entry.name.removesuffix(".py") for entry in resources.files("pysnmp.smi.mibs").iterdir()
               if entry.name.endswith(".py") and not entry.name.startswith("_")}
    return tuple(sorted(shipped | set(PySnmpCodeGen.baseMibs)))


def _digest(source_dir: Path, modules: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for name in ("pysmi", "pysnmp"):
        digest.update(f"{name}={metadata.version(name)}\n".encode())
    digest.update(("modules=" + ",".join(sorted(modules)) + "\n").encode())
    for path in sorted(source_dir.glob("*.txt")):
        digest.update(f"{path.name}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m controller.northbound.snmp.mibs [--cache-dir DIR]`: compile and print the output directory."""
    parser = argparse.ArgumentParser(description="Compile the CSM-MIB (mib/) into pysnmp modules.")
    parser.add_argument("--source-dir", type=Path, default=MIB_SOURCE_DIR, help="SMIv2 texts (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"parent of the output directory (default: ${CACHE_ENV}, else ~/.cache/csmm/mibs)")
    args = parser.parse_args(argv)
    try:
        print(compile_mibs(args.source_dir, args.cache_dir))
    except MibCompileError as exc:
        raise SystemExit(str(exc)) from exc


if __name__ == "__main__":
    main()
