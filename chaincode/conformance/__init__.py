"""Conformance contract: exercises every call of the chaincode stub."""
