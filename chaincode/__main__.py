"""Run a chaincode server: ``python -m chaincode --contract module:Class [--contract ...]``.

The environment says which chaincode package this is and where to listen (see
:mod:`chaincode.shim.server`); ``CHAINCODE_LOG_LEVEL`` sets the log level (INFO by
default). Logs are JSON lines on stderr. SIGTERM or SIGINT stops the server cleanly
(exit status 0); a configuration problem exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from chaincode.shim import logs
from chaincode.shim.contract import Contract, ContractRouter
from chaincode.shim.server import ChaincodeServer, ConfigError, ServerConfig

log = logging.getLogger("chaincode")


def load_contract(spec: str) -> Contract:
    """Instantiate ``package.module:ClassName``."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ConfigError(f"--contract must look like package.module:ClassName, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Contract):
        raise ConfigError(f"{spec!r} is not a Contract class")
    return cls()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaincode", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--contract",
        action="append",
        required=True,
        metavar="MODULE:CLASS",
        help="contract class to serve; repeat for several (the first is the default contract)",
    )
    args = parser.parse_args(argv)
    logs.configure(os.environ.get("CHAINCODE_LOG_LEVEL", "INFO"))

    try:
        config = ServerConfig.from_env()
        router = ContractRouter([load_contract(spec) for spec in args.contract])
        server = ChaincodeServer(config, router)
        server.start()
    except (ConfigError, ValueError, TypeError) as exc:
        log.error("cannot start the chaincode server", extra={"error": str(exc)})
        return 2
    log.info("serving contracts", extra={"contracts": router.contract_names})

    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stopping.wait(1.0):
        pass
    server.stop(grace=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
