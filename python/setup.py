"""Builds the package with gRPC stubs generated from the repository's `proto/` folder.

The stubs are never checked in: `build_py` runs grpc_tools' protoc on `../proto` (or on
$ASOF_PROTO_DIR) and writes `asof/serving/v1/serving_pb2{,_grpc}.py` and `.pyi` type stubs into
the build, so the package always speaks the server's contract as of this checkout.
"""

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO_FILE = "asof/serving/v1/serving.proto"


def proto_dir() -> Path:
    root = Path(os.environ.get("ASOF_PROTO_DIR", HERE.parent / "proto"))
    if not (root / PROTO_FILE).is_file():
        raise SystemExit(
            f"cannot find {PROTO_FILE} under {root}: build from an asof checkout "
            "(pip install ./python), or set ASOF_PROTO_DIR to its proto/ folder"
        )
    return root


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        from importlib.resources import files

        from grpc_tools import protoc

        out = Path(self.build_lib)
        well_known = str(files("grpc_tools") / "_proto")
        args = [
            "grpc_tools.protoc",
            f"-I{proto_dir()}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            PROTO_FILE,
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {PROTO_FILE}")
        for package in ("asof/serving", "asof/serving/v1"):
            init = out / package / "__init__.py"
            init.parent.mkdir(parents=True, exist_ok=True)
            init.touch()


setup(cmdclass={"build_py": BuildWithStubs})
