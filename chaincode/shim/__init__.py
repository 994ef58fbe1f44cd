"""The Python chaincode-as-a-service runtime: gRPC server, stream protocol, stub and contract layer."""
