"""The deposit-token contract: bank-issued tokens, private books, interbank payments, settlement.

Plain Python on the chaincode runtime's stub interface (``chaincode.shim.api``); no gRPC here.
``contract.DepositTokenContract`` is what the network deploys; ``docs/contract-api.md`` is its API.
"""
